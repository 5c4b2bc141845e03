"""The TOML configuration, parsed once into frozen dataclasses.

Every module receives only the part it needs (a ``ZoneSettings``, the
``DnsSettings``...), never the raw TOML. Errors name the file and the setting.
Imports only the standard library and rbl's pure modules.
"""

from __future__ import annotations

import ipaddress
import math
import os
import string
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rbl.dnsserver.tsig import parse_key as parse_tsig_key
from rbl.errors import CodeError, ConfigError, KeyFormatError
from rbl.model.codes import parse_code, parse_codes
from rbl.model.keys import ZoneKind, normalise_domain

DEFAULT_PORT = 53
DEFAULT_UDP_PAYLOAD = 1232  # DNS flag day 2020: avoids IP fragmentation


@dataclass(frozen=True, slots=True)
class SoaSettings:
    mname: str
    rname: str
    refresh: int = 3600
    retry: int = 600
    expire: int = 604800
    minimum: int = 300


@dataclass(frozen=True, slots=True)
class PrefixSettings:
    """How wide a trap listing in an IP zone is (rbl.policy.listing.listing_key, escalation).

    Spammers rotate addresses inside the /64 a provider gives one customer, so an
    IPv6 hit lists (and counts toward) its /ipv6_prefix. Escalation lists the wider
    network once ``*_escalate_after`` trap listings inside it are active; 0 is off.
    """

    ipv6_prefix: int = 64  # 48..128; 128 lists single addresses as before
    ipv6_escalate_prefix: int = 48  # 32..ipv6_prefix-1, e.g. 48 or 56
    ipv6_escalate_after: int = 0  # listed /ipv6_prefix networks inside it; 0 = off
    ipv4_escalate_prefix: int = 24  # 16..31 (UCEPROTECT level 2 style)
    ipv4_escalate_after: int = 0  # listed addresses inside it; 0 = off


@dataclass(frozen=True, slots=True)
class ZoneSettings:
    """One DNSBL or RHSBL zone: its apex, what it lists and how answers look."""

    name: str
    kind: ZoneKind
    soa: SoaSettings
    ns: tuple[str, ...]
    ttl: int = 300
    default_codes: tuple[str, ...] = ("127.0.0.2",)
    txt: str = "Listed: {url}"
    lookup_url: str = ""
    code_meanings: tuple[tuple[str, str], ...] = ()
    prefixes: PrefixSettings = PrefixSettings()

    def txt_for(self, key_text: str, template: str | None = None) -> str:
        """The TXT string for a listed key, from the listing's or the zone's template."""
        url = self.lookup_url.format(key=key_text) if self.lookup_url else ""
        return (self.txt if template is None else template).format(key=key_text, url=url)


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """Response rate limiting over UDP per client prefix (see rbl.dnsserver.ratelimit)."""

    responses_per_second: int = 2000  # per client prefix; 0 turns rate limiting off
    slip: int = 2  # every Nth limited response is an empty TC=1 reply; 0 never, 1 always
    ipv4_prefix: int = 24
    ipv6_prefix: int = 56
    # Loopback cannot be spoofed from outside (Linux drops martian sources).
    exempt: tuple[str, ...] = ("127.0.0.0/8", "::1/128")


@dataclass(frozen=True, slots=True)
class TcpSettings:
    """Limits on DNS over TCP, per process."""

    max_connections: int = 1000
    max_per_client: int = 32  # per client address
    idle_timeout: float = 10.0  # seconds; RFC 7766 6.2.3 asks servers to reclaim idle ones


@dataclass(frozen=True, slots=True)
class DnsSettings:
    listen: tuple[tuple[str, int], ...] = (("127.0.0.1", 5353),)
    udp_payload: int = DEFAULT_UDP_PAYLOAD
    rate_limit: RateLimitSettings = field(default_factory=RateLimitSettings)
    tcp: TcpSettings = field(default_factory=TcpSettings)


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    url: str


@dataclass(frozen=True, slots=True)
class SyncSettings:
    """How often a DNS process polls the change log (bounds how stale answers are),
    and how long change-log rows are kept before ``rbl serve`` prunes them."""

    poll_interval: float = 0.2
    keep_changes: float = 7 * 86400.0  # 0: never prune


DAY = 86400.0

# Domains that big mail providers' outbound hosts have their forward-confirmed names
# in (PTR and A agree), as in mail-wr1-f41.google.com, mail-*.outbound.protection.
# outlook.com, sonic*.mail.*.yahoo.com, *.me.com / *.icloud.com, a8-30.smtp-out.
# amazonses.com, *.sendgrid.net, m*.mailgun.net, mail*.*.mandrillapp.com. A dedicated
# IP named inside its one customer's own domain is not held: it serves that customer.
DEFAULT_PROVIDER_HOSTS: tuple[str, ...] = (
    "google.com",
    "googlemail.com",
    "outlook.com",  # covers protection.outlook.com
    "hotmail.com",
    "yahoo.com",
    "yahoodns.net",
    "icloud.com",
    "me.com",
    "apple.com",
    "amazonses.com",
    "sendgrid.net",
    "mailgun.net",
    "mandrillapp.com",
    "mcsv.net",
    "rsgsv.net",
    "sparkpostmail.com",
    "mtasv.net",
    "zoho.com",
    "protonmail.ch",
    "messagingengine.com",
    "gmx.net",
    "web.de",
    "t-online.de",
    "aol.com",
    "mail.ru",
    "yandex.net",
    "qq.com",
    "163.com",
)


@dataclass(frozen=True, slots=True)
class ListingSettings:
    """How trap hits become listings (see rbl.policy.listing)."""

    ip_zone: str | None = None  # where trap listings go; None: the first IP zone
    domain_zone: str | None = None  # RHSBL zone for domains tied to the sender; None: off
    threshold: int = 1  # hits within ``window`` before an address is listed
    window: float = 7 * DAY
    duration: float = 7 * DAY  # a first listing lives this long after the last hit
    repeat_factor: float = 2.0  # each earlier listing multiplies the duration...
    max_duration: float = 90 * DAY  # ...up to this cap
    own_networks: tuple[str, ...] = ()  # the operator's networks: never listed
    expiry_interval: float = 60.0  # seconds between expiry sweeps in ``rbl serve``
    # Hosts whose verified name lies inside one of these domains are held for review
    # instead of listed; default DEFAULT_PROVIDER_HOSTS, [] holds none; 0..1000 entries,
    # each a domain of two labels or more.
    provider_hosts: tuple[str, ...] = DEFAULT_PROVIDER_HOSTS
    held_networks: tuple[str, ...] = ()  # addresses or CIDR networks held the same way


@dataclass(frozen=True, slots=True)
class PolicyFeedSettings:
    """The Postfix policy delegation feed inside ``rbl serve`` (off unless ``listen`` is set).

    A policy client names the client address and recipient of each request, and rbl
    believes it: anyone who can connect can have any address listed. So only the
    ``allow`` networks (loopback unless set) are served; others are closed at once.
    """

    listen: tuple[str, int] | None = None
    # A trap hit is answered once it is committed; past this, "defer if permit".
    commit_timeout: float = 10.0
    allow: tuple[str, ...] = ("127.0.0.0/8", "::1/128")  # the Postfix hosts, nobody else
    # Postfix opens one connection per smtpd process (default_process_limit 100).
    max_connections: int = 1000
    max_per_client: int = 200
    # Postfix closes an idle one after smtpd_policy_service_max_idle (300 s) itself;
    # rbl waits longer and only reclaims those of dead or misbehaving peers.
    idle_timeout: float = 360.0
    # Answer RCPT requests from a client the trap IP zone lists with a reject, as
    # reject_rbl_client would, from the same in-memory index DNS answers from: the
    # next attempt is rejected even when a resolver cached an NXDOMAIN from before
    # the hit (postscreen's connect-time lookup). Off: the feed only observes.
    reject_listed: bool = False


@dataclass(frozen=True, slots=True)
class WebSettings:
    """The public lookup and removal site inside ``rbl serve`` (off unless ``listen`` is set)."""

    listen: tuple[str, int] | None = None
    title: str = "DNSBL lookup"
    contact: str = ""  # shown on every page: how to reach the operator
    # Removal requests per hour from one client network (1..10000); a network is
    # the client's IPv4 /removal_ipv4_prefix or IPv6 /removal_ipv6_prefix (0..32,
    # 0..128): one host holds a whole IPv6 /64, and often many IPv4 addresses of a /24.
    requests_per_hour: int = 5
    removal_ipv4_prefix: int = 24
    removal_ipv6_prefix: int = 64
    trusted_proxies: tuple[str, ...] = ()  # whose X-Forwarded-For names the client
    max_connections: int = 200  # open at once (1..100000); past it, 503 for the new one
    # Open at once from one client (1..100000), counted per IPv4 /connection_ipv4_prefix
    # and IPv6 /connection_ipv6_prefix; past it the new one is closed at once, so one
    # client cannot take the whole of max_connections. Trusted proxies are not capped.
    max_connections_per_client: int = 20
    connection_ipv4_prefix: int = 32
    connection_ipv6_prefix: int = 64
    request_timeout: float = 20.0  # seconds from a request's first byte to its last (1..300)


TIME_RESOLUTIONS = ("day", "hour")


@dataclass(frozen=True, slots=True)
class PublicSettings:
    """What public pages show of the evidence; each opt-in's risk is in docs/SECURITY.md.

    The defaults cannot tell a sender which of its recipients were traps.
    """

    time_resolution: str = "day"  # "day" or "hour": the finest time a public page gives
    show_trap_domains: bool = False  # hits per domain of the address traps hit (true/false)


@dataclass(frozen=True, slots=True)
class DelistingSettings:
    """Operator review (default), or self-service removal once per key per period."""

    self_service: bool = False
    self_service_period: float = 30 * DAY
    # Each listing keeps at most this many pending requests (1..1000); past it a new one
    # is refused with a clear answer (never dropped), so a flood cannot grow the table.
    max_pending_per_key: int = 20
    requests_per_key_per_hour: int = 10  # requests one listing takes per hour (1..10000)


@dataclass(frozen=True, slots=True)
class DumpSettings:
    """The hourly mirror dump inside ``rbl serve`` (off unless ``directory`` is set)."""

    directory: str | None = None
    interval: float = 3600.0
    gzip_level: int = 6


@dataclass(frozen=True, slots=True)
class TransferSettings:
    """Zone transfers out (AXFR/IXFR over TCP) and NOTIFY to secondaries."""

    allow: tuple[str, ...] = ()  # client networks; empty refuses every transfer
    notify: tuple[tuple[str, int], ...] = ()  # secondaries, "address:port"
    tsig: tuple[str, ...] = ()  # "name:algorithm:base64"; when set, transfers must be signed


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """Prometheus /metrics on its own port (off unless ``listen`` is set): not for the public."""

    listen: tuple[str, int] | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    database: DatabaseSettings
    zones: tuple[ZoneSettings, ...]
    dns: DnsSettings = field(default_factory=DnsSettings)
    sync: SyncSettings = field(default_factory=SyncSettings)
    listing: ListingSettings = field(default_factory=ListingSettings)
    policy_feed: PolicyFeedSettings = field(default_factory=PolicyFeedSettings)
    web: WebSettings = field(default_factory=WebSettings)
    public: PublicSettings = field(default_factory=PublicSettings)
    delisting: DelistingSettings = field(default_factory=DelistingSettings)
    dumps: DumpSettings = field(default_factory=DumpSettings)
    transfer: TransferSettings = field(default_factory=TransferSettings)
    metrics: MetricsSettings = field(default_factory=MetricsSettings)
    source: str = "<defaults>"

    def trap_ip_zone(self) -> ZoneSettings:
        """The IP zone trap listings go into."""
        if self.listing.ip_zone is not None:
            return self.zone(self.listing.ip_zone)
        for zone in self.zones:
            if zone.kind is ZoneKind.IP:
                return zone
        raise ConfigError(f'{self.source}: trap listings need a zone with kind = "ip"')

    def trap_domain_zone(self) -> ZoneSettings | None:
        return None if self.listing.domain_zone is None else self.zone(self.listing.domain_zone)

    def zone(self, name: str) -> ZoneSettings:
        wanted = name.strip().rstrip(".").lower()
        for zone in self.zones:
            if zone.name == wanted:
                return zone
        known = ", ".join(zone.name for zone in self.zones)
        raise ConfigError(f"no zone {name!r} in {self.source} (zones: {known})")


def check_template(template: str, allowed: frozenset[str], where: str) -> str:
    """Reject templates that would fail or leak at answer time: unknown fields, format specs."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"{where}: template {template!r} is malformed: {exc}") from exc
    for _, field_name, spec, conversion in parts:
        if field_name is None:
            continue
        if field_name not in allowed or spec or conversion:
            names = ", ".join("{" + name + "}" for name in sorted(allowed))
            raise ConfigError(f"{where}: template {template!r} may only use {names}")
    return template


def load_settings(path: str | os.PathLike[str], database_url: str | None = None) -> Settings:
    """Read and check a TOML file; ``database_url`` (e.g. from the CLI) overrides the file."""
    source = Path(path)
    try:
        with source.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {source}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source} is not valid TOML: {exc}") from exc
    return parse_settings(data, source=source, database_url=database_url)


def parse_settings(
    data: Mapping[str, Any], *, source: Path, database_url: str | None = None
) -> Settings:
    where = str(source)
    _only(
        data,
        {
            "dns",
            "database",
            "sync",
            "zones",
            "listing",
            "feeds",
            "web",
            "public",
            "delisting",
            "dumps",
            "transfer",
            "metrics",
        },
        where,
    )
    db = _table(data, "database", where)
    _only(db, {"url"}, f"{where} [database]")
    url = _get(db, "url", str, f"{where} [database]", "sqlite:///rbl.sqlite")
    zones_data = data.get("zones")
    if not isinstance(zones_data, list) or not zones_data:
        raise ConfigError(f"{where}: at least one [[zones]] table is required")
    zones = tuple(_zone(z, f"{where} [[zones]] #{i + 1}") for i, z in enumerate(zones_data))
    names = [zone.name for zone in zones]
    for zone in zones:
        if names.count(zone.name) > 1:
            raise ConfigError(f"{where}: zone {zone.name!r} is defined twice")
    return Settings(
        # A URL from the command line is relative to where the command runs.
        database=DatabaseSettings(
            _resolve_sqlite(database_url, Path.cwd())
            if database_url
            else _resolve_sqlite(url, source.parent)
        ),
        zones=zones,
        dns=_dns(_table(data, "dns", where), f"{where} [dns]"),
        sync=_sync(_table(data, "sync", where), f"{where} [sync]"),
        listing=_listing(_table(data, "listing", where), zones, f"{where} [listing]"),
        policy_feed=_feeds(_table(data, "feeds", where), f"{where} [feeds]"),
        web=_web(_table(data, "web", where), f"{where} [web]"),
        public=_public(_table(data, "public", where), f"{where} [public]"),
        delisting=_delisting(_table(data, "delisting", where), f"{where} [delisting]"),
        dumps=_dumps(_table(data, "dumps", where), source.parent, f"{where} [dumps]"),
        transfer=_transfer(_table(data, "transfer", where), f"{where} [transfer]"),
        metrics=_metrics(_table(data, "metrics", where), f"{where} [metrics]"),
        source=where,
    )


def _transfer(data: Mapping[str, Any], where: str) -> TransferSettings:
    _only(data, {"allow", "notify", "tsig"}, where)
    allow = _networks(data, "allow", where)
    notify_raw = data.get("notify", [])
    if not isinstance(notify_raw, list):
        raise ConfigError(f"{where}: notify must be a list of 'address:port'")
    keys = data.get("tsig", [])
    if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
        raise ConfigError(f"{where}: tsig must be a list of 'name:algorithm:base64-secret'")
    for key in keys:
        parse_tsig_key(key, f"{where} tsig")
    return TransferSettings(
        allow, tuple(parse_endpoint(item, where) for item in notify_raw), tuple(keys)
    )


def _metrics(data: Mapping[str, Any], where: str) -> MetricsSettings:
    _only(data, {"listen"}, where)
    listen = data.get("listen")
    return MetricsSettings(None if listen is None else parse_endpoint(listen, f"{where} listen"))


def _dumps(data: Mapping[str, Any], base: Path, where: str) -> DumpSettings:
    _only(data, {"directory", "interval", "gzip_level"}, where)
    directory = data.get("directory")
    if directory is not None and (not isinstance(directory, str) or not directory.strip()):
        raise ConfigError(f"{where}: directory must be a non-empty path")
    interval = parse_duration(data.get("interval", 3600.0), f"{where} interval", maximum=7 * DAY)
    if interval < 60:
        raise ConfigError(f"{where}: interval {interval:g}s is shorter than a minute")
    level = _get(data, "gzip_level", int, where, 6)
    if not 1 <= level <= 9:
        raise ConfigError(f"{where}: gzip_level {level} is outside 1..9")
    return DumpSettings(
        directory=None if directory is None else str((base / directory).resolve()),
        interval=interval,
        gzip_level=level,
    )


def _web(data: Mapping[str, Any], where: str) -> WebSettings:
    _only(
        data,
        {
            "listen",
            "title",
            "contact",
            "requests_per_hour",
            "removal_ipv4_prefix",
            "removal_ipv6_prefix",
            "trusted_proxies",
            "max_connections",
            "max_connections_per_client",
            "connection_ipv4_prefix",
            "connection_ipv6_prefix",
            "request_timeout",
        },
        where,
    )
    defaults = WebSettings()
    listen = data.get("listen")
    rate = _int_in(data, "requests_per_hour", where, defaults.requests_per_hour, 1, 10_000)
    connections = _int_in(data, "max_connections", where, defaults.max_connections, 1, 100_000)
    per_client = _int_in(
        data, "max_connections_per_client", where, defaults.max_connections_per_client, 1, 100_000
    )
    request_timeout = float(_get(data, "request_timeout", (int, float), where, 20.0))
    if not 1 <= request_timeout <= 300:
        raise ConfigError(f"{where}: request_timeout {request_timeout:g}s is outside 1..300")
    proxies = _networks(data, "trusted_proxies", where)
    return WebSettings(
        listen=None if listen is None else parse_endpoint(listen, f"{where} listen"),
        title=_get(data, "title", str, where, "DNSBL lookup"),
        contact=_get(data, "contact", str, where, ""),
        requests_per_hour=rate,
        removal_ipv4_prefix=_int_in(
            data, "removal_ipv4_prefix", where, defaults.removal_ipv4_prefix, 0, 32
        ),
        removal_ipv6_prefix=_int_in(
            data, "removal_ipv6_prefix", where, defaults.removal_ipv6_prefix, 0, 128
        ),
        trusted_proxies=proxies,
        max_connections=connections,
        max_connections_per_client=per_client,
        connection_ipv4_prefix=_int_in(
            data, "connection_ipv4_prefix", where, defaults.connection_ipv4_prefix, 0, 32
        ),
        connection_ipv6_prefix=_int_in(
            data, "connection_ipv6_prefix", where, defaults.connection_ipv6_prefix, 0, 128
        ),
        request_timeout=request_timeout,
    )


def _public(data: Mapping[str, Any], where: str) -> PublicSettings:
    _only(data, {"time_resolution", "show_trap_domains"}, where)
    defaults = PublicSettings()
    resolution = _get(data, "time_resolution", str, where, defaults.time_resolution)
    if resolution not in TIME_RESOLUTIONS:
        raise ConfigError(
            f"{where}: time_resolution {resolution!r} is not one of {', '.join(TIME_RESOLUTIONS)}"
        )
    show = data.get("show_trap_domains", defaults.show_trap_domains)
    if not isinstance(show, bool):
        raise ConfigError(f"{where}: show_trap_domains must be true or false, not {show!r}")
    return PublicSettings(time_resolution=resolution, show_trap_domains=show)


def _delisting(data: Mapping[str, Any], where: str) -> DelistingSettings:
    _only(
        data,
        {"mode", "self_service_period", "max_pending_per_key", "requests_per_key_per_hour"},
        where,
    )
    defaults = DelistingSettings()
    mode = _get(data, "mode", str, where, "review")
    if mode not in ("review", "self-service"):
        raise ConfigError(f"{where}: mode {mode!r} is not 'review' or 'self-service'")
    period = parse_duration(
        data.get("self_service_period", defaults.self_service_period),
        f"{where} self_service_period",
    )
    return DelistingSettings(
        self_service=mode == "self-service",
        self_service_period=period,
        max_pending_per_key=_int_in(
            data, "max_pending_per_key", where, defaults.max_pending_per_key, 1, 1000
        ),
        requests_per_key_per_hour=_int_in(
            data, "requests_per_key_per_hour", where, defaults.requests_per_key_per_hour, 1, 10_000
        ),
    )


_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": DAY, "w": 7 * DAY}


MAX_DURATION = 3650 * DAY  # ten years: past it a listing or a window means "for ever"


def parse_duration(value: object, where: str, *, maximum: float = MAX_DURATION) -> float:
    """Seconds from a number or a string such as "90s", "30m", "12h", "7d", "2w".

    Bounded (``maximum``, ten years unless the setting says less): a typo such as
    ``3000000d`` would otherwise pass here and overflow the first date computed from it.
    """
    if isinstance(value, bool):
        raise ConfigError(f"{where}: {value!r} is not a duration")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str) and value.strip()[-1:].lower() in _UNITS:
        text = value.strip()
        try:
            seconds = float(text[:-1]) * _UNITS[text[-1].lower()]
        except (ValueError, OverflowError):
            raise ConfigError(f"{where}: {value!r} is not a duration like 7d or 12h") from None
    else:
        raise ConfigError(f"{where}: {value!r} is not a duration like 7d, 12h, 30m or 90s")
    if not math.isfinite(seconds):
        raise ConfigError(f"{where}: {value!r} is not a finite duration")
    if seconds <= 0:
        raise ConfigError(f"{where}: duration {value!r} must be positive")
    if seconds > maximum:
        raise ConfigError(f"{where}: {value!r} is longer than the bound of {describe(maximum)}")
    return seconds


def describe(seconds: float) -> str:
    """A duration in the largest unit that divides it ("3650d (10 years)", "1d", "90s")."""
    if seconds == MAX_DURATION:
        return "3650d (10 years)"
    for unit in ("w", "d", "h", "m"):
        if seconds >= _UNITS[unit] and seconds % _UNITS[unit] == 0:
            return f"{seconds / _UNITS[unit]:g}{unit}"
    return f"{seconds:g}s"


def _listing(
    data: Mapping[str, Any], zones: tuple[ZoneSettings, ...], where: str
) -> ListingSettings:
    _only(
        data,
        {
            "ip_zone",
            "domain_zone",
            "threshold",
            "window",
            "duration",
            "repeat_factor",
            "max_duration",
            "own_networks",
            "expiry_interval",
            "provider_hosts",
            "held_networks",
        },
        where,
    )
    by_name = {zone.name: zone for zone in zones}
    picked: dict[str, str | None] = {}
    for item, kind in (("ip_zone", ZoneKind.IP), ("domain_zone", ZoneKind.DOMAIN)):
        name = data.get(item)
        if name is None:
            picked[item] = None
            continue
        zone = by_name.get(str(name).rstrip(".").lower())
        if zone is None or zone.kind is not kind:
            raise ConfigError(f"{where}: {item} {name!r} is not a configured {kind.value} zone")
        picked[item] = zone.name
    threshold = _get(data, "threshold", int, where, 1)
    if not 1 <= threshold <= 1000:
        raise ConfigError(f"{where}: threshold {threshold} is outside 1..1000")
    factor = _get(data, "repeat_factor", (int, float), where, 2.0)
    if not 1.0 <= factor <= 100.0:
        raise ConfigError(f"{where}: repeat_factor {factor} is outside 1..100")
    durations = {
        item: parse_duration(data.get(item, default), f"{where} {item}", maximum=bound)
        for item, default, bound in (
            ("window", 7 * DAY, MAX_DURATION),
            ("duration", 7 * DAY, MAX_DURATION),
            ("max_duration", 90 * DAY, MAX_DURATION),
            ("expiry_interval", 60.0, DAY),  # listings may outlive their end by this much
        )
    }
    if durations["max_duration"] < durations["duration"]:
        raise ConfigError(f"{where}: max_duration is shorter than duration")
    networks = _networks(data, "own_networks", where)
    return ListingSettings(
        ip_zone=picked["ip_zone"],
        domain_zone=picked["domain_zone"],
        threshold=threshold,
        repeat_factor=float(factor),
        own_networks=networks,
        provider_hosts=_provider_hosts(data, where),
        held_networks=_networks(data, "held_networks", where),
        **durations,
    )


def _provider_hosts(data: Mapping[str, Any], where: str) -> tuple[str, ...]:
    """Domains of big providers' outbound hosts, each a real domain, never a bare TLD."""
    if "provider_hosts" not in data:
        return DEFAULT_PROVIDER_HOSTS
    items = data["provider_hosts"]
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise ConfigError(f"{where}: provider_hosts must be a list of domains")
    if len(items) > 1000:
        raise ConfigError(f"{where}: provider_hosts has {len(items)} entries, more than 1000")
    domains = []
    for item in items:
        domain = _domain(item, where, f"provider_hosts entry {item!r}")
        if "." not in domain:
            raise ConfigError(
                f"{where}: provider_hosts entry {item!r} is a top-level domain; it would hold "
                "every host under it: name the provider's domain, such as google.com"
            )
        domains.append(domain)
    return tuple(dict.fromkeys(domains))


def _networks(data: Mapping[str, Any], name: str, where: str) -> tuple[str, ...]:
    """A list of addresses or CIDR networks, each checked."""
    networks = data.get(name, [])
    if not isinstance(networks, list) or not all(isinstance(n, str) for n in networks):
        raise ConfigError(f"{where}: {name} must be a list of addresses or CIDR networks")
    for network in networks:
        try:
            ipaddress.ip_network(network, strict=False)
        except ValueError as exc:
            raise ConfigError(f"{where}: {name} entry {network!r}: {exc}") from exc
    return tuple(networks)


def _feeds(data: Mapping[str, Any], where: str) -> PolicyFeedSettings:
    _only(data, {"policy"}, where)
    policy = _table(data, "policy", where)
    where = f"{where}.policy"
    _only(
        policy,
        {
            "listen",
            "commit_timeout",
            "allow",
            "max_connections",
            "max_per_client",
            "idle_timeout",
            "reject_listed",
        },
        where,
    )
    defaults = PolicyFeedSettings()
    reject_listed = policy.get("reject_listed", defaults.reject_listed)
    if not isinstance(reject_listed, bool):
        raise ConfigError(f"{where}: reject_listed must be true or false, not {reject_listed!r}")
    timeout = parse_duration(policy.get("commit_timeout", 10.0), f"{where} commit_timeout")
    if not 0.1 <= timeout <= 60:
        # Postfix waits smtpd_policy_service_timeout (100 s) for an answer.
        raise ConfigError(f"{where}: commit_timeout {timeout:g}s is outside 0.1..60 seconds")
    idle = parse_duration(
        policy.get("idle_timeout", defaults.idle_timeout), f"{where} idle_timeout", maximum=86400
    )
    if idle < 10:
        raise ConfigError(f"{where}: idle_timeout {idle:g}s is under 10 seconds")
    listen = policy.get("listen")
    return PolicyFeedSettings(
        listen=None if listen is None else parse_endpoint(listen, f"{where} listen"),
        commit_timeout=timeout,
        allow=_networks(policy, "allow", where) if "allow" in policy else defaults.allow,
        max_connections=_int_in(
            policy, "max_connections", where, defaults.max_connections, 1, 100_000
        ),
        max_per_client=_int_in(
            policy, "max_per_client", where, defaults.max_per_client, 1, 100_000
        ),
        idle_timeout=idle,
        reject_listed=reject_listed,
    )


def _resolve_sqlite(url: str, base: Path) -> str:
    """Relative SQLite paths are relative to the configuration file, not the working dir."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        rest = url[len(prefix) :]
        if rest and not rest.startswith(":memory:"):
            return prefix + str((base / rest).resolve())
    return url


def _dns(data: Mapping[str, Any], where: str) -> DnsSettings:
    _only(data, {"listen", "udp_payload", "rate_limit", "tcp"}, where)
    listen_raw = data.get("listen", ["127.0.0.1:5353"])
    if not isinstance(listen_raw, list) or not listen_raw:
        raise ConfigError(f"{where}: listen must be a non-empty list of 'address:port'")
    listen = tuple(parse_endpoint(item, where) for item in listen_raw)
    payload = _get(data, "udp_payload", int, where, DEFAULT_UDP_PAYLOAD)
    if not 512 <= payload <= 4096:
        raise ConfigError(f"{where}: udp_payload {payload} is outside 512..4096")
    return DnsSettings(
        listen=listen,
        udp_payload=payload,
        rate_limit=_rate_limit(_table(data, "rate_limit", where), f"{where[:-1]}.rate_limit]"),
        tcp=_tcp(_table(data, "tcp", where), f"{where[:-1]}.tcp]"),
    )


def _int_in(
    data: Mapping[str, Any], name: str, where: str, default: int, low: int, high: int
) -> int:
    value: int = _get(data, name, int, where, default)
    if not low <= value <= high:
        raise ConfigError(f"{where}: {name} {value} is outside {low}..{high}")
    return value


def _rate_limit(data: Mapping[str, Any], where: str) -> RateLimitSettings:
    _only(data, {"responses_per_second", "slip", "ipv4_prefix", "ipv6_prefix", "exempt"}, where)
    defaults = RateLimitSettings()
    exempt = _networks(data, "exempt", where) if "exempt" in data else defaults.exempt
    return RateLimitSettings(
        responses_per_second=_int_in(
            data, "responses_per_second", where, defaults.responses_per_second, 0, 1_000_000_000
        ),
        slip=_int_in(data, "slip", where, defaults.slip, 0, 10),
        ipv4_prefix=_int_in(data, "ipv4_prefix", where, defaults.ipv4_prefix, 0, 32),
        ipv6_prefix=_int_in(data, "ipv6_prefix", where, defaults.ipv6_prefix, 0, 128),
        exempt=exempt,
    )


def _tcp(data: Mapping[str, Any], where: str) -> TcpSettings:
    _only(data, {"max_connections", "max_per_client", "idle_timeout"}, where)
    defaults = TcpSettings()
    total = _int_in(data, "max_connections", where, defaults.max_connections, 1, 1_000_000)
    per_client = _int_in(data, "max_per_client", where, defaults.max_per_client, 1, 1_000_000)
    idle = _get(data, "idle_timeout", (int, float), where, defaults.idle_timeout)
    if not 0.1 <= idle <= 3600:
        raise ConfigError(f"{where}: idle_timeout {idle} is outside 0.1..3600 seconds")
    return TcpSettings(max_connections=total, max_per_client=per_client, idle_timeout=float(idle))


def parse_endpoint(item: object, where: str) -> tuple[str, int]:
    """Parse ``127.0.0.1:53``, ``[::1]:53``, ``::1`` or ``0.0.0.0`` (port 53 when absent)."""
    if not isinstance(item, str):
        raise ConfigError(f"{where}: listen entry {item!r} is not a string")
    if item.startswith("["):
        host, closed, rest = item[1:].partition("]")
        if not closed or (rest and not rest.startswith(":")):
            raise ConfigError(f"{where}: listen entry {item!r} is not '[address]:port'")
        port_text = rest[1:] if rest else str(DEFAULT_PORT)
    elif item.count(":") > 1:  # a bare IPv6 address
        host, port_text = item, str(DEFAULT_PORT)
    else:
        host, sep, port_text = item.partition(":")
        if not sep:
            port_text = str(DEFAULT_PORT)
    try:
        port = int(port_text)
    except ValueError:
        raise ConfigError(f"{where}: listen entry {item!r} has no numeric port") from None
    if not host or not 0 <= port <= 65535:
        raise ConfigError(f"{where}: listen entry {item!r} is not 'address:port'")
    return host, port


def _sync(data: Mapping[str, Any], where: str) -> SyncSettings:
    _only(data, {"poll_interval", "keep_changes"}, where)
    interval = _get(data, "poll_interval", (int, float), where, 0.2)
    if not 0.01 <= interval <= 60:
        raise ConfigError(f"{where}: poll_interval {interval} is outside 0.01..60 seconds")
    raw = data.get("keep_changes", 7 * DAY)
    keep = (
        0.0
        if raw == 0 and not isinstance(raw, bool)
        else parse_duration(raw, f"{where} keep_changes")
    )
    if keep and keep < 3600:
        raise ConfigError(
            f"{where}: keep_changes {keep:g}s is under an hour (0 keeps every change)"
        )
    return SyncSettings(float(interval), keep)


def _zone(data: object, where: str) -> ZoneSettings:
    if not isinstance(data, dict):
        raise ConfigError(f"{where} is not a table")
    _only(
        data,
        {"name", "kind", "ttl", "soa", "ns", "codes", "default_code", "txt", "lookup_url"}
        | set(_PREFIX_ITEMS),
        where,
    )
    name = _domain(_get(data, "name", str, where), where, "name")
    where = f"{where} ({name})"
    kind_text = _get(data, "kind", str, where, "ip")
    try:
        kind = ZoneKind(kind_text)
    except ValueError:
        raise ConfigError(f"{where}: kind {kind_text!r} is not 'ip' or 'domain'") from None
    ttl = _get(data, "ttl", int, where, 300)
    if not 0 <= ttl <= 604800:
        raise ConfigError(f"{where}: ttl {ttl} is outside 0..604800")
    ns_raw = data.get("ns", [])
    if not isinstance(ns_raw, list) or not ns_raw or not all(isinstance(n, str) for n in ns_raw):
        raise ConfigError(f"{where}: ns must be a non-empty list of host names")
    ns = tuple(_domain(n, where, "ns") for n in ns_raw)
    soa = _soa(_table(data, "soa", where), ns[0], name, f"{where} [soa]")
    try:
        default_codes = parse_codes(_get(data, "default_code", str, where, "127.0.0.2"))
        meanings = tuple(
            sorted(
                (parse_code(code), str(text)) for code, text in _table(data, "codes", where).items()
            )
        )
    except CodeError as exc:
        raise ConfigError(f"{where}: {exc}") from exc
    txt = check_template(
        _get(data, "txt", str, where, "Listed: {url}"), frozenset({"key", "url"}), f"{where} txt"
    )
    lookup_url = check_template(
        _get(data, "lookup_url", str, where, ""), frozenset({"key"}), f"{where} lookup_url"
    )
    return ZoneSettings(
        name=name,
        kind=kind,
        soa=soa,
        ns=ns,
        ttl=ttl,
        default_codes=default_codes,
        txt=txt,
        lookup_url=lookup_url,
        code_meanings=meanings,
        prefixes=_prefixes(data, kind, where),
    )


_PREFIX_ITEMS = (
    "ipv6_prefix",
    "ipv6_escalate_prefix",
    "ipv6_escalate_after",
    "ipv4_escalate_prefix",
    "ipv4_escalate_after",
)


def _prefixes(data: Mapping[str, Any], kind: ZoneKind, where: str) -> PrefixSettings:
    defaults = PrefixSettings()
    given = [item for item in _PREFIX_ITEMS if item in data]
    if given and kind is not ZoneKind.IP:
        raise ConfigError(f"{where}: {', '.join(given)} only apply to an ip zone")
    ipv6 = _int_in(data, "ipv6_prefix", where, defaults.ipv6_prefix, 48, 128)
    escalate6 = _int_in(
        data, "ipv6_escalate_prefix", where, min(defaults.ipv6_escalate_prefix, ipv6 - 1), 32, 127
    )
    after6 = _int_in(data, "ipv6_escalate_after", where, defaults.ipv6_escalate_after, 0, 65536)
    if after6 and escalate6 >= ipv6:
        raise ConfigError(
            f"{where}: ipv6_escalate_prefix /{escalate6} must be wider than ipv6_prefix /{ipv6}"
        )
    after4 = _int_in(data, "ipv4_escalate_after", where, defaults.ipv4_escalate_after, 0, 65536)
    for name, after in (("ipv6_escalate_after", after6), ("ipv4_escalate_after", after4)):
        if after == 1:
            raise ConfigError(
                f"{where}: {name} 1 would list the wider network on every listing; "
                "use 0 (off) or 2 or more"
            )
    return PrefixSettings(
        ipv6_prefix=ipv6,
        ipv6_escalate_prefix=escalate6,
        ipv6_escalate_after=after6,
        ipv4_escalate_prefix=_int_in(
            data, "ipv4_escalate_prefix", where, defaults.ipv4_escalate_prefix, 16, 31
        ),
        ipv4_escalate_after=after4,
    )


def _soa(data: Mapping[str, Any], first_ns: str, zone: str, where: str) -> SoaSettings:
    _only(data, {"mname", "rname", "refresh", "retry", "expire", "minimum"}, where)
    mname = _domain(_get(data, "mname", str, where, first_ns), where, "mname")
    rname_raw = _get(data, "rname", str, where, f"hostmaster.{zone}")
    mailbox, at, domain = rname_raw.partition("@")
    if at and "." in mailbox:
        raise ConfigError(
            f"{where}: rname {rname_raw!r}: a mailbox with a dot cannot be written "
            "unambiguously in a SOA; use one without (e.g. hostmaster@)"
        )
    rname_text = f"{mailbox}.{domain}" if at else rname_raw
    rname = _domain(rname_text, where, "rname")
    numbers = {}
    for item, default in (("refresh", 3600), ("retry", 600), ("expire", 604800), ("minimum", 300)):
        value = _get(data, item, int, where, default)
        if not 0 <= value <= 2**31 - 1:
            raise ConfigError(f"{where}: {item} {value} is outside 0..2147483647")
        numbers[item] = value
    return SoaSettings(mname=mname, rname=rname, **numbers)


def _domain(text: str, where: str, item: str) -> str:
    try:
        return normalise_domain(text.rstrip("."))
    except KeyFormatError as exc:
        raise ConfigError(f"{where}: {item}: {exc}") from exc


def _table(data: Mapping[str, Any], name: str, where: str) -> Mapping[str, Any]:
    value = data.get(name, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: {name} must be a table")
    return value


def _only(data: Mapping[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise ConfigError(
            f"{where}: unknown setting(s) {', '.join(unknown)}; "
            f"expected some of {', '.join(sorted(allowed))}"
        )


_MISSING: Any = object()


def _get(
    data: Mapping[str, Any],
    name: str,
    kind: type | tuple[type, ...],
    where: str,
    default: Any = _MISSING,
) -> Any:
    if name not in data:
        if default is _MISSING:
            raise ConfigError(f"{where}: {name} is required")
        return default
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else "number"
        raise ConfigError(f"{where}: {name} must be a {expected}, not {value!r}")
    return value
