"""The ``rbl`` command: run the server and manage listings.

Every command that changes the list goes through rbl.store, which writes the
audit log and the change log in the same transaction; a running server picks
the change up from the change log within its poll interval.
"""

from __future__ import annotations

import getpass
import io
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import click

from rbl.codes import parse_codes
from rbl.config import Settings, ZoneSettings, check_template, load_settings
from rbl.errors import (
    CodeError,
    ConfigError,
    KeyFormatError,
    NotListedError,
    RblError,
    ZoneError,
)
from rbl.keys import IpKey, ListingKey, ZoneKind, parse_key

DEFAULT_CONFIG = "/etc/rbl/rbl.toml"


@dataclass
class Context:
    config_path: str
    database_url: str | None
    actor: str
    _settings: Settings | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_path, self.database_url)
        return self._settings

    def engine(self) -> Any:
        from rbl.store.database import open_engine

        return open_engine(self.settings.database.url)

    def pick_zone(self, zone_name: str | None, key_text: str | None = None) -> ZoneSettings:
        """The named zone, or the only zone that can hold this kind of key."""
        if zone_name:
            return self.settings.zone(zone_name)
        zones = self.settings.zones
        if key_text is not None:
            kind = ZoneKind.IP if _looks_like_ip(key_text) else ZoneKind.DOMAIN
            zones = tuple(z for z in zones if z.kind is kind)
        if len(zones) == 1:
            return zones[0]
        names = ", ".join(z.name for z in zones) or "none"
        raise ZoneError(f"give --zone: more than one zone could hold it ({names})")


def _looks_like_ip(text: str) -> bool:
    head = text.split("/", 1)[0]
    return ":" in head or head.replace(".", "").isdigit()


def _key_for(zone: ZoneSettings, text: str) -> ListingKey:
    try:
        return parse_key(zone.kind, text)
    except KeyFormatError as exc:
        raise KeyFormatError(f"{exc} (zone {zone.name} lists {zone.kind.value} keys)") from exc


class RblGroup(click.Group):
    """Turns rbl's own errors into a one-line message and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RblError as exc:
            raise click.ClickException(str(exc)) from exc


@click.group(cls=RblGroup)
@click.option(
    "-c",
    "--config",
    "config_path",
    envvar="RBL_CONFIG",
    default=DEFAULT_CONFIG,
    show_default=True,
    help="TOML configuration file.",
)
@click.option(
    "--database",
    "database_url",
    envvar="RBL_DATABASE_URL",
    default=None,
    help="SQLAlchemy URL overriding [database] url.",
)
@click.option(
    "--actor",
    envvar="RBL_ACTOR",
    default=None,
    help="Name recorded in the audit log (default: your login).",
)
@click.version_option(package_name="rbl")
@click.pass_context
def main(ctx: click.Context, config_path: str, database_url: str | None, actor: str | None) -> None:
    """rbl: an authoritative DNSBL/RHSBL server."""
    ctx.obj = Context(config_path, database_url, actor or _login())


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid{os.getuid()}"


pass_context = click.make_pass_decorator(Context)


@main.command()
@click.option("--listen", multiple=True, help="address:port to bind, overriding [dns] listen.")
@click.option(
    "--ready-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the bound ports as JSON here once serving.",
)
@click.option("--user", default=None, help="Drop root privileges to this user after binding.")
@click.option(
    "--dns-only",
    is_flag=True,
    help="Only answer DNS: no expiry sweep, no live feeds (extra DNS nodes).",
)
@pass_context
def serve(
    obj: Context,
    listen: tuple[str, ...],
    ready_file: Path | None,
    user: str | None,
    dns_only: bool,
) -> None:
    """Serve the zones over DNS (UDP and TCP) and follow the change log."""
    from dataclasses import replace

    from twisted.internet import reactor as _reactor
    from twisted.logger import globalLogBeginner, textFileLogObserver

    from rbl.config import parse_endpoint
    from rbl.service import Server, drop_privileges, log, make_service, write_ready_file

    if ready_file is not None:
        ready_file.unlink(missing_ok=True)  # a stale file must not say "ready"
    settings = obj.settings
    if listen:
        endpoints = tuple(parse_endpoint(item, "--listen") for item in listen)
        settings = replace(settings, dns=replace(settings.dns, listen=endpoints))
    globalLogBeginner.beginLoggingTo([textFileLogObserver(sys.stderr)], redirectStandardIO=False)
    reactor: Any = _reactor
    server: Server = make_service(settings, reactor, dns_only=dns_only)
    log.info(
        "loaded {count} listings in {seconds:.2f}s (change log at {position})",
        count=server.load.listings,
        seconds=server.load.seconds,
        position=server.load.position,
    )
    service = server.service
    service.privilegedStartService()
    if user:
        drop_privileges(user)
    for host, port in server.dns.bound:
        log.info("answering DNS on {host} port {port} (UDP and TCP)", host=host, port=port)

    def started() -> None:
        service.startService()
        if ready_file is not None:
            write_ready_file(ready_file, server)

    reactor.callWhenRunning(started)
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()


@main.group(name="list")
def list_group() -> None:
    """Add, remove, show and import listings."""


@list_group.command("add")
@click.argument("key")
@click.option("--zone", default=None, help="Zone to list in (default: the only one fitting).")
@click.option(
    "--code", "codes", multiple=True, help="Return code(s), e.g. 127.0.0.3 (default: the zone's)."
)
@click.option("--txt", default=None, help="Own TXT template ({key}, {url}); default the zone's.")
@click.option("--reason", required=True, help="Why, for the audit log.")
@pass_context
def list_add(
    obj: Context, key: str, zone: str | None, codes: tuple[str, ...], txt: str | None, reason: str
) -> None:
    """List KEY (an IP, CIDR, domain or *.domain)."""
    from rbl.store.listings import add_listing, now_utc

    zone_settings = obj.pick_zone(zone, key)
    parsed = _key_for(zone_settings, key)
    code_set = parse_codes(",".join(codes)) if codes else zone_settings.default_codes
    if txt is not None:
        check_template(txt, frozenset({"key", "url"}), "--txt")
    with obj.engine().begin() as conn:
        listing = add_listing(
            conn,
            zone_settings.name,
            parsed,
            code_set,
            txt=txt,
            reason=reason,
            actor=obj.actor,
            now=now_utc(),
        )
    click.echo(f"listed {listing.key} in {listing.zone} as {','.join(listing.codes)}")


@list_group.command("remove")
@click.argument("key")
@click.option("--zone", default=None)
@click.option("--reason", required=True, help="Why, for the audit log.")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_context
def list_remove(obj: Context, key: str, zone: str | None, reason: str, yes: bool) -> None:
    """Remove the listing of exactly KEY."""
    from rbl.store.listings import now_utc, remove_listing

    zone_settings = obj.pick_zone(zone, key)
    parsed = _key_for(zone_settings, key)
    if not yes:
        click.confirm(f"Remove the listing of {parsed.text} from {zone_settings.name}?", abort=True)
    with obj.engine().begin() as conn:
        listing = remove_listing(
            conn, zone_settings.name, parsed, reason=reason, actor=obj.actor, now=now_utc()
        )
    click.echo(f"removed {listing.key} from {listing.zone}")


@list_group.command("show")
@click.argument("key", required=False)
@click.option("--zone", default=None)
@click.option("--all", "include_removed", is_flag=True, help="Include removed listings.")
@click.option("--limit", default=50, show_default=True)
@click.option("--search", default=None, help="Only keys containing this text.")
@click.option("--source", type=click.Choice(["manual", "trap"]), default=None)
@pass_context
def list_show(
    obj: Context,
    key: str | None,
    zone: str | None,
    include_removed: bool,
    limit: int,
    search: str | None,
    source: str | None,
) -> None:
    """Show KEY's listing (and wider listings covering it), or the latest listings."""
    from rbl.store.listings import covering_listings, get_listing, list_listings

    engine = obj.engine()
    if key is None:
        zone_name = obj.settings.zone(zone).name if zone else None
        with engine.connect() as conn:
            rows = list_listings(
                conn,
                zone_name,
                include_removed=include_removed,
                limit=limit,
                search=search,
                source=source,
            )
        for listing in rows:
            click.echo(
                f"{listing.zone}\t{listing.key}\t{','.join(listing.codes)}\t"
                f"{listing.state}\t{listing.updated_at:%Y-%m-%d %H:%M:%S}Z\t"
                f"{listing.reason or ''}"
            )
        return
    zone_settings = obj.pick_zone(zone, key)
    parsed = _key_for(zone_settings, key)
    with engine.connect() as conn:
        exact = get_listing(conn, zone_settings.name, parsed)
        covering = covering_listings(conn, zone_settings.name, parsed)
    if exact is None and not covering:
        click.echo(f"{parsed.text} is not listed in {zone_settings.name}")
        sys.exit(1)
    shown = [exact] if exact is not None else []
    shown += [c for c in covering if exact is None or c.key != exact.key]
    for listing in shown:
        click.echo(f"key:      {listing.key}")
        click.echo(f"zone:     {listing.zone}")
        click.echo(f"state:    {listing.state}")
        click.echo(f"codes:    {','.join(listing.codes)}")
        click.echo(f"txt:      {zone_settings.txt_for(_query_text(parsed), listing.txt)}")
        click.echo(f"source:   {listing.source}")
        click.echo(f"reason:   {listing.reason or ''}")
        click.echo(f"listed:   {listing.created_at:%Y-%m-%d %H:%M:%S}Z")
        click.echo(f"changed:  {listing.updated_at:%Y-%m-%d %H:%M:%S}Z")
        if listing.expires_at is not None:
            click.echo(f"expires:  {listing.expires_at:%Y-%m-%d %H:%M:%S}Z")
        click.echo("")


def _query_text(key: ListingKey) -> str:
    return key.text.split("/", 1)[0] if isinstance(key, IpKey) else key.text


@list_group.command("import")
@click.argument("source", type=click.File("r", encoding="utf-8"))
@click.option("--zone", default=None)
@click.option("--code", "codes", multiple=True, help="Codes for lines that name none.")
@click.option("--reason", required=True, help="Why, for the audit log.")
@pass_context
def list_import(
    obj: Context, source: TextIO, zone: str | None, codes: tuple[str, ...], reason: str
) -> None:
    """Import listings from SOURCE ('-' for stdin), one per line: KEY [:CODES[:TXT]].

    The whole file is checked first; if any line is bad nothing is stored and
    every bad line is reported with its number.
    """
    from rbl.store.listings import import_listings, now_utc

    zone_settings = obj.pick_zone(zone) if zone or len(obj.settings.zones) == 1 else None
    if zone_settings is None:
        raise ZoneError("give --zone: the configuration has more than one zone")
    default = parse_codes(",".join(codes)) if codes else zone_settings.default_codes
    name = getattr(source, "name", "<stdin>")
    entries, errors = [], []
    for number, entry in _parse_import(source, zone_settings, default):
        if isinstance(entry, str):
            errors.append(f"{name}:{number}: {entry}")
        else:
            entries.append(entry)
    if errors:
        shown = "\n".join(errors[:20])
        more = f"\n... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise KeyFormatError(f"{len(errors)} bad line(s), nothing imported:\n{shown}{more}")
    with obj.engine().begin() as conn:
        added, changed = import_listings(
            conn, zone_settings.name, entries, reason=reason, actor=obj.actor, now=now_utc()
        )
    click.echo(
        f"imported into {zone_settings.name}: {added} added, {changed} changed, "
        f"{len(entries) - added - changed} unchanged"
    )


def _parse_import(
    source: TextIO, zone: ZoneSettings, default: tuple[str, ...]
) -> Iterator[tuple[int, Any]]:
    from rbl.store.listings import ListingEntry

    for number, line in enumerate(source, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        key_text, _, rest = text.partition(" ")
        rest = rest.strip()
        codes, txt = default, None
        try:
            if rest:
                if not rest.startswith(":"):
                    raise KeyFormatError(f"expected ':CODES[:TXT]' after the key, got {rest!r}")
                code_text, _, txt_text = rest[1:].partition(":")
                if code_text.strip():
                    codes = parse_codes(code_text)
                if txt_text:
                    txt = check_template(txt_text, frozenset({"key", "url"}), "TXT")
            yield number, ListingEntry(_key_for(zone, key_text), codes, txt)
        except (KeyFormatError, CodeError, ConfigError) as exc:
            yield number, str(exc)


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("init")
@pass_context
def db_init(obj: Context) -> None:
    """Create the database tables (idempotent)."""
    obj.engine()
    click.echo(f"database ready: {obj.settings.database.url}")


# -- traps ------------------------------------------------------------------------------


@main.group()
def traps() -> None:
    """Define the spamtrap addresses and domains hits are matched against."""


@traps.command("add")
@click.argument("traps_given", metavar="TRAP...", nargs=-1, required=True)
@click.option("--note", default=None, help="Where the trap came from, for the operator.")
@pass_context
def traps_add(obj: Context, traps_given: tuple[str, ...], note: str | None) -> None:
    """Add traps: trap@example.org (one address) or @example.org (a whole domain)."""
    from rbl.store.listings import now_utc
    from rbl.store.traps import import_traps
    from rbl.traps import parse_trap

    specs = [parse_trap(text) for text in traps_given]
    with obj.engine().begin() as conn:
        added, present = import_traps(conn, specs, note=note, actor=obj.actor, now=now_utc())
    click.echo(f"traps: {added} added, {present} already active")


@traps.command("remove")
@click.argument("trap")
@click.option("--reason", required=True, help="Why, for the audit log.")
@pass_context
def traps_remove(obj: Context, trap: str, reason: str) -> None:
    """Stop treating TRAP as a trap (its evidence is kept)."""
    from rbl.store.listings import now_utc
    from rbl.store.traps import remove_trap
    from rbl.traps import parse_trap

    spec = parse_trap(trap)
    with obj.engine().begin() as conn:
        remove_trap(conn, spec, reason=reason, actor=obj.actor, now=now_utc())
    click.echo(f"removed trap {spec.text}")


@traps.command("list")
@click.option("--all", "include_inactive", is_flag=True, help="Include removed traps.")
@pass_context
def traps_list(obj: Context, include_inactive: bool) -> None:
    """List the traps (operator only: never publish these)."""
    from rbl.store.traps import trap_rows

    with obj.engine().connect() as conn:
        rows = trap_rows(conn)
    for spec, active, note, created in rows:
        if active or include_inactive:
            state = "active" if active else "removed"
            click.echo(f"{spec.text}\t{state}\t{created:%Y-%m-%d}\t{note or ''}")


@traps.command("import")
@click.argument("source", type=click.File("r", encoding="utf-8"))
@click.option("--note", default=None)
@pass_context
def traps_import(obj: Context, source: TextIO, note: str | None) -> None:
    """Import traps from SOURCE, one per line ('#' comments); all or nothing."""
    from rbl.store.listings import now_utc
    from rbl.store.traps import import_traps
    from rbl.traps import parse_trap

    name = getattr(source, "name", "<stdin>")
    specs, errors = [], []
    for number, line in enumerate(source, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            specs.append(parse_trap(text))
        except KeyFormatError as exc:
            errors.append(f"{name}:{number}: {exc}")
    if errors:
        shown = "\n".join(errors[:20])
        more = f"\n... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise KeyFormatError(f"{len(errors)} bad line(s), nothing imported:\n{shown}{more}")
    with obj.engine().begin() as conn:
        added, present = import_traps(conn, specs, note=note, actor=obj.actor, now=now_utc())
    click.echo(f"traps: {added} added, {present} already active")


# -- ingest -----------------------------------------------------------------------------


@main.command()
@click.option(
    "--format",
    "format_name",
    required=True,
    help="Log format: spamd, spamdb, postfix, exim or json.",
)
@click.option("--follow", is_flag=True, help="Keep reading as the log grows; survive rotation.")
@click.option(
    "--batch", "batch_size", default=5000, show_default=True, help="Lines per transaction."
)
@click.option(
    "--tz",
    "tz_name",
    default="UTC",
    show_default=True,
    help="Time zone of log timestamps that carry none (syslog).",
)
@click.option("--feed", default=None, help="Feed name recorded with the evidence.")
@click.option("--poll", default=1.0, show_default=True, help="Seconds between reads in --follow.")
@click.argument("source")
@pass_context
def ingest(
    obj: Context,
    format_name: str,
    follow: bool,
    batch_size: int,
    tz_name: str,
    feed: str | None,
    poll: float,
    source: str,
) -> None:
    """Ingest trap hits from SOURCE (a log file, or '-' for standard input).

    A file's progress is committed with every batch, so an interrupted run
    started again resumes where it stopped and counts no line twice.
    """
    import signal
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    from rbl.ingest import Ingestor, IngestReport

    try:
        tz = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise click.BadParameter(f"unknown time zone {tz_name!r}", param_hint="--tz") from None
    if batch_size < 1:
        raise click.BadParameter("must be at least 1", param_hint="--batch")
    ingestor = Ingestor(
        obj.engine(), obj.settings, format_name, batch_size=batch_size, tz=tz, feed=feed
    )
    report = IngestReport()
    stop = _StopFlag()
    signal.signal(signal.SIGTERM, stop.set)
    try:
        if source == "-":
            ingestor.ingest(sys.stdin.buffer, "<stdin>", report)
        else:
            _ingest_path(ingestor, Path(source), report, follow=follow, poll=poll, stop=stop)
    except KeyboardInterrupt:
        click.echo("interrupted: progress up to the last batch is saved", err=True)
    _print_ingest(report)


class _StopFlag:
    """Set by SIGTERM or Ctrl-C; the current batch finishes and is committed first."""

    def __init__(self) -> None:
        self.stopping = False

    def set(self, *_args: object) -> None:
        self.stopping = True

    def running(self) -> bool:
        return not self.stopping


def _ingest_path(
    ingestor: Any, path: Path, report: Any, *, follow: bool, poll: float, stop: _StopFlag
) -> None:
    """One file, or in --follow mode the file and each file that replaces it on rotation."""
    while True:
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            if not follow or stop.stopping:
                raise click.ClickException(f"cannot read {path}: no such file") from None
            time.sleep(poll)  # rotated away; the new file is not there yet
            continue
        except OSError as exc:
            raise click.ClickException(f"cannot read {path}: {exc.strerror}") from exc
        with handle:
            size = os.fstat(handle.fileno()).st_size
            visible = sys.stderr.isatty() and not follow
            with click.progressbar(
                length=size,
                label=f"ingesting {path}",
                file=sys.stderr if visible else io.StringIO(),
            ) as bar:
                ingestor.ingest(
                    handle,
                    str(path),
                    report,
                    follow=follow,
                    progress=_Progress(bar),
                    keep_going=stop.running,
                    poll=poll,
                )
        if not follow or stop.stopping:
            return


class _Progress:
    def __init__(self, bar: Any) -> None:
        self.bar = bar
        self.done = 0

    def __call__(self, offset: int) -> None:
        self.bar.update(max(offset - self.done, 0))
        self.done = offset


def _print_ingest(report: Any) -> None:
    if report.resumed_at_line:
        click.echo(f"resumed after line {report.resumed_at_line}")
    actions = report.actions
    click.echo(
        f"lines: {report.lines}  hits parsed: {report.hits}  malformed: {report.malformed}  "
        f"not traps: {actions.get('ignore', 0)}  recorded: {actions.get('record', 0)}  "
        f"listed: {actions.get('list', 0)}  extended: {actions.get('extend', 0)}"
    )
    for problem in report.problems:
        click.echo(f"malformed: {problem}", err=True)
    if report.malformed > len(report.problems):
        click.echo(f"malformed: ... and {report.malformed - len(report.problems)} more", err=True)


# -- evidence, expiry, allowlist --------------------------------------------------------


@main.command()
@click.argument("key")
@click.option("--zone", default=None)
@click.option("--limit", default=20, show_default=True, help="Evidence rows to show.")
@pass_context
def show(obj: Context, key: str, zone: str | None, limit: int) -> None:
    """Show KEY's listing with its evidence (operator view: includes trap addresses)."""
    from rbl.store.listings import covering_listings, get_listing
    from rbl.store.queries import evidence_for

    zone_settings = obj.pick_zone(zone, key)
    parsed = _key_for(zone_settings, key)
    with obj.engine().connect() as conn:
        exact = get_listing(conn, zone_settings.name, parsed)
        covering = covering_listings(conn, zone_settings.name, parsed)
        total, rows = evidence_for(conn, parsed, limit)
    listing = exact or (covering[0] if covering else None)
    if listing is None:
        click.echo(f"{parsed.text}: no listing in {zone_settings.name}")
    else:
        click.echo(
            f"{listing.key} in {listing.zone}: {listing.state}, codes "
            f"{','.join(listing.codes)}, source {listing.source}"
        )
        for label, moment in (
            ("first seen", listing.first_seen),
            ("last seen", listing.last_seen),
            ("expires", listing.expires_at),
        ):
            if moment is not None:
                click.echo(f"  {label}: {moment:%Y-%m-%d %H:%M:%S}Z")
        click.echo(f"  hits: {listing.hit_count}, times listed: {listing.times_listed}")
        if listing.reason:
            click.echo(f"  reason: {listing.reason}")
    click.echo(f"evidence: {total} hit(s){'' if total <= limit else f', newest {limit}'}")
    for hit in rows:
        click.echo(
            f"  {hit.at:%Y-%m-%d %H:%M:%S}Z {hit.client_ip} feed={hit.feed} "
            f"helo={hit.helo or '-'} from=<{hit.mail_from if hit.mail_from is not None else '?'}> "
            f"to=<{hit.rcpt_to or '?'}> {hit.action}: {hit.reason}"
        )
    if listing is None and total == 0:
        sys.exit(1)


@main.command()
@pass_context
def expire(obj: Context) -> None:
    """End listings whose evidence has stopped (``rbl serve`` does this on its own too)."""
    from rbl.store.evidence import expire_listings
    from rbl.store.listings import now_utc

    with obj.engine().begin() as conn:
        ended = expire_listings(conn, now=now_utc())
    click.echo(f"expired {len(ended)} listing(s)")
    for item in ended:
        click.echo(f"  {item}")


@main.group(name="allowlist")
def allowlist_group() -> None:
    """Addresses, networks and domains that are never listed automatically."""


@allowlist_group.command("add")
@click.argument("key")
@click.option("--reason", required=True)
@pass_context
def allowlist_add(obj: Context, key: str, reason: str) -> None:
    from rbl.store.allowlist import add_allowed, parse_allow_key
    from rbl.store.listings import now_utc

    parsed = parse_allow_key(key)
    with obj.engine().begin() as conn:
        added = add_allowed(
            conn,
            parsed,
            reason=reason,
            actor=obj.actor,
            now=now_utc(),
            zones=_zones_for(obj, parsed),
        )
    click.echo(f"{parsed.text} {'allowlisted' if added else 'was already allowlisted'}")


@allowlist_group.command("remove")
@click.argument("key")
@click.option("--reason", required=True)
@pass_context
def allowlist_remove(obj: Context, key: str, reason: str) -> None:
    from rbl.store.allowlist import parse_allow_key, remove_allowed
    from rbl.store.listings import now_utc

    parsed = parse_allow_key(key)
    with obj.engine().begin() as conn:
        remove_allowed(
            conn,
            parsed,
            reason=reason,
            actor=obj.actor,
            now=now_utc(),
            zones=_zones_for(obj, parsed),
        )
    click.echo(f"{parsed.text} removed from the allowlist")


@allowlist_group.command("list")
@pass_context
def allowlist_list(obj: Context) -> None:
    from rbl.store.allowlist import allowed_keys

    with obj.engine().connect() as conn:
        for key in allowed_keys(conn):
            click.echo(key.text)


def _zones_for(obj: Context, key: ListingKey) -> list[str]:
    kind = ZoneKind.IP if isinstance(key, IpKey) else ZoneKind.DOMAIN
    return [zone.name for zone in obj.settings.zones if zone.kind is kind]


# -- delisting and removal requests ------------------------------------------------------


@main.command()
@click.argument("key")
@click.option("--zone", default=None)
@click.option("--reason", required=True, help="Why, for the audit log (required).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_context
def delist(obj: Context, key: str, zone: str | None, reason: str, yes: bool) -> None:
    """Delist KEY now; only evidence newer than this can list it again."""
    from rbl.store.listings import covering_listings, now_utc, remove_listing

    zone_settings = obj.pick_zone(zone, key)
    parsed = _key_for(zone_settings, key)
    with obj.engine().begin() as conn:
        covering = covering_listings(conn, zone_settings.name, parsed)
        if not covering:
            raise NotListedError(f"{parsed.text} is not listed in {zone_settings.name}")
        target = covering[0]
        if target.key != parsed.text:
            raise ZoneError(
                f"{parsed.text} is listed through {target.key}; delist that, or allowlist "
                f"{parsed.text} (rbl allowlist add)"
            )
        if not yes:
            click.confirm(f"Delist {target.key} from {zone_settings.name}?", abort=True)
        remove_listing(
            conn, zone_settings.name, target.key, reason=reason, actor=obj.actor, now=now_utc()
        )
    click.echo(f"delisted {target.key} from {zone_settings.name}")


@main.group()
def requests() -> None:
    """Review removal requests from listed parties."""


def _print_request(request: Any) -> None:
    click.echo(f"request {request.id} ({request.token})")
    click.echo(f"  key:      {request.key} in {request.zone}")
    click.echo(f"  state:    {request.state}{' (self-service)' if request.self_service else ''}")
    click.echo(f"  from:     {request.email or '-'} at {request.client_ip or '-'}")
    click.echo(f"  opened:   {request.created_at:%Y-%m-%d %H:%M:%S}Z")
    if request.decided_at is not None:
        click.echo(f"  decided:  {request.decided_at:%Y-%m-%d %H:%M:%S}Z by {request.decided_by}")
        click.echo(f"  answer:   {request.decision_message or ''}")
    click.echo("  message:")
    for line in request.message.splitlines() or [""]:
        click.echo(f"    {line}")


@requests.command("list")
@click.option(
    "--state",
    type=click.Choice(["pending", "approved", "denied", "all"]),
    default="pending",
    show_default=True,
)
@click.option("--limit", default=100, show_default=True)
@pass_context
def requests_list(obj: Context, state: str, limit: int) -> None:
    from rbl.store.requests import list_requests

    with obj.engine().connect() as conn:
        found = list_requests(conn, None if state == "all" else state, limit)
    for request in found:
        first_line = (request.message.splitlines() or [""])[0][:60]
        click.echo(
            f"{request.id}\t{request.state}\t{request.zone}\t{request.key}\t"
            f"{request.created_at:%Y-%m-%d %H:%M}Z\t{first_line}"
        )


@requests.command("show")
@click.argument("request_id")
@pass_context
def requests_show(obj: Context, request_id: str) -> None:
    """Show a request (by number or token) with the listing's evidence."""
    from rbl.store.requests import RequestError, get_request

    with obj.engine().connect() as conn:
        request = get_request(conn, request_id)
    if request is None:
        raise RequestError(f"no removal request {request_id!r}")
    _print_request(request)


@requests.command("approve")
@click.argument("request_id")
@click.option("--message", required=True, help="Answer shown to the requester.")
@pass_context
def requests_approve(obj: Context, request_id: str, message: str) -> None:
    """Approve: the listing is removed and DNS follows within a second."""
    from rbl.store.listings import now_utc
    from rbl.store.requests import approve_request

    with obj.engine().begin() as conn:
        request = approve_request(conn, request_id, actor=obj.actor, message=message, now=now_utc())
    click.echo(f"approved request {request.id}: {request.key} delisted from {request.zone}")


@requests.command("deny")
@click.argument("request_id")
@click.option("--message", required=True, help="Why, shown to the requester.")
@pass_context
def requests_deny(obj: Context, request_id: str, message: str) -> None:
    from rbl.store.listings import now_utc
    from rbl.store.requests import deny_request

    with obj.engine().begin() as conn:
        request = deny_request(conn, request_id, actor=obj.actor, message=message, now=now_utc())
    click.echo(f"denied request {request.id} for {request.key}")


@main.command()
@click.option("--key", default=None, help="Only entries about this key.")
@click.option("--actor", "who", default=None, help="Only entries by this actor.")
@click.option("--action", default=None, help="Only this action (list, unlist, allow, ...).")
@click.option("--limit", default=50, show_default=True)
@pass_context
def audit(obj: Context, key: str | None, who: str | None, action: str | None, limit: int) -> None:
    """Show the audit log, newest first: who changed what, when and why."""
    from rbl.store.queries import audit_entries

    with obj.engine().connect() as conn:
        entries = audit_entries(conn, key=key, actor=who, action=action, limit=limit)
    for entry in entries:
        where = f"{entry.zone or '-'} {entry.key or '-'}"
        detail = f" [{entry.detail}]" if entry.detail else ""
        click.echo(
            f"{entry.at:%Y-%m-%d %H:%M:%S}Z\t{entry.actor}\t{entry.action}\t{where}\t"
            f"{entry.reason or ''}{detail}"
        )
