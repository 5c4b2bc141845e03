"""The service sections of the file: [dns], [sync], [listing], [feeds.policy], [web]...

Each is a frozen dataclass whose fields declare their default and reader beside them
(rbl.config.fields.setting), so rbl.config.load reads every one with the same
``read_section``. What a field alone cannot say (one setting bounded by another,
names of configured zones) is checked by the small functions after the dataclasses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rbl.config.fields import Table, rule, setting
from rbl.config.readers import (
    Choice,
    Duration,
    Endpoint,
    Endpoints,
    Flag,
    Given,
    Int,
    Networks,
    Number,
    Reader,
    Text,
)
from rbl.config.secondaries import Secondaries, SecondarySettings
from rbl.config.tsigkeys import parse_key as parse_tsig_key
from rbl.config.values import DAY, parse_domain
from rbl.config.zones import ZoneSettings
from rbl.errors import ConfigError
from rbl.model.keys import ZoneKind

DEFAULT_UDP_PAYLOAD = 1232  # DNS flag day 2020: avoids IP fragmentation

_PREFIX4 = Int(0, 32)
_PREFIX6 = Int(0, 128)
_LOOPBACK = ("127.0.0.0/8", "::1/128")


@dataclass(frozen=True, slots=True)
class RateLimitSettings:
    """Response rate limiting over UDP per client prefix (see rbl.dnsserver.ratelimit)."""

    # per client prefix; 0 turns rate limiting off
    responses_per_second: int = setting(2000, Int(0, 1_000_000_000))
    # every Nth limited response is an empty TC=1 reply; 0 never, 1 always
    slip: int = setting(2, Int(0, 10))
    ipv4_prefix: int = setting(24, _PREFIX4)
    ipv6_prefix: int = setting(56, _PREFIX6)
    # Loopback cannot be spoofed from outside (Linux drops martian sources).
    exempt: tuple[str, ...] = setting(_LOOPBACK, Networks())


@dataclass(frozen=True, slots=True)
class TcpSettings:
    """Limits on DNS over TCP, per process."""

    max_connections: int = setting(1000, Int(1, 1_000_000))
    max_per_client: int = setting(32, Int(1, 1_000_000))  # per client address
    # seconds; RFC 7766 6.2.3 asks servers to reclaim idle ones
    idle_timeout: float = setting(10.0, Number(0.1, 3600, unit=" seconds"))


@dataclass(frozen=True, slots=True)
class DnsSettings:
    listen: tuple[tuple[str, int], ...] = setting((("127.0.0.1", 5353),), Endpoints(non_empty=True))
    udp_payload: int = setting(DEFAULT_UDP_PAYLOAD, Int(512, 4096))
    rate_limit: RateLimitSettings = field(
        default_factory=RateLimitSettings, metadata=rule(Table(RateLimitSettings))
    )
    tcp: TcpSettings = field(default_factory=TcpSettings, metadata=rule(Table(TcpSettings)))


@dataclass(frozen=True, slots=True)
class DatabaseSettings:
    # A relative SQLite path is relative to the file (rbl.config.load resolves it).
    url: str = setting("sqlite:///rbl.sqlite", Text())


@dataclass(frozen=True, slots=True)
class SyncSettings:
    """How often a DNS process polls the change log (bounds how stale answers are),
    and how long change-log rows are kept before ``rbl serve`` prunes them."""

    poll_interval: float = setting(0.2, Number(0.01, 60, unit=" seconds"))
    keep_changes: float = setting(  # 0: never prune
        7 * DAY,
        Duration(least=3600, below="is under an hour (0 keeps every change)", zero_off=True),
    )


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
class ProviderHosts(Reader):
    """Domains of big providers' outbound hosts, each a real domain, never a bare TLD."""

    most: int = 1000

    def read(self, value: object, key: str, where: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise ConfigError(f"{where}: {key} must be a list of domains")
        if len(value) > self.most:
            raise ConfigError(f"{where}: {key} has {len(value)} entries, more than {self.most}")
        domains = []
        for item in value:
            domain = parse_domain(item, where, f"{key} entry {item!r}")
            if "." not in domain:
                raise ConfigError(
                    f"{where}: {key} entry {item!r} is a top-level domain; it would hold "
                    "every host under it: name the provider's domain, such as google.com"
                )
            domains.append(domain)
        return tuple(dict.fromkeys(domains))


_LISTING_TIME = Duration()


@dataclass(frozen=True, slots=True)
class ListingSettings:
    """How trap hits become listings (see rbl.policy.listing)."""

    # where trap listings go; None: the first IP zone
    ip_zone: str | None = setting(None, Given("a configured ip zone"))
    # RHSBL zone for domains tied to the sender; None: off
    domain_zone: str | None = setting(None, Given("a configured domain zone"))
    threshold: int = setting(1, Int(1, 1000))  # hits within ``window`` before listing
    window: float = setting(7 * DAY, _LISTING_TIME)
    # a first listing lives this long after the last hit
    duration: float = setting(7 * DAY, _LISTING_TIME)
    # each earlier listing multiplies the duration...
    repeat_factor: float = setting(2.0, Number(1, 100))
    max_duration: float = setting(90 * DAY, _LISTING_TIME)  # ...up to this cap
    own_networks: tuple[str, ...] = setting((), Networks())  # the operator's: never listed
    # seconds between expiry sweeps in ``rbl serve``; listings may outlive their end by it
    expiry_interval: float = setting(60.0, Duration(maximum=DAY))
    # Hosts whose verified name lies inside one of these domains are held for review
    # instead of listed; [] holds none; 0..1000 entries, each of two labels or more.
    provider_hosts: tuple[str, ...] = setting(DEFAULT_PROVIDER_HOSTS, ProviderHosts())
    # addresses or CIDR networks held the same way
    held_networks: tuple[str, ...] = setting((), Networks())


def trap_zones(
    data: Mapping[str, Any], zones: tuple[ZoneSettings, ...], where: str
) -> dict[str, str | None]:
    """``ip_zone`` and ``domain_zone`` of [listing], each the name of a zone of its kind."""
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
    return picked


def check_listing(listing: ListingSettings, where: str) -> ListingSettings:
    """The bounds one listing setting sets another."""
    if listing.max_duration < listing.duration:
        raise ConfigError(f"{where}: max_duration is shorter than duration")
    return listing


@dataclass(frozen=True, slots=True)
class PolicyFeedSettings:
    """The Postfix policy delegation feed inside ``rbl serve`` (off unless ``listen`` is set).

    A policy client names the client address and recipient of each request, and rbl
    believes it: anyone who can connect can have any address listed. So only the
    ``allow`` networks (loopback unless set) are served; others are closed at once.
    """

    listen: tuple[str, int] | None = setting(None, Endpoint())
    # A trap hit is answered once it is committed; past this, "defer if permit".
    # Postfix waits smtpd_policy_service_timeout (100 s) for an answer.
    commit_timeout: float = setting(10.0, Duration(within=(0.1, 60), unit=" seconds"))
    allow: tuple[str, ...] = setting(_LOOPBACK, Networks())  # the Postfix hosts, nobody else
    # Postfix opens one connection per smtpd process (default_process_limit 100).
    max_connections: int = setting(1000, Int(1, 100_000))
    max_per_client: int = setting(200, Int(1, 100_000))
    # Postfix closes an idle one after smtpd_policy_service_max_idle (300 s) itself;
    # rbl waits longer and only reclaims those of dead or misbehaving peers.
    idle_timeout: float = setting(
        360.0, Duration(maximum=86400, least=10, below="is under 10 seconds")
    )
    # Answer RCPT requests from a client the trap IP zone lists with a reject, as
    # reject_rbl_client would, from the same in-memory index DNS answers from: the
    # next attempt is rejected even when a resolver cached an NXDOMAIN from before
    # the hit (postscreen's connect-time lookup). Off: the feed only observes.
    reject_listed: bool = setting(False, Flag())


_CONNECTIONS = Int(1, 100_000)


@dataclass(frozen=True, slots=True)
class WebSettings:
    """The public lookup and removal site inside ``rbl serve`` (off unless ``listen`` is set)."""

    listen: tuple[str, int] | None = setting(None, Endpoint())
    title: str = setting("DNSBL lookup", Text())
    contact: str = setting("", Text())  # shown on every page: how to reach the operator
    # Removal requests per hour from one client network; a network is the client's
    # IPv4 /removal_ipv4_prefix or IPv6 /removal_ipv6_prefix: one host holds a whole
    # IPv6 /64, and often many IPv4 addresses of a /24.
    requests_per_hour: int = setting(5, Int(1, 10_000))
    removal_ipv4_prefix: int = setting(24, _PREFIX4)
    removal_ipv6_prefix: int = setting(64, _PREFIX6)
    # whose X-Forwarded-For names the client
    trusted_proxies: tuple[str, ...] = setting((), Networks())
    max_connections: int = setting(200, _CONNECTIONS)  # open at once; past it, 503 for the new
    # Open at once from one client, counted per IPv4 /connection_ipv4_prefix and IPv6
    # /connection_ipv6_prefix; past it the new one is closed at once, so one client
    # cannot take the whole of max_connections. Trusted proxies are not capped.
    max_connections_per_client: int = setting(20, _CONNECTIONS)
    connection_ipv4_prefix: int = setting(32, _PREFIX4)
    connection_ipv6_prefix: int = setting(64, _PREFIX6)
    # seconds from a request's first byte to its last
    request_timeout: float = setting(20.0, Number(1, 300, as_seconds=True))


TIME_RESOLUTIONS = ("day", "hour")


@dataclass(frozen=True, slots=True)
class PublicSettings:
    """What public pages show of the evidence; each opt-in's risk is in docs/SECURITY.md.

    The defaults cannot tell a sender which of its recipients were traps.
    """

    # "day" or "hour": the finest time a public page gives
    time_resolution: str = setting("day", Choice({name: name for name in TIME_RESOLUTIONS}))
    # hits per domain of the address traps hit
    show_trap_domains: bool = setting(False, Flag())


@dataclass(frozen=True, slots=True)
class DelistingSettings:
    """Operator review (default), or self-service removal once per key per period."""

    self_service: bool = setting(
        False, Choice({"review": False, "self-service": True}, quoted=True), key="mode"
    )
    self_service_period: float = setting(30 * DAY, Duration())
    # Each listing keeps at most this many pending requests; past it a new one is
    # refused with a clear answer (never dropped), so a flood cannot grow the table.
    max_pending_per_key: int = setting(20, Int(1, 1000))
    requests_per_key_per_hour: int = setting(10, Int(1, 10_000))  # one listing takes per hour


@dataclass(frozen=True, slots=True)
class Directory(Reader):
    """A directory, as written (rbl.config.load resolves it against the file's)."""

    def read(self, value: object, key: str, where: str) -> str:
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(f"{where}: {key} must be a non-empty path")
        return value


@dataclass(frozen=True, slots=True)
class DumpSettings:
    """The hourly mirror dump inside ``rbl serve`` (off unless ``directory`` is set)."""

    directory: str | None = setting(None, Directory())
    interval: float = setting(
        3600.0, Duration(maximum=7 * DAY, least=60, below="is shorter than a minute")
    )
    gzip_level: int = setting(6, Int(1, 9))


def resolve_directory(dumps: DumpSettings, base: Path) -> DumpSettings:
    """A relative dump directory is relative to the configuration file."""
    if dumps.directory is None:
        return dumps
    return replace(dumps, directory=str((base / dumps.directory).resolve()))


@dataclass(frozen=True, slots=True)
class TsigKeys(Reader):
    """A list of ``name:algorithm:base64-secret`` keys, each checked, kept as written."""

    def read(self, value: object, key: str, where: str) -> tuple[str, ...]:
        if not isinstance(value, list) or not all(isinstance(k, str) for k in value):
            raise ConfigError(f"{where}: {key} must be a list of 'name:algorithm:base64-secret'")
        for spec in value:
            parse_tsig_key(spec, f"{where} {key}")
        return tuple(value)


@dataclass(frozen=True, slots=True)
class TransferSettings:
    """Zone transfers out (AXFR/IXFR over TCP) and NOTIFY to secondaries."""

    allow: tuple[str, ...] = setting((), Networks())  # client networks; empty refuses all
    notify: tuple[tuple[str, int], ...] = setting((), Endpoints(ip_only=True))  # secondaries
    # when set, transfers must be signed
    tsig: tuple[str, ...] = setting((), TsigKeys())
    # secondaries rbl does not NOTIFY (anycast nodes...): rbl doctor asks them too
    check: tuple[tuple[str, int], ...] = setting((), Endpoints(ip_only=True))
    # rbl doctor fails a secondary behind for longer; unset: the zone's SOA refresh + retry
    stale_after: float | None = setting(None, Duration(maximum=30 * DAY))
    # key changes kept per zone for IXFR (older secondaries get a full transfer); 0: AXFR only
    ixfr_history: int = setting(100_000, Int(0, 100_000_000))
    # [[transfer.secondaries]]: per secondary its network, key and NOTIFY (rbl.config.secondaries)
    secondaries: tuple[SecondarySettings, ...] = setting((), Secondaries())


@dataclass(frozen=True, slots=True)
class MetricsSettings:
    """Prometheus /metrics on its own port (off unless ``listen`` is set): not for the public."""

    listen: tuple[str, int] | None = setting(None, Endpoint())


@dataclass(frozen=True, slots=True)
class Settings:
    """The whole file: one field a table. rbl.config.load reads those that need more
    than their own table (the zones, paths relative to the file) and passes them in."""

    database: DatabaseSettings = field(metadata=rule(Given("a URL relative to the file")))
    zones: tuple[ZoneSettings, ...] = field(metadata=rule(Given("[[zones]] tables")))
    dns: DnsSettings = field(default_factory=DnsSettings, metadata=rule(Table(DnsSettings)))
    sync: SyncSettings = field(default_factory=SyncSettings, metadata=rule(Table(SyncSettings)))
    listing: ListingSettings = field(
        default_factory=ListingSettings, metadata=rule(Given("names of configured zones"))
    )
    policy_feed: PolicyFeedSettings = field(
        default_factory=PolicyFeedSettings, metadata=rule(Given("[feeds.policy]"), key="feeds")
    )
    web: WebSettings = field(default_factory=WebSettings, metadata=rule(Table(WebSettings)))
    public: PublicSettings = field(
        default_factory=PublicSettings, metadata=rule(Table(PublicSettings))
    )
    delisting: DelistingSettings = field(
        default_factory=DelistingSettings, metadata=rule(Table(DelistingSettings))
    )
    dumps: DumpSettings = field(
        default_factory=DumpSettings, metadata=rule(Given("a directory relative to the file"))
    )
    transfer: TransferSettings = field(
        default_factory=TransferSettings, metadata=rule(Table(TransferSettings))
    )
    metrics: MetricsSettings = field(
        default_factory=MetricsSettings, metadata=rule(Table(MetricsSettings))
    )
    source: str = "<defaults>"  # the file, named in errors

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
