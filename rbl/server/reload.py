"""SIGHUP: read the configuration again and apply what can change without a restart.

A reload never makes things worse: a file that does not parse, or names a
setting wrongly, is logged and the running configuration stays. What a
running process can take is applied on the reactor thread, between two
packets: zone TTLs, SOA, NS and TXT (``Zone.reconfigure``; the index and the
serial stay), rate limits and TCP limits, transfer ACL and TSIG keys,
NOTIFY targets, listing rules, the policy feed's commit timeout, the dump
schedule and compression. What needs new sockets, a new database or a new
index (listen addresses, database URL, adding, removing or retyping zones)
is reported as needing a restart and left as it runs.

Imports no SQLAlchemy; the writer's parts are reached through the objects
``make_service`` composed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from twisted.logger import Logger

from rbl.config import Settings
from rbl.errors import ConfigError
from rbl.policy.trapfilter import TrapTextError

log = Logger(namespace="rbl.server.reload")


@dataclass
class ReloadReport:
    """What a reload did: sections applied, and changes that wait for a restart."""

    applied: list[str] = field(default_factory=list)
    needs_restart: list[str] = field(default_factory=list)
    error: str | None = None


def reload_from_file(server: Any, load: Callable[[], Settings], path: str) -> ReloadReport:
    """Re-read the configuration with ``load`` and apply it to ``server``; never raises.

    ``load`` applies the command line's overrides (``--listen``, ``--database``)
    as at start, so they are not mistaken for changes.
    """
    try:
        settings = load()
        for zone in settings.zones:  # a zone's own TXT is public: no trap may be named in it
            for item in ("txt", "lookup_url"):
                server.follower.traps.check(getattr(zone, item), f"zone {zone.name} {item}")
    except (ConfigError, TrapTextError) as exc:
        log.error("reload: {error}; keeping the running configuration", error=str(exc))
        return ReloadReport(error=str(exc))
    try:
        report = apply_settings(server, settings)
    except Exception as exc:  # a bug here must not take DNS down
        log.failure("reload: applying {path} failed", path=path)
        return ReloadReport(error=f"applying {path} failed: {exc}")
    if report.needs_restart:
        log.warn(
            "reload: {changes} changed; restart rbl serve to apply",
            changes=", ".join(report.needs_restart),
        )
    log.info(
        "reloaded {path}: {applied}",
        path=path,
        applied=", ".join(report.applied) if report.applied else "nothing to apply",
    )
    return report


def apply_settings(server: Any, new: Settings) -> ReloadReport:
    """Apply ``new`` to a composed server, section by section; returns what happened.

    Changes that need a restart are judged against the settings the process
    started with (``server.settings``), so every reload reports them until the
    restart; the rest against the last applied ones (``server.current``).
    """
    boot: Settings = server.settings
    current: Settings = server.current or boot
    report = ReloadReport()
    for section, what in (
        ("database", "[database] url"),
        ("metrics", "[metrics] listen"),
        ("sync", "[sync] poll_interval"),
    ):
        if getattr(boot, section) != getattr(new, section):
            report.needs_restart.append(what)
    for old, wanted, what in (
        (boot.dns.listen, new.dns.listen, "[dns] listen"),
        (boot.dns.udp_payload, new.dns.udp_payload, "[dns] udp_payload"),
        (boot.policy_feed.listen, new.policy_feed.listen, "[feeds.policy] listen"),
        (boot.web.listen, new.web.listen, "[web] listen"),
        (boot.dumps.directory, new.dumps.directory, "[dumps] directory"),
        (boot.listing.expiry_interval, new.listing.expiry_interval, "[listing] expiry_interval"),
        (bool(boot.transfer.notify), bool(new.transfer.notify), "[transfer] notify on/off"),
    ):
        if old != wanted:
            report.needs_restart.append(what)
    _dns(server, current, new, report)
    _zones(server, new, report)
    if current.transfer != new.transfer:
        _transfer(server, current, new, report)
    if current.listing != new.listing or current.zones != new.zones:
        _listing(server, current, new, report)
    if current.policy_feed != new.policy_feed:
        _policy_feed(server, new, report)
    if current.dumps != new.dumps:
        _dumps(server, new, report)
    if current.web != new.web or current.delisting != new.delisting or current.public != new.public:
        _web(server, new, report)
    server.current = new
    return report


def _dns(server: Any, old: Settings, new: Settings, report: ReloadReport) -> None:
    dns = server.dns
    if old.dns.rate_limit != new.dns.rate_limit:
        dns.limiter.configure(new.dns.rate_limit)
        report.applied.append("[dns.rate_limit]")
    if old.dns.tcp != new.dns.tcp:
        dns.tcp_factory.configure(new.dns.tcp)
        report.applied.append("[dns.tcp]")


def _zones(server: Any, new: Settings, report: ReloadReport) -> None:
    """Reconfigure each served zone the file still has; anything else waits for a restart."""
    from rbl.model.keys import ZoneKind

    running = server.follower.zones
    served = {name: zone.is_ip for name, zone in running.items()}
    wanted = {zone.name: zone.kind is ZoneKind.IP for zone in new.zones}
    if served != wanted:
        report.needs_restart.append("the set of [[zones]] (names or kinds)")
    changed = False
    for settings in new.zones:
        zone = running.get(settings.name)
        same_kind = zone is not None and served[settings.name] == wanted[settings.name]
        if same_kind and zone.settings != settings:
            zone.reconfigure(settings)
            changed = True
    if changed:
        report.applied.append("[[zones]]")


def _transfer(server: Any, old: Settings, new: Settings, report: ReloadReport) -> None:
    from rbl.dnsserver.transfer import TransferPolicy, Transfers

    dns = server.dns
    policy = TransferPolicy.from_strings(new.transfer.allow)
    tsig = None
    if new.transfer.tsig:
        from rbl.dnsserver.tsig import TsigKeys

        tsig = TsigKeys(new.transfer.tsig)
    if not new.transfer.allow:
        dns.transfers = dns.tcp_factory.transfers = None
    elif dns.transfers is None:
        dns.transfers = dns.tcp_factory.transfers = Transfers(dns.responder.zones, policy, tsig)
    else:
        dns.transfers.policy, dns.transfers.tsig = policy, tsig
    # Turning NOTIFY on or off waits for a restart; new targets apply at once.
    if server.notify is not None and new.transfer.notify:
        server.notify.targets = tuple(new.transfer.notify)
    report.applied.append("[transfer]")


def _listing(server: Any, old: Settings, new: Settings, report: ReloadReport) -> None:
    writer = server.writer
    if writer is None:
        return
    writer.reconfigure(new)
    if old.listing != new.listing:
        report.applied.append("[listing]")


def _policy_feed(server: Any, new: Settings, report: ReloadReport) -> None:
    writer = server.writer
    recorder = getattr(writer, "recorder", None)
    timeout = getattr(new.policy_feed, "commit_timeout", None)
    if recorder is not None and timeout is not None and hasattr(recorder, "commit_timeout"):
        recorder.commit_timeout = timeout
        report.applied.append("[feeds.policy]")
    factory = getattr(writer, "policy_factory", None)
    if factory is not None:  # allow and the limits apply to the next connection
        feed = new.policy_feed
        factory.configure(
            feed.allow,
            feed.max_connections,
            feed.max_per_client,
            feed.idle_timeout,
            feed.reject_listed,
        )


def _dumps(server: Any, new: Settings, report: ReloadReport) -> None:
    dumps = server.dumps
    if dumps is None or str(dumps.directory) != new.dumps.directory:
        return
    dumps.settings = new
    dumps.gzip_level = new.dumps.gzip_level
    if dumps.interval != new.dumps.interval:
        dumps.reschedule(new.dumps.interval)
    report.applied.append("[dumps]")


def _web(server: Any, new: Settings, report: ReloadReport) -> None:
    public = getattr(getattr(server.web, "site", None), "public", None)
    if public is None:
        return
    public.reconfigure(new)
    report.applied.append("[web]")
