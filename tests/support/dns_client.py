"""dnspython as the independent DNS client of the tests: names, queries, answers.

Queries are built with ``dns.message.make_query`` and answers parsed with
``dns.message.from_wire``: rbl's encoder never checks itself. ``ask`` puts a
query to an in-process Responder; ``server_query`` to a running
server (``RunningServer.query`` in tests/support/server.py).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.query
import dns.rdataclass
import dns.rdatatype
import dns.reversename

from rbl.dnsserver.responder import Responder
from tests.support.dns_zones import DOMAIN_ORIGIN, IP_ORIGIN


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


def server_query(
    host: str,
    port: int,
    qname: dns.name.Name | str,
    rdtype: str | int = "A",
    *,
    tcp: bool = False,
    timeout: float = 3.0,
) -> dns.message.Message:
    """One plain query to a server on ``host``:``port``, over UDP or TCP."""
    query = dns.message.make_query(qname, dns.rdatatype.RdataType.make(rdtype))
    send = dns.query.tcp if tcp else dns.query.udp
    return send(query, host, port=port, timeout=timeout)
