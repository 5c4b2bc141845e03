"""A small store with every case the dump formats must get right, shared by the dump tests."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from rbl.config import Settings, parse_settings
from rbl.model.keys import parse_domain_key, parse_ip_key
from rbl.model.traphit import TrapHit
from rbl.model.traps import TrapMatcher, parse_trap
from rbl.policy.allowlist import Allowlist
from rbl.policy.listing import Rules
from rbl.store.allowlist import add_allowed
from rbl.store.database import open_engine
from rbl.store.evidence import record_hits
from rbl.store.listings import ListingEntry, add_listing, import_listings
from rbl.store.reader import ListingReader

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
IP_ZONE = "bl.example.org"
DOMAIN_ZONE = "dbl.example.org"
TRAP = "secret-trap@example.org"

# (key, codes, own TXT template)
IP_LISTINGS: list[tuple[str, tuple[str, ...], str | None]] = [
    ("192.0.2.1", ("127.0.0.2",), None),
    ("192.0.2.77", ("127.0.0.3",), "Own text for {key}"),
    ("198.51.100.0/24", ("127.0.0.3",), "Net {key} costs $5"),  # with an allowlisted address
    ("203.0.113.0/25", ("127.0.0.2", "127.0.0.4"), None),  # two codes, a /26 inside
    ("203.0.113.0/26", ("127.0.0.5",), None),
    ("10.0.0.0/8", ("127.0.0.2",), None),  # /8 with a /16 inside, which has a hole
    ("10.1.0.0/16", ("127.0.0.6",), None),
    ("172.16.0.0/20", ("127.0.0.2",), None),  # not on an octet boundary
    ("172.16.4.0/22", ("127.0.0.7",), None),  # same octet level, other code
    ("100.64.1.0/25", ("127.0.0.2",), None),  # an allowlisted /26 inside
    ("2001:db8::1", ("127.0.0.2",), None),
    ("2001:db8:1::/48", ("127.0.0.3",), None),  # with an allowlisted address
    ("2001:db8:2::/47", ("127.0.0.2",), None),
    ("2001:db8:4::/62", ("127.0.0.2",), None),
]
IP_ALLOWED = ["198.51.100.7", "10.1.2.0/24", "2001:db8:1::5", "100.64.1.0/26", "100.64.2.0/25"]
# Listed after the allowlist entry around it (add_allowed delists what is inside).
LATE_IP_LISTINGS = [("100.64.2.0/26", ("127.0.0.2",), None)]
DOMAIN_LISTINGS = [
    "spam.example",
    "*.spam.example",
    "*.bad.example",
    "a.b.c.bad.example",
    "x.example",
]
DOMAIN_ALLOWED = ["good.bad.example"]


def make_settings(directory: Path) -> Settings:
    return parse_settings(
        {
            "database": {"url": f"sqlite:///{directory}/rbl.sqlite"},
            "zones": [
                {
                    "name": IP_ZONE,
                    "kind": "ip",
                    "ns": ["ns1.example.org", "ns2.example.net"],
                    "txt": "Listed: {url}",
                    "lookup_url": "https://www.example.org/lookup/{key}",
                    "soa": {"rname": "hostmaster@example.org", "minimum": 120},
                },
                {
                    "name": DOMAIN_ZONE,
                    "kind": "domain",
                    "ttl": 600,
                    "ns": ["ns1.example.org"],
                    "default_code": "127.0.1.2",
                    "txt": "Domain {key} listed",
                },
            ],
        },
        source=directory / "rbl.toml",
    )


@dataclass
class Seeded:
    directory: Path
    settings: Settings
    reader: ListingReader


def seed(directory: Path, *, extra_v4: int = 0) -> Seeded:
    settings = make_settings(directory)
    engine = open_engine(settings.database.url)
    with engine.begin() as conn:
        for key, codes, txt in IP_LISTINGS:
            add_listing(
                conn, IP_ZONE, parse_ip_key(key), codes, txt=txt, reason="t", actor="t", now=NOW
            )
        if extra_v4:
            entries = [
                ListingEntry(
                    parse_ip_key(f"45.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"), ("127.0.0.2",)
                )
                for i in range(extra_v4)
            ]
            import_listings(conn, IP_ZONE, entries, reason="bulk", actor="t", now=NOW)
        for key in DOMAIN_LISTINGS:
            add_listing(
                conn,
                DOMAIN_ZONE,
                parse_domain_key(key),
                ("127.0.1.2",),
                reason="t",
                actor="t",
                now=NOW,
            )
        for key in IP_ALLOWED:
            add_allowed(conn, parse_ip_key(key), reason="ok", actor="t", now=NOW, zones=[IP_ZONE])
        for key, codes, txt in LATE_IP_LISTINGS:
            add_listing(
                conn, IP_ZONE, parse_ip_key(key), codes, txt=txt, reason="t", actor="t", now=NOW
            )
        for key in DOMAIN_ALLOWED:
            add_allowed(
                conn, parse_domain_key(key), reason="ok", actor="t", now=NOW, zones=[DOMAIN_ZONE]
            )
        # Trap evidence: the trap address must never reach a dump file.
        hit = TrapHit(
            at=NOW,
            client_ip="45.200.1.2",
            rcpt_to=TRAP,
            mail_from="seller@spam.example",
            helo="spam.example",
            feed="test",
            raw=f"raw line to <{TRAP}>",
        )
        record_hits(
            conn,
            [hit],
            matcher=TrapMatcher([parse_trap(TRAP)]),
            allow=Allowlist(),
            rules=Rules.from_settings(settings.listing),
            ip_zone=settings.zone(IP_ZONE),
            domain_zone=None,
            now=NOW,
        )
    engine.dispose()
    return Seeded(directory, settings, ListingReader(settings.database.url))
