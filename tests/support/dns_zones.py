"""The two zones of the in-process DNS tests, their listings, and a Responder over them.

``bl.example.org`` (IP, TTL 900, SOA minimum 60) and ``dbl.example.org``
(domain, TTL 30, SOA minimum 600), with listings that cover every answer shape
(several codes, own TXT, networks, exceptions, a TXT over 512 bytes, many A
records). ``make_responder`` builds rbl's Responder over them without a store;
tests/support/dns_client.py asks it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dns.name

from rbl.config import Settings, parse_settings
from rbl.dnsserver.responder import Responder
from rbl.dnsserver.zone import Zone
from rbl.index.tables import Value, ZoneIndex
from rbl.model.keys import ListingKey, ZoneKind, parse_key

IP_ZONE = "bl.example.org"
DOMAIN_ZONE = "dbl.example.org"
IP_ORIGIN = dns.name.from_text(IP_ZONE)
DOMAIN_ORIGIN = dns.name.from_text(DOMAIN_ZONE)
IP_TTL = 900
IP_NEGATIVE_TTL = 60  # min(ttl 900, SOA minimum 60)
DOMAIN_TTL = 30
DOMAIN_NEGATIVE_TTL = 30  # min(ttl 30, SOA minimum 600)
UDP_PAYLOAD = 1232

CONFIG: dict[str, Any] = {
    "zones": [
        {
            "name": IP_ZONE,
            "kind": "ip",
            "ttl": IP_TTL,
            "ns": ["ns1.example.org", "ns2.example.net"],
            "soa": {
                "mname": "ns1.example.org",
                "rname": "hostmaster@example.org",
                "refresh": 3600,
                "retry": 600,
                "expire": 604800,
                "minimum": 60,
            },
            "txt": "{key} listed: {url}",
            "lookup_url": "https://example.org/q?{key}",
        },
        {
            "name": DOMAIN_ZONE,
            "kind": "domain",
            "ttl": DOMAIN_TTL,
            "ns": ["ns1.example.org"],
            "soa": {"minimum": 600},
            "txt": "{key} is a bad domain",
        },
    ]
}

LONG_TXT = "L" * 600 + " {key}"
MANY_CODES = tuple(f"127.0.0.{i}" for i in range(2, 60))

IP_LISTINGS: dict[str, Value | None] = {
    "192.0.2.1": Value(("127.0.0.4", "127.0.0.2")),
    "198.51.100.0/24": Value(("127.0.0.3",), "net {key}"),
    "198.51.100.7": None,
    "2001:db8:1:2::/64": Value(("127.0.0.2",)),
    "2001:db8::5": Value(("127.0.0.5",), "own {key} {url}"),
    "203.0.113.9": Value(("127.0.0.2",), LONG_TXT),
    "203.0.113.10": Value(MANY_CODES),
}
DOMAIN_LISTINGS: dict[str, Value | None] = {
    "example.com": Value(("127.0.1.2",)),
    "*.spam.example": Value(("127.0.1.3",), "sub {key}"),
    "ok.spam.example": None,
    "*.safe.spam.example": None,
}


def make_settings(config: dict[str, Any] | None = None) -> Settings:
    return parse_settings(config or CONFIG, source=Path("/test/rbl.toml"))


def make_index(kind: ZoneKind, listings: dict[str, Value | None]) -> ZoneIndex:
    index = ZoneIndex(kind)
    for text, value in listings.items():
        key: ListingKey = parse_key(kind, text)
        index.set(key, value)
    return index


def make_responder(
    ip_listings: dict[str, Value | None] | None = None,
    domain_listings: dict[str, Value | None] | None = None,
    *,
    config: dict[str, Any] | None = None,
    udp_payload: int = UDP_PAYLOAD,
) -> Responder:
    settings = make_settings(config)
    zones = []
    for zone in settings.zones:
        if zone.kind is ZoneKind.IP:
            listings = IP_LISTINGS if ip_listings is None else ip_listings
        else:
            listings = DOMAIN_LISTINGS if domain_listings is None else domain_listings
        zones.append(Zone(zone, make_index(zone.kind, listings)))
    return Responder(zones, udp_payload=udp_payload)
