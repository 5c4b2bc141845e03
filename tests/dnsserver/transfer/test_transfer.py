"""AXFR/IXFR out: the transferred zone answers what the responder answers.

dnspython is the oracle: the messages are parsed with ``dns.message.from_wire``
and loaded with ``dns.zone.from_xfr``; a small resolver applies the DNS
wildcard rules (RFC 4592) to that zone, as a secondary would.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdataset
import dns.rdatatype
import dns.rrset
import dns.zone
import pytest
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport

from rbl.dnsserver.protocol import Counters, DnsStreamFactory
from rbl.dnsserver.responder import Responder
from rbl.dnsserver.transfer import (
    TransferPolicy,
    Transfers,
    axfr_messages,
    is_transfer,
)
from rbl.dnsserver.zone import Zone
from rbl.index.tables import Value
from rbl.model.keys import ZoneKind, parse_key
from tests.support.cooperation import Steps, split_messages
from tests.support.dns_client import make_query, wire
from tests.support.dns_zones import DOMAIN_ORIGIN, DOMAIN_ZONE, IP_ORIGIN, IP_ZONE, make_responder

LOOPBACK = TransferPolicy.from_strings(["127.0.0.0/8", "::1/128"])

EXTRA_IP: dict[str, Value | None] = {
    "10.0.0.0/16": Value(("127.0.0.2",)),
    "10.0.3.0/24": None,  # an allowlisted hole
    "10.0.4.128/25": Value(("127.0.0.9",), "inner {key}"),
    "172.16.0.0/22": Value(("127.0.0.3",)),  # off an octet boundary: expanded
    "2001:db8:abc::/47": Value(("127.0.0.2",)),  # off a nibble boundary
}
EXTRA_DOMAIN: dict[str, Value | None] = {
    "a.b.c.example": Value(("127.0.1.4",)),
    "*.c.example": Value(("127.0.1.5",)),
    "x.safe.spam.example": Value(("127.0.1.6",)),
}


def responder() -> Responder:
    from tests.support.dns_zones import DOMAIN_LISTINGS, IP_LISTINGS

    return make_responder({**IP_LISTINGS, **EXTRA_IP}, {**DOMAIN_LISTINGS, **EXTRA_DOMAIN})


def transfer(
    resp: Responder, origin: dns.name.Name, rdtype: str = "AXFR", **kw: Any
) -> list[bytes]:
    transfers = Transfers(resp.zones, LOOPBACK)
    query = make_query(origin, rdtype, **kw)
    return transfers.respond(query.to_wire(), kw.pop("host", "127.0.0.1"))


def load(messages: list[bytes]) -> dns.zone.Zone:
    """An AXFR as a secondary loads it: SOA first and last, every record in between."""
    rrsets = []
    for data in messages:
        message = dns.message.from_wire(data, one_rr_per_rrset=True)
        assert message.rcode() == dns.rcode.NOERROR
        assert message.flags & dns.flags.AA
        rrsets.extend(message.answer)
    assert rrsets[0].rdtype == rrsets[-1].rdtype == dns.rdatatype.SOA
    assert rrsets[0] == rrsets[-1]
    origin = rrsets[0].name
    zone = dns.zone.Zone(origin)
    for rrset in rrsets[:-1]:
        assert not [r for r in rrsets[1:-1] if r.rdtype == dns.rdatatype.SOA]
        node = zone.find_node(rrset.name.relativize(origin), create=True)
        node.find_rdataset(rrset.rdclass, rrset.rdtype, create=True).update(
            dns.rdataset.from_rdata_list(rrset.ttl, list(rrset))
        )
    zone.check_origin()
    return zone


class Secondary:
    """What a secondary answers from a zone, with RFC 4592 wildcards."""

    def __init__(self, zone: dns.zone.Zone) -> None:
        self.zone = zone
        self.names = {name.derelativize(zone.origin) for name in zone.nodes}

    def answer(self, qname: dns.name.Name, rdtype: str) -> tuple[int, set[str]]:
        wanted = dns.rdatatype.from_text(rdtype)
        origin = self.zone.origin
        node_name = qname
        if qname not in self.names:
            # Closest encloser: the longest existing ancestor (empty non-terminals exist).
            if any(n.is_subdomain(qname) for n in self.names):
                return dns.rcode.NOERROR, set()
            encloser = qname.parent()
            while encloser not in self.names and not any(
                n.is_subdomain(encloser) for n in self.names
            ):
                encloser = encloser.parent()
            source = dns.name.Name((b"*", *encloser.labels))
            if source not in self.names:
                return dns.rcode.NXDOMAIN, set()
            node_name = source
        node = self.zone.get_node(node_name.relativize(origin))
        if node is None:
            return dns.rcode.NOERROR, set()
        rdataset = node.get_rdataset(dns.rdataclass.IN, wanted)
        return dns.rcode.NOERROR, {r.to_text() for r in rdataset} if rdataset else set()


def rbl_answer(resp: Responder, qname: dns.name.Name, rdtype: str) -> tuple[int, set[str]]:
    reply = dns.message.from_wire(resp.respond(wire(qname, rdtype), False) or b"")
    wanted = dns.rdatatype.from_text(rdtype)
    found = {r.to_text() for rrset in reply.answer if rrset.rdtype == wanted for r in rrset}
    return reply.rcode(), found


def concrete(name: dns.name.Name, origin: dns.name.Name) -> dns.name.Name:
    """A name a wildcard answers for, as rbl would be asked it (a full address for IPs)."""
    if not name.labels or name.labels[0] != b"*":
        return name
    rel = name.relativize(origin).labels[1:]
    if origin != IP_ORIGIN:
        fill: tuple[bytes, ...] = (b"zz",)
    elif len(rel) < 4:
        fill = (b"5",) * (4 - len(rel))  # IPv4, octet wildcards
    else:
        fill = (b"5",) * (32 - len(rel))  # IPv6, nibble wildcards
    return dns.name.Name(fill + rel + origin.labels)


@pytest.mark.parametrize("origin", [IP_ORIGIN, DOMAIN_ORIGIN])
def test_every_transferred_name_answers_as_rbl(origin: dns.name.Name) -> None:
    resp = responder()
    secondary = Secondary(load(transfer(resp, origin)))
    checked = 0
    for rel in secondary.zone.nodes:
        name = rel.derelativize(origin)
        if name == origin:
            continue
        qname = concrete(name, origin)
        for rdtype in ("A", "TXT"):
            rcode, records = rbl_answer(resp, qname, rdtype)
            theirs = secondary.answer(qname, rdtype)
            assert rcode == theirs[0], (qname, rdtype)
            if rdtype == "A" or name == qname:  # wildcard TXT names the listing
                assert records == theirs[1], (qname, rdtype)
            else:
                assert bool(records) == bool(theirs[1])
            checked += 1
    assert checked > 20


IP_SAMPLE = [
    "192.0.2.1",
    "192.0.2.2",
    "198.51.100.6",
    "198.51.100.7",  # excluded inside a listed /24
    "10.0.1.1",
    "10.0.3.5",  # allowlisted /24 inside a /16
    "10.0.4.129",
    "10.0.4.1",
    "172.16.3.255",
    "172.16.4.0",
    "127.0.0.2",
    "127.0.0.1",
    "2001:db8:1:2::99",
    "2001:db8:abd:ffff::1",
    "2001:db8:abe::1",
    "::ffff:7f00:2",
    "::ffff:7f00:1",
    "203.0.113.10",
]
DOMAIN_SAMPLE = [
    "example.com",
    "www.example.com",
    "x.spam.example",
    "ok.spam.example",
    "a.ok.spam.example",
    "y.safe.spam.example",
    "x.safe.spam.example",
    "b.c.example",
    "a.b.c.example",
    "q.b.c.example",
    "c.example",
    "test",
    "invalid",
    "unlisted.example",
]


def test_sample_names_answer_as_rbl() -> None:
    from tests.support.dns_client import dom, rev

    resp = responder()
    for origin, names in (
        (IP_ORIGIN, [rev(a) for a in IP_SAMPLE]),
        (DOMAIN_ORIGIN, [dom(n) for n in DOMAIN_SAMPLE]),
    ):
        secondary = Secondary(load(transfer(resp, origin)))
        for qname in names:
            for rdtype in ("A", "TXT"):
                ours = rbl_answer(resp, qname, rdtype)
                theirs = secondary.answer(qname, rdtype)
                assert ours[0] == theirs[0], (qname, rdtype)
                if rdtype == "A":
                    assert ours[1] == theirs[1], qname


def test_axfr_starts_and_ends_with_the_zones_soa() -> None:
    resp = responder()
    ip_zone = resp.zones[0]
    ip_zone.set_serial(4242)
    messages = transfer(resp, IP_ORIGIN, qid=77)
    first = dns.message.from_wire(messages[0], xfr=True)
    last = dns.message.from_wire(messages[-1], xfr=True, one_rr_per_rrset=True)
    assert first.id == 77 and first.flags & dns.flags.AA and first.flags & dns.flags.QR
    assert first.answer[0].rdtype == dns.rdatatype.SOA
    assert first.answer[0][0].serial == 4242
    assert last.answer[-1].rdtype == dns.rdatatype.SOA
    assert last.answer[-1][0].serial == 4242
    assert load(messages).get_soa().serial == 4242


def test_large_zone_is_split_into_messages_of_about_16k() -> None:
    listings: dict[str, Value | None] = {
        str(ipaddress.IPv4Address(0x0A000000 + i)): Value(("127.0.0.2",)) for i in range(3000)
    }
    resp = make_responder(listings, {})
    messages = transfer(resp, IP_ORIGIN)
    assert len(messages) > 5
    assert all(len(m) <= 16384 for m in messages)
    zone = load(messages)
    assert zone.get_rdataset("1.0.0.10", "A") is not None
    names = [n for n in zone.nodes if zone.get_rdataset(n, "A") is not None]
    assert len(names) == 3000 + 2  # and the two test points (IPv4 and IPv6)


def test_acl_refuses_other_clients_and_unknown_zones() -> None:
    resp = responder()
    refused = Transfers(resp.zones, TransferPolicy()).respond(wire(IP_ORIGIN, "AXFR"), "127.0.0.1")
    assert dns.message.from_wire(refused[0]).rcode() == dns.rcode.REFUSED
    transfers = Transfers(resp.zones, LOOPBACK)
    for host, qname in (("192.0.2.1", IP_ORIGIN), ("127.0.0.1", dns.name.from_text("x.org"))):
        (reply,) = transfers.respond(wire(qname, "AXFR"), host)
        assert dns.message.from_wire(reply).rcode() == dns.rcode.REFUSED
    assert LOOPBACK.allows("::ffff:127.0.0.1")
    assert not LOOPBACK.allows("not an address")


def test_ixfr_current_gets_one_soa_older_gets_full_transfer() -> None:
    resp = responder()
    zone = resp.zones[0]
    zone.set_serial(100)
    transfers = Transfers(resp.zones, LOOPBACK)

    def ixfr(serial: int) -> list[bytes]:
        query = dns.message.make_query(IP_ORIGIN, "IXFR")
        soa = dns.rrset.from_text(IP_ORIGIN, 0, "IN", "SOA", f". . {serial} 1 1 1 1")
        query.authority.append(soa)
        return transfers.respond(query.to_wire(), "127.0.0.1")

    (current,) = ixfr(100)
    message = dns.message.from_wire(current)
    assert [rrset.rdtype for rrset in message.answer] == [dns.rdatatype.SOA]
    assert message.answer[0][0].serial == 100
    full = ixfr(99)
    assert load(full).get_soa().serial == 100
    assert len(load(full).nodes) == len(load(transfer(resp, IP_ORIGIN)).nodes)
    (bad,) = transfers.respond(wire(IP_ORIGIN, "IXFR"), "127.0.0.1")  # no SOA: FORMERR
    assert dns.message.from_wire(bad).rcode() == dns.rcode.FORMERR


def test_is_transfer_only_for_axfr_and_ixfr_queries() -> None:
    assert is_transfer(wire(IP_ORIGIN, "AXFR"))
    assert is_transfer(wire(IP_ORIGIN, "IXFR"))
    assert not is_transfer(wire(IP_ORIGIN, "A"))
    assert not is_transfer(b"\x00" * 11)


def test_udp_axfr_stays_refused() -> None:
    resp = responder()
    reply = dns.message.from_wire(resp.respond(wire(IP_ORIGIN, "AXFR"), True) or b"")
    assert reply.rcode() == dns.rcode.REFUSED


def _tcp_exchange(factory: DnsStreamFactory, data: bytes, host: str) -> list[bytes]:
    steps = Steps()
    factory.cooperate = steps.cooperator.cooperate
    protocol = factory.buildProtocol(IPv4Address("TCP", host, 5353))
    transport = StringTransport(peerAddress=IPv4Address("TCP", host, 40000))
    protocol.makeConnection(transport)
    framed = len(data).to_bytes(2, "big") + data
    for i in range(0, len(framed), 3):  # odd-size chunks
        protocol.dataReceived(framed[i : i + 3])
    steps.run()
    protocol.setTimeout(None)
    return split_messages(transport.value())


def test_tcp_protocol_streams_the_transfer_and_applies_the_acl() -> None:
    resp = responder()
    factory = DnsStreamFactory(resp, Counters(), Transfers(resp.zones, LOOPBACK))
    messages = _tcp_exchange(factory, wire(DOMAIN_ORIGIN, "AXFR"), "127.0.0.1")
    assert load(messages).origin == DOMAIN_ORIGIN
    (refused,) = _tcp_exchange(factory, wire(DOMAIN_ORIGIN, "AXFR"), "192.0.2.1")
    assert dns.message.from_wire(refused).rcode() == dns.rcode.REFUSED
    # Without transfers configured, the slow path refuses as before.
    plain = DnsStreamFactory(resp, Counters())
    (reply,) = _tcp_exchange(plain, wire(DOMAIN_ORIGIN, "AXFR"), "127.0.0.1")
    assert dns.message.from_wire(reply).rcode() == dns.rcode.REFUSED


def test_changes_show_in_the_next_transfer() -> None:
    resp = responder()
    zone: Zone = resp.zones[1]
    assert zone.name == DOMAIN_ZONE
    zone.index.set(parse_key(ZoneKind.DOMAIN, "new.example"), Value(("127.0.1.9",)))
    zone.set_serial(7)
    transferred = load(list(axfr_messages(zone, b"\x00\x01", 0, _question(DOMAIN_ZONE))))
    assert transferred.get_soa().serial == 7
    rdataset = transferred.get_rdataset("new.example", "A")
    assert rdataset is not None and {r.to_text() for r in rdataset} == {"127.0.1.9"}
    assert IP_ZONE != DOMAIN_ZONE


def _question(zone: str) -> bytes:
    from rbl.dnsserver.wire import encode_name

    return encode_name(zone) + b"\x00\xfc\x00\x01"


def big_ip_responder(count: int) -> Responder:
    resp = responder()
    zone = resp.zones[0]
    assert zone.is_ip
    listed = Value(("127.0.0.2",))
    for n in range(count):
        key = parse_key(ZoneKind.IP, f"45.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}")
        zone.index.set(key, listed)
    return resp


def test_a_big_transfer_goes_out_in_steps_and_waits_for_a_full_connection() -> None:
    """The transfer is built while being sent, a step per message; while the connection's
    buffer is full (the transport pauses its producer) no message is built; a query sent
    behind the AXFR is answered after its last message, not inside it."""
    resp = big_ip_responder(5_000)
    factory = DnsStreamFactory(resp, Counters(), Transfers(resp.zones, LOOPBACK))
    steps = Steps(one_at_a_time=True)
    factory.cooperate = steps.cooperator.cooperate
    protocol = factory.buildProtocol(IPv4Address("TCP", "127.0.0.1", 5353))
    transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", 40000))
    protocol.makeConnection(transport)
    follow_up = wire(IP_ORIGIN, "SOA")
    axfr = wire(IP_ORIGIN, "AXFR")
    protocol.dataReceived(
        len(axfr).to_bytes(2, "big") + axfr + len(follow_up).to_bytes(2, "big") + follow_up
    )
    assert transport.value() == b""  # nothing built yet: it happens in steps
    steps.pending.pop(0)()  # one step: one message
    sent = len(transport.value())
    assert len(split_messages(transport.value())) == 1
    protocol.pauseProducing()  # what the transport does when its buffer is full
    steps.run()
    assert len(transport.value()) == sent  # paused: nothing more built
    protocol.resumeProducing()
    steps.run()
    messages = split_messages(transport.value())
    protocol.setTimeout(None)
    assert len(messages) > 10
    *transfer, last = (dns.message.from_wire(m, one_rr_per_rrset=True) for m in messages)
    assert transfer[0].answer[0].rdtype == dns.rdatatype.SOA
    assert transfer[-1].answer[-1].rdtype == dns.rdatatype.SOA
    assert last.question[0].rdtype == dns.rdatatype.SOA and last.answer  # after it, not inside
    names = {rrset.name for m in transfer for rrset in m.answer if rrset.rdtype == dns.rdatatype.A}
    assert len(names) >= 5_000  # every listing made it (and the test point)
