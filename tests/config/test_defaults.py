"""Every default of every section, pinned: a minimal file parses to exactly this Settings.

Written before the declarative rewrite of rbl.config (issue 13) so that it proves the
defaults did not move; ``repr`` is compared too, so an int where a float was is caught.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from rbl.config import (
    DatabaseSettings,
    DelistingSettings,
    DnsSettings,
    DumpSettings,
    ListingSettings,
    MetricsSettings,
    PolicyFeedSettings,
    PrefixSettings,
    PublicSettings,
    RateLimitSettings,
    Settings,
    SoaSettings,
    SyncSettings,
    TcpSettings,
    TransferSettings,
    WebSettings,
    ZoneSettings,
    parse_settings,
)
from rbl.model.keys import ZoneKind

SOURCE = Path("/etc/rbl/rbl.toml")

MINIMAL: dict[str, Any] = {
    "zones": [
        {"name": "bl.example.org", "ns": ["ns1.example.org"]},
        {"name": "dbl.example.org", "kind": "domain", "ns": ["ns1.example.org"]},
    ]
}

PREFIXES = PrefixSettings(
    ipv6_prefix=64,
    ipv6_escalate_prefix=48,
    ipv6_escalate_after=0,
    ipv4_escalate_prefix=24,
    ipv4_escalate_after=0,
)


def zone(name: str, kind: ZoneKind) -> ZoneSettings:
    return ZoneSettings(
        name=name,
        kind=kind,
        soa=SoaSettings(
            mname="ns1.example.org",
            rname=f"hostmaster.{name}",
            refresh=3600,
            retry=600,
            expire=604800,
            minimum=300,
        ),
        ns=("ns1.example.org",),
        ttl=300,
        default_codes=("127.0.0.2",),
        txt="Listed: {url}",
        lookup_url="",
        code_meanings=(),
        prefixes=PREFIXES,
    )


EXPECTED = Settings(
    database=DatabaseSettings(url="sqlite:////etc/rbl/rbl.sqlite"),
    zones=(zone("bl.example.org", ZoneKind.IP), zone("dbl.example.org", ZoneKind.DOMAIN)),
    dns=DnsSettings(
        listen=(("127.0.0.1", 5353),),
        udp_payload=1232,
        rate_limit=RateLimitSettings(
            responses_per_second=2000,
            slip=2,
            ipv4_prefix=24,
            ipv6_prefix=56,
            exempt=("127.0.0.0/8", "::1/128"),
        ),
        tcp=TcpSettings(max_connections=1000, max_per_client=32, idle_timeout=10.0),
    ),
    sync=SyncSettings(poll_interval=0.2, keep_changes=604800.0),
    listing=ListingSettings(
        ip_zone=None,
        domain_zone=None,
        threshold=1,
        window=604800.0,
        duration=604800.0,
        repeat_factor=2.0,
        max_duration=7776000.0,
        own_networks=(),
        expiry_interval=60.0,
        provider_hosts=(
            "google.com",
            "googlemail.com",
            "outlook.com",
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
        ),
        held_networks=(),
    ),
    policy_feed=PolicyFeedSettings(
        listen=None,
        commit_timeout=10.0,
        allow=("127.0.0.0/8", "::1/128"),
        max_connections=1000,
        max_per_client=200,
        idle_timeout=360.0,
        reject_listed=False,
    ),
    web=WebSettings(
        listen=None,
        title="DNSBL lookup",
        contact="",
        requests_per_hour=5,
        removal_ipv4_prefix=24,
        removal_ipv6_prefix=64,
        trusted_proxies=(),
        max_connections=200,
        max_connections_per_client=20,
        connection_ipv4_prefix=32,
        connection_ipv6_prefix=64,
        request_timeout=20.0,
    ),
    public=PublicSettings(time_resolution="day", show_trap_domains=False),
    delisting=DelistingSettings(
        self_service=False,
        self_service_period=2592000.0,
        max_pending_per_key=20,
        requests_per_key_per_hour=10,
    ),
    dumps=DumpSettings(directory=None, interval=3600.0, gzip_level=6),
    transfer=TransferSettings(
        allow=(), notify=(), tsig=(), check=(), stale_after=None, ixfr_history=100_000
    ),
    metrics=MetricsSettings(listen=None),
    source="/etc/rbl/rbl.toml",
)


def test_a_minimal_file_gives_every_default() -> None:
    settings = parse_settings(MINIMAL, source=SOURCE)
    assert settings == EXPECTED
    assert repr(settings) == repr(EXPECTED)  # the types too: 10.0, not 10


def test_empty_sections_give_the_same_defaults() -> None:
    sections = ["database", "dns", "sync", "listing", "web", "public", "delisting"]
    data = copy.deepcopy(MINIMAL) | {name: {} for name in sections}
    data |= {"dumps": {}, "transfer": {}, "metrics": {}, "feeds": {"policy": {}}}
    data["dns"] = {"rate_limit": {}, "tcp": {}}
    data["zones"][0]["soa"] = {}
    data["zones"][0]["codes"] = {}
    assert repr(parse_settings(data, source=SOURCE)) == repr(EXPECTED)


def test_the_dataclass_defaults_are_the_file_defaults() -> None:
    """A section built in code (as tests and tools do) has the defaults a file gets."""
    assert EXPECTED.dns == DnsSettings()
    assert EXPECTED.sync == SyncSettings()
    assert EXPECTED.listing == ListingSettings()
    assert EXPECTED.policy_feed == PolicyFeedSettings()
    assert EXPECTED.web == WebSettings()
    assert EXPECTED.public == PublicSettings()
    assert EXPECTED.delisting == DelistingSettings()
    assert EXPECTED.dumps == DumpSettings()
    assert EXPECTED.transfer == TransferSettings()
    assert EXPECTED.metrics == MetricsSettings()
    assert EXPECTED.zones[0].prefixes == PrefixSettings()
