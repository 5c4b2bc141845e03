"""A second store for the golden dump test: default values, long and escaped TXT,
a trap in a listing's TXT, multi-code IPv6 and domains, nested wildcards and
allowlisted names under them."""

from __future__ import annotations

from pathlib import Path

from rbl.model.keys import parse_domain_key, parse_ip_key
from rbl.model.traps import parse_trap
from rbl.store.allowlist import add_allowed
from rbl.store.database import open_engine
from rbl.store.listings import add_listing
from rbl.store.reader import ListingReader
from rbl.store.traps import add_trap
from tests.support.dump_seed import DOMAIN_ZONE, IP_ZONE, NOW, TRAP, Seeded, make_settings

LONG = 'Quote " and back\\slash, caf\u00e9 {key} ' + "x" * 300
RICH_IP = [
    ("192.0.2.9", ("127.0.0.2",), None),  # answers just the zone's default
    ("192.0.2.10", ("127.0.0.2", "127.0.0.9"), LONG),
    ("192.0.2.11", ("127.0.0.3",), f"mail {TRAP} about {{key}}"),
    ("198.18.0.0/15", ("127.0.0.2",), "net {key}"),
    ("198.18.1.0/24", ("127.0.0.4",), None),
    ("2001:db8:9::/64", ("127.0.0.3", "127.0.0.4"), "v6 {key} $$"),
    ("2001:db8:9::1", ("127.0.0.2",), None),
]
RICH_IP_ALLOWED = ["198.18.1.128/25", "2001:db8:9::2"]
RICH_DOMAINS = [
    ("multi.example", ("127.0.1.2", "127.0.1.3"), None),
    ("*.wild.example", ("127.0.1.2",), "w {key}"),
    ("*.x.wild.example", ("127.0.1.4",), None),
    ("deep.a.wild.example", ("127.0.1.5",), None),
    ("plain.example", ("127.0.1.2",), LONG),
]
RICH_DOMAINS_ALLOWED = ["ok.wild.example", "no.x.wild.example"]


def seed_rich(directory: Path) -> Seeded:
    settings = make_settings(directory)
    engine = open_engine(settings.database.url)
    with engine.begin() as conn:
        add_trap(conn, parse_trap(TRAP), note=None, actor="t", now=NOW)
        for key, codes, txt in RICH_IP:
            add_listing(
                conn, IP_ZONE, parse_ip_key(key), codes, txt=txt, reason="t", actor="t", now=NOW
            )
        for key in RICH_IP_ALLOWED:
            add_allowed(conn, parse_ip_key(key), reason="ok", actor="t", now=NOW, zones=[IP_ZONE])
        for key, codes, txt in RICH_DOMAINS:
            add_listing(
                conn,
                DOMAIN_ZONE,
                parse_domain_key(key),
                codes,
                txt=txt,
                reason="t",
                actor="t",
                now=NOW,
            )
        for key in RICH_DOMAINS_ALLOWED:
            add_allowed(
                conn, parse_domain_key(key), reason="ok", actor="t", now=NOW, zones=[DOMAIN_ZONE]
            )
    engine.dispose()
    return Seeded(directory, settings, ListingReader(settings.database.url))
