"""SIGHUP: read the configuration again and apply what can change without a restart.

A reload never makes things worse: a file that does not parse, or names a
setting wrongly, is logged and the running configuration stays. What a
running process can take is applied on the reactor thread, between two
packets, by each service that can change (``Server.reconfigurable``, each a
``rbl.config.reconfigure.Reconfigurable``): zone TTLs, SOA, NS and TXT, rate
limits and TCP limits, transfer ACL and TSIG keys (the DNS ports), NOTIFY
targets, listing rules and the policy feed's timeout and limits (the
writer), the dump schedule and compression, the site's settings. What needs
new sockets, a new database or a new index (``RESTART_ONLY``; adding,
removing or retyping zones) is reported as needing a restart and left as it
runs. Imports no SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from twisted.logger import Logger

from rbl.config import Settings
from rbl.config.reconfigure import ReloadReport
from rbl.config.secondaries import notify_targets
from rbl.errors import ConfigError
from rbl.policy.trapfilter import TrapTextError
from rbl.server.follower import check_zone_texts

if TYPE_CHECKING:
    from rbl.server.service import Server

log = Logger(namespace="rbl.server.reload")

# Settings a running process keeps until it restarts, judged against those it started with.
RESTART_ONLY: tuple[tuple[str, Callable[[Settings], object]], ...] = (
    ("[database] url", lambda s: s.database),
    ("[metrics] listen", lambda s: s.metrics),
    ("[sync] poll_interval", lambda s: s.sync),
    ("[dns] listen", lambda s: s.dns.listen),
    ("[dns] udp_payload", lambda s: s.dns.udp_payload),
    ("[feeds.policy] listen", lambda s: s.policy_feed.listen),
    ("[web] listen", lambda s: s.web.listen),
    ("[dumps] directory", lambda s: s.dumps.directory),
    ("[listing] expiry_interval", lambda s: s.listing.expiry_interval),
    ("[transfer] notify on/off", lambda s: bool(notify_targets(s.transfer))),
)


def reload_from_file(server: Server, load: Callable[[], Settings], path: str) -> ReloadReport:
    """Re-read the configuration with ``load`` and apply it to ``server``; never raises.

    ``load`` applies the command line's overrides (``--listen``, ``--database``)
    as at start, so they are not mistaken for changes.
    """
    try:
        settings = load()
        # A zone's own TXT is public: no trap may be named in it.
        check_zone_texts(server.follower.traps, settings.zones)
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


def apply_settings(server: Server, new: Settings) -> ReloadReport:
    """Apply ``new`` to a composed server, service by service; returns what happened.

    Changes that need a restart are judged against the settings the process
    started with (``server.settings``), so every reload reports them until the
    restart; each service judges the rest against the last applied ones
    (``server.current``).
    """
    boot = server.settings
    current = server.current or boot
    report = ReloadReport()
    report.needs_restart += [what for what, part in RESTART_ONLY if part(boot) != part(new)]
    for service in server.reconfigurable:
        service.reconfigure(current, new, report)
    server.current = new
    return report
