"""Shared helpers for the DNS responder tests: a two-zone setup and dnspython queries.

dnspython is the independent encoder and decoder: queries are built with
``dns.message.make_query`` and answers parsed with ``dns.message.from_wire``.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rdataclass
import dns.rdatatype
import dns.reversename

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


def rev(address: str) -> dns.name.Name:
    """The DNSBL query name for an address (IPv4 dotted quad or IPv6 nibbles)."""
    parsed = ipaddress.ip_address(address)
    if isinstance(parsed, ipaddress.IPv6Address) and parsed.ipv4_mapped is not None:
        # dnspython turns IPv4-mapped addresses into in-addr.arpa style names.
        return nibble_name(parsed)
    return dns.reversename.from_address(address, v4_origin=IP_ORIGIN, v6_origin=IP_ORIGIN)


def nibble_name(address: ipaddress.IPv6Address) -> dns.name.Name:
    nibbles = address.exploded.replace(":", "")
    return dns.name.from_text(".".join(reversed(nibbles)), origin=IP_ORIGIN)


def dom(name: str) -> dns.name.Name:
    return dns.name.from_text(name, origin=DOMAIN_ORIGIN)


def make_query(
    qname: dns.name.Name | str,
    rdtype: str | int = "A",
    *,
    rdclass: str | int = "IN",
    edns: int | None = None,
    do: bool = False,
    payload: int = 1232,
    rd: bool = True,
    cd: bool = False,
    ad: bool = False,
    qid: int = 0x1234,
    opcode: int | None = None,
) -> dns.message.QueryMessage:
    flags = (dns.flags.RD if rd else 0) | (dns.flags.CD if cd else 0) | (dns.flags.AD if ad else 0)
    query = dns.message.make_query(
        qname,
        dns.rdatatype.RdataType.make(rdtype),
        dns.rdataclass.RdataClass.make(rdclass),
        use_edns=edns if edns is not None else (0 if do else False),
        want_dnssec=do,
        payload=payload,
        id=qid,
        flags=flags,
    )
    if opcode is not None:
        query.set_opcode(dns.opcode.Opcode(opcode))
    return query


def wire(qname: dns.name.Name | str, rdtype: str | int = "A", **kwargs: Any) -> bytes:
    return make_query(qname, rdtype, **kwargs).to_wire()


def parse(reply: bytes | None) -> dns.message.Message:
    assert reply is not None
    return dns.message.from_wire(reply)


def ask(
    responder: Responder,
    qname: dns.name.Name | str,
    rdtype: str | int = "A",
    *,
    udp: bool = True,
    **kwargs: Any,
) -> dns.message.Message:
    return parse(responder.respond(wire(qname, rdtype, **kwargs), udp))


def rdata_texts(rrsets: Iterable[Any], rdtype: str) -> set[str]:
    wanted = dns.rdatatype.from_text(rdtype)
    return {rdata.to_text() for rrset in rrsets if rrset.rdtype == wanted for rdata in rrset}


def txt_strings(message: dns.message.Message) -> list[bytes]:
    (rrset,) = [r for r in message.answer if r.rdtype == dns.rdatatype.TXT]
    (rdata,) = list(rrset)
    return list(rdata.strings)


# -- raw wire builders for the fuzz tests: no validation, so they can build what
# dnspython refuses to (labels over 63 bytes, pointer loops, wrong counts) ----------------


def raw_header(
    qid: int = 0x1234,
    flags: int = 0x0100,
    qd: int = 1,
    an: int = 0,
    ns: int = 0,
    ar: int = 0,
) -> bytes:
    """A 12-byte header; ``flags`` is the 16-bit flags word (QR, opcode, ..., rcode)."""
    return b"".join((v & 0xFFFF).to_bytes(2, "big") for v in (qid, flags, qd, an, ns, ar))


def raw_name(labels: Iterable[bytes], end: bytes = b"\x00") -> bytes:
    """Labels as length-prefixed bytes (the length byte is ``len & 0xFF``, unchecked).

    ``end`` closes the name: the root label, a compression pointer, or nothing.
    """
    out = bytearray()
    for label in labels:
        out.append(len(label) & 0xFF)
        out += label
    return bytes(out) + end


def raw_question(name: bytes, qtype: int = 1, qclass: int = 1) -> bytes:
    return name + _u16(qtype) + _u16(qclass)


def raw_rr(owner: bytes, rtype: int, rclass: int, ttl: int, rdata: bytes) -> bytes:
    tail = _u16(rtype) + _u16(rclass) + (ttl & 0xFFFFFFFF).to_bytes(4, "big")
    return owner + tail + _u16(len(rdata)) + rdata


def raw_opt(
    payload: int = 1232,
    *,
    version: int = 0,
    do: bool = False,
    ext_rcode: int = 0,
    options: bytes = b"",
    owner: bytes = b"\x00",
) -> bytes:
    """An OPT pseudo-record (RFC 6891 6.1.2); ``options`` is the raw RDATA."""
    ttl = (ext_rcode & 0xFF) << 24 | (version & 0xFF) << 16 | (0x8000 if do else 0)
    return raw_rr(owner, 41, payload & 0xFFFF, ttl, options)


def raw_option(code: int, data: bytes) -> bytes:
    """One EDNS option: code, length, data."""
    return _u16(code) + _u16(len(data)) + data


def _u16(value: int) -> bytes:
    return (value & 0xFFFF).to_bytes(2, "big")
