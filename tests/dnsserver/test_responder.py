"""rbl.dnsserver: the responder, fast path and dnslib path, checked with dnspython.

dnspython builds every query and parses every answer, so the tests do not
share an encoder with the code under test. The fast path is held to the
dnslib path (``slowpath.respond``) on random queries.
"""

from __future__ import annotations

import copy
import random
import struct

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.update
import pytest
from hypothesis import HealthCheck, given, note, settings
from hypothesis import strategies as st

from rbl.dnsserver import slowpath
from rbl.dnsserver.responder import Responder
from rbl.index.tables import Value
from rbl.model.keys import parse_domain_key
from tests.support.dns_client import (
    ask,
    dom,
    make_query,
    parse,
    rdata_texts,
    rev,
    txt_strings,
    wire,
)
from tests.support.dns_zones import (
    CONFIG,
    DOMAIN_NEGATIVE_TTL,
    DOMAIN_ORIGIN,
    DOMAIN_TTL,
    DOMAIN_ZONE,
    IP_NEGATIVE_TTL,
    IP_TTL,
    IP_ZONE,
    LONG_TXT,
    MANY_CODES,
    UDP_PAYLOAD,
    make_responder,
)

A, TXT, ANY, AAAA, SOA, NS, MX = (
    dns.rdatatype.A,
    dns.rdatatype.TXT,
    dns.rdatatype.ANY,
    dns.rdatatype.AAAA,
    dns.rdatatype.SOA,
    dns.rdatatype.NS,
    dns.rdatatype.MX,
)


@pytest.fixture(scope="module")
def responder() -> Responder:
    return make_responder()


def assert_authoritative(message: dns.message.Message) -> None:
    assert message.flags & dns.flags.QR
    assert message.flags & dns.flags.AA
    assert not message.flags & dns.flags.RA
    assert not message.flags & dns.flags.TC
    assert message.opcode() == dns.opcode.QUERY


def assert_negative(
    message: dns.message.Message, rcode: dns.rcode.Rcode, zone: str, ttl: int
) -> None:
    assert_authoritative(message)
    assert message.rcode() == rcode
    assert message.answer == []
    (soa,) = message.authority
    assert soa.rdtype == SOA
    assert soa.name == dns.name.from_text(zone)
    assert soa.ttl == ttl
    assert message.additional == []


# -- listed, unlisted, no data -----------------------------------------------------------


def test_listed_ipv4_a_several_codes(responder: Responder) -> None:
    message = ask(responder, rev("192.0.2.1"), "A")
    assert_authoritative(message)
    assert message.rcode() == dns.rcode.NOERROR
    (rrset,) = message.answer
    assert rrset.name == rev("192.0.2.1")
    assert rrset.rdtype == A
    assert rrset.ttl == IP_TTL
    assert {r.to_text() for r in rrset} == {"127.0.0.2", "127.0.0.4"}
    assert message.authority == []
    assert message.question[0].name == rev("192.0.2.1")


def test_txt_substitutes_key_and_url(responder: Responder) -> None:
    message = ask(responder, rev("192.0.2.1"), "TXT")
    assert_authoritative(message)
    assert txt_strings(message) == [b"192.0.2.1 listed: https://example.org/q?192.0.2.1"]
    assert message.answer[0].ttl == IP_TTL


def test_txt_from_the_listing_template(responder: Responder) -> None:
    # 198.51.100.0/24 carries its own template; the key is the queried address.
    assert txt_strings(ask(responder, rev("198.51.100.20"), "TXT")) == [b"net 198.51.100.20"]
    assert txt_strings(ask(responder, rev("2001:db8::5"), "TXT")) == [
        b"own 2001:db8::5 https://example.org/q?2001:db8::5"
    ]


def test_any_gives_a_and_txt(responder: Responder) -> None:
    message = ask(responder, rev("192.0.2.1"), "ANY")
    assert_authoritative(message)
    assert rdata_texts(message.answer, "A") == {"127.0.0.2", "127.0.0.4"}
    assert rdata_texts(message.answer, "TXT") == {
        '"192.0.2.1 listed: https://example.org/q?192.0.2.1"'
    }
    assert len(message.answer) == 2


@pytest.mark.parametrize(
    ("qname", "zone", "ttl"),
    [
        (rev("192.0.2.2"), IP_ZONE, IP_NEGATIVE_TTL),
        (rev("198.51.100.7"), IP_ZONE, IP_NEGATIVE_TTL),  # excluded inside a listed /24
        (rev("2001:db8::6"), IP_ZONE, IP_NEGATIVE_TTL),
        (dom("www.example.com"), DOMAIN_ZONE, DOMAIN_NEGATIVE_TTL),
        (dom("example.net"), DOMAIN_ZONE, DOMAIN_NEGATIVE_TTL),
    ],
)
@pytest.mark.parametrize("rdtype", ["A", "TXT", "ANY", "AAAA"])
def test_unlisted_is_nxdomain_with_soa(
    responder: Responder, qname: dns.name.Name, zone: str, ttl: int, rdtype: str
) -> None:
    message = ask(responder, qname, rdtype)
    assert_negative(message, dns.rcode.NXDOMAIN, zone, ttl)


def test_negative_soa_content(responder: Responder) -> None:
    message = ask(responder, rev("192.0.2.2"))
    (rdata,) = list(message.authority[0])
    assert rdata.mname == dns.name.from_text("ns1.example.org")
    assert rdata.rname == dns.name.from_text("hostmaster.example.org")
    assert (rdata.serial, rdata.refresh, rdata.retry, rdata.expire, rdata.minimum) == (
        1, 3600, 600, 604800, 60,
    )  # fmt: skip
    message = ask(responder, dom("nothing.example"))
    (rdata,) = list(message.authority[0])
    assert rdata.rname == dns.name.from_text("hostmaster.dbl.example.org")
    assert rdata.minimum == 600


@pytest.mark.parametrize("rdtype", ["AAAA", "MX", "NS", "SOA", "CNAME", "PTR"])
def test_listed_name_other_type_is_nodata(responder: Responder, rdtype: str) -> None:
    message = ask(responder, rev("192.0.2.1"), rdtype)
    assert_negative(message, dns.rcode.NOERROR, IP_ZONE, IP_NEGATIVE_TTL)
    message = ask(responder, dom("example.com"), rdtype)
    assert_negative(message, dns.rcode.NOERROR, DOMAIN_ZONE, DOMAIN_NEGATIVE_TTL)


# -- the apex ----------------------------------------------------------------------------


def test_apex_soa(responder: Responder) -> None:
    message = ask(responder, IP_ZONE, "SOA")
    assert_authoritative(message)
    (rrset,) = message.answer
    assert rrset.rdtype == SOA
    assert rrset.ttl == IP_TTL
    assert rrset.name == dns.name.from_text(IP_ZONE)
    assert message.authority == []


def test_apex_ns(responder: Responder) -> None:
    message = ask(responder, IP_ZONE, "NS")
    assert_authoritative(message)
    assert rdata_texts(message.answer, "NS") == {"ns1.example.org.", "ns2.example.net."}
    assert message.answer[0].ttl == IP_TTL
    message = ask(responder, DOMAIN_ZONE, "NS")
    assert rdata_texts(message.answer, "NS") == {"ns1.example.org."}
    assert message.answer[0].ttl == DOMAIN_TTL


def test_apex_any(responder: Responder) -> None:
    message = ask(responder, DOMAIN_ZONE, "ANY")
    assert_authoritative(message)
    assert {rrset.rdtype for rrset in message.answer} == {SOA, NS}


@pytest.mark.parametrize("rdtype", ["A", "TXT", "AAAA", "MX"])
def test_apex_other_types_are_nodata(responder: Responder, rdtype: str) -> None:
    assert_negative(ask(responder, IP_ZONE, rdtype), dns.rcode.NOERROR, IP_ZONE, IP_NEGATIVE_TTL)


def test_serial_follows_set_serial() -> None:
    responder = make_responder()
    zone = responder.zones[0]
    for serial, expected in ((42, 42), (0, 1), (2**32 + 5, 5)):
        zone.set_serial(serial)
        (rdata,) = list(ask(responder, IP_ZONE, "SOA").answer[0])
        assert rdata.serial == expected
        (rdata,) = list(ask(responder, rev("192.0.2.2")).authority[0])
        assert rdata.serial == expected


# -- empty non-terminals -----------------------------------------------------------------


@pytest.mark.parametrize(
    "relative",
    [
        "0.0.127",
        "0.127",
        "127",
        "2.0.192",
        "192",
        "100.51.198",
        "51.198",
        "113.0.203",
        # IPv6 prefixes of 2001:db8:1:2::/64 and 2001:db8::5 (nibbles, reversed)
        "8.b.d.0.1.0.0.2",
        "0.8.b.d.0.1.0.0.2",
        "2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2",
        "0.0.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2",
        "0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2",  # 31 nibbles
        "f.f.f.f.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0",  # ::ffff:7f00:2, the test point
        "2",
    ],
)
def test_empty_non_terminals_are_nodata(responder: Responder, relative: str) -> None:
    message = ask(responder, f"{relative}.{IP_ZONE}", "A")
    assert_negative(message, dns.rcode.NOERROR, IP_ZONE, IP_NEGATIVE_TTL)


@pytest.mark.parametrize(
    "relative",
    [
        "1.0.127",
        "128",
        "3.0.192",
        "52.198",
        "9.b.d.0.1.0.0.2",
        "3.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2",
        "3",
        "a",
    ],
)
def test_partial_names_with_nothing_below_are_nxdomain(responder: Responder, relative: str) -> None:
    message = ask(responder, f"{relative}.{IP_ZONE}", "A")
    assert_negative(message, dns.rcode.NXDOMAIN, IP_ZONE, IP_NEGATIVE_TTL)


def test_ipv6_empty_non_terminal_at_depth_four(responder: Responder) -> None:
    # 1.0.0.2.<zone> is both the IPv4 address 2.0.0.1 and the IPv6 prefix 2001::/16.
    assert ask(responder, f"8.b.d.0.1.0.0.2.{IP_ZONE}").rcode() == dns.rcode.NOERROR
    message = ask(responder, f"1.0.0.2.{IP_ZONE}", "A")
    assert_negative(message, dns.rcode.NOERROR, IP_ZONE, IP_NEGATIVE_TTL)
    assert ask(responder, f"2.0.0.2.{IP_ZONE}").rcode() == dns.rcode.NXDOMAIN


def test_ipv6_empty_non_terminal_at_depth_four_with_hex_letters() -> None:
    responder = make_responder({"2a01:4f8::/32": Value(("127.0.0.2",))})
    assert ask(responder, rev("2a01:4f8::1")).answer
    assert ask(responder, f"0.1.0.a.2.{IP_ZONE}").rcode() == dns.rcode.NOERROR
    assert ask(responder, f"0.a.2.{IP_ZONE}").rcode() == dns.rcode.NOERROR
    message = ask(responder, f"1.0.a.2.{IP_ZONE}", "A")
    assert_negative(message, dns.rcode.NOERROR, IP_ZONE, IP_NEGATIVE_TTL)


def test_exclusion_alone_does_not_make_a_non_terminal() -> None:
    responder = make_responder({"192.0.2.5": None, "2001:db8::5": None})
    assert ask(responder, rev("192.0.2.5")).rcode() == dns.rcode.NXDOMAIN
    for relative in ("2.0.192", "0.192", "192", "8.b.d.0.1.0.0.2"):
        message = ask(responder, f"{relative}.{IP_ZONE}")
        assert_negative(message, dns.rcode.NXDOMAIN, IP_ZONE, IP_NEGATIVE_TTL)


def test_exclusion_inside_a_listing_hides_its_non_terminals() -> None:
    responder = make_responder(
        {"10.0.0.0/8": Value(("127.0.0.2",)), "10.1.0.0/16": None, "10.1.2.0/25": None}
    )
    assert ask(responder, rev("10.1.2.3")).rcode() == dns.rcode.NXDOMAIN
    assert ask(responder, f"2.1.10.{IP_ZONE}").rcode() == dns.rcode.NXDOMAIN
    assert ask(responder, f"3.2.10.{IP_ZONE}").rcode() == dns.rcode.NOERROR
    assert ask(responder, f"10.{IP_ZONE}").rcode() == dns.rcode.NOERROR


# -- IPv6 --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address",
    [
        "2001:db8:1:2::",
        "2001:db8:1:2::1",
        "2001:db8:1:2:abcd:ef01:2345:6789",
        "2001:db8:1:2:ffff:ffff:ffff:ffff",
    ],
)
def test_ipv6_slash_64_listing(responder: Responder, address: str) -> None:
    message = ask(responder, rev(address), "A")
    assert_authoritative(message)
    assert rdata_texts(message.answer, "A") == {"127.0.0.2"}
    assert txt_strings(ask(responder, rev(address), "TXT")) == [
        f"{address} listed: https://example.org/q?{address}".encode()
    ]


@pytest.mark.parametrize("address", ["2001:db8:1:1:ffff:ffff:ffff:ffff", "2001:db8:1:3::"])
def test_ipv6_next_to_the_listing(responder: Responder, address: str) -> None:
    assert_negative(ask(responder, rev(address)), dns.rcode.NXDOMAIN, IP_ZONE, IP_NEGATIVE_TTL)


def test_ipv6_single_address(responder: Responder) -> None:
    message = ask(responder, rev("2001:db8::5"), "A")
    assert rdata_texts(message.answer, "A") == {"127.0.0.5"}


# -- RHSBL -------------------------------------------------------------------------------


def test_rhsbl_exact(responder: Responder) -> None:
    message = ask(responder, dom("example.com"), "ANY")
    assert_authoritative(message)
    assert rdata_texts(message.answer, "A") == {"127.0.1.2"}
    assert rdata_texts(message.answer, "TXT") == {'"example.com is a bad domain"'}
    assert message.answer[0].ttl == DOMAIN_TTL
    assert ask(responder, dom("www.example.com")).rcode() == dns.rcode.NXDOMAIN


@pytest.mark.parametrize("name", ["a.spam.example", "b.a.spam.example", "x.ok.spam.example"])
def test_rhsbl_subdomains(responder: Responder, name: str) -> None:
    message = ask(responder, dom(name), "TXT")
    assert_authoritative(message)
    assert txt_strings(message) == [f"sub {name}".encode()]
    assert rdata_texts(ask(responder, dom(name)).answer, "A") == {"127.0.1.3"}


@pytest.mark.parametrize(
    ("name", "rcode"),
    [
        ("spam.example", dns.rcode.NOERROR),  # *.spam.example lists below it
        ("example", dns.rcode.NOERROR),
        ("com", dns.rcode.NOERROR),
        ("safe.spam.example", dns.rcode.NOERROR),  # listed via *.spam.example
        ("a.safe.spam.example", dns.rcode.NXDOMAIN),  # excluded via *.safe.spam.example
        ("net", dns.rcode.NXDOMAIN),
    ],
)
def test_rhsbl_negative_answers(responder: Responder, name: str, rcode: dns.rcode.Rcode) -> None:
    message = ask(responder, dom(name), "A")
    if name == "safe.spam.example":
        assert message.rcode() == rcode
        assert rdata_texts(message.answer, "A") == {"127.0.1.3"}
        return
    assert_negative(message, rcode, DOMAIN_ZONE, DOMAIN_NEGATIVE_TTL)


def test_rhsbl_exact_exclusion() -> None:
    responder = make_responder(
        domain_listings={"example.com": Value(("127.0.1.2",)), "good.example.com": None}
    )
    message = ask(responder, dom("good.example.com"), "A")
    assert_negative(message, dns.rcode.NXDOMAIN, DOMAIN_ZONE, DOMAIN_NEGATIVE_TTL)
    assert ask(responder, dom("x.good.example.com")).rcode() == dns.rcode.NXDOMAIN


def test_rhsbl_excluded_name_with_listed_children_is_nodata(responder: Responder) -> None:
    # An exact exclusion inside *.spam.example: the name is not listed, but names below
    # it are, so NXDOMAIN would tell RFC 8020 resolvers that they do not exist.
    assert ask(responder, dom("x.ok.spam.example")).rcode() == dns.rcode.NOERROR
    message = ask(responder, dom("ok.spam.example"), "A")
    assert_negative(message, dns.rcode.NOERROR, DOMAIN_ZONE, DOMAIN_NEGATIVE_TTL)


def test_rhsbl_after_delete() -> None:
    responder = make_responder()
    zone = responder.zones[1]
    assert ask(responder, dom("spam.example")).rcode() == dns.rcode.NOERROR
    zone.index.delete(parse_domain_key("*.spam.example"))
    assert ask(responder, dom("a.spam.example")).rcode() == dns.rcode.NXDOMAIN
    assert ask(responder, dom("spam.example")).rcode() == dns.rcode.NXDOMAIN
    assert ask(responder, dom("example")).rcode() == dns.rcode.NXDOMAIN
    assert ask(responder, dom("com")).rcode() == dns.rcode.NOERROR


# -- RFC 5782 test points ----------------------------------------------------------------


@pytest.mark.parametrize(
    "qname", [rev("127.0.0.2"), rev("::ffff:7f00:2"), dom("test")], ids=["v4", "v6", "name"]
)
def test_rfc5782_listed_points(responder: Responder, qname: dns.name.Name) -> None:
    message = ask(responder, qname, "ANY")
    assert_authoritative(message)
    assert rdata_texts(message.answer, "A") == {"127.0.0.2"}
    assert len(rdata_texts(message.answer, "TXT")) == 1


@pytest.mark.parametrize(
    ("qname", "zone"),
    [(rev("127.0.0.1"), IP_ZONE), (rev("::ffff:7f00:1"), IP_ZONE), (dom("invalid"), DOMAIN_ZONE)],
    ids=["v4", "v6", "name"],
)
def test_rfc5782_unlisted_points(responder: Responder, qname: dns.name.Name, zone: str) -> None:
    message = ask(responder, qname, "A")
    assert message.rcode() == dns.rcode.NXDOMAIN
    assert message.authority[0].name == dns.name.from_text(zone)


def test_rfc5782_txt_names_the_point(responder: Responder) -> None:
    (text,) = txt_strings(ask(responder, rev("127.0.0.2"), "TXT"))
    assert b"127.0.0.2" in text
    (text,) = txt_strings(ask(responder, rev("::ffff:7f00:2"), "TXT"))
    assert b"::ffff:7f00:2" in text


def test_the_deepest_zone_wins() -> None:
    config = {
        "zones": [
            {"name": "example.org", "kind": "domain", "ns": ["ns1.example.org"], "ttl": 10},
            {"name": IP_ZONE, "kind": "ip", "ns": ["ns1.example.org"], "ttl": 20},
        ]
    }
    for order in (config["zones"], config["zones"][::-1]):
        responder = make_responder(
            {"192.0.2.1": Value(("127.0.0.2",))},
            {"foo.bl": Value(("127.0.0.3",))},
            config={"zones": order},
        )
        for udp in (True, False):
            message = ask(responder, rev("192.0.2.1"), udp=udp)
            assert rdata_texts(message.answer, "A") == {"127.0.0.2"}
            assert message.answer[0].ttl == 20
            message = ask(responder, IP_ZONE, "SOA", udp=udp)
            assert message.answer[0].name == dns.name.from_text(IP_ZONE)
            assert message.answer[0].ttl == 20
            # foo.bl is listed in example.org, but bl.example.org answers for its names.
            message = ask(responder, f"foo.{IP_ZONE}", udp=udp)
            assert message.rcode() == dns.rcode.NXDOMAIN
            assert message.authority[0].name == dns.name.from_text(IP_ZONE)
            message = ask(responder, "test.example.org", udp=udp)
            assert rdata_texts(message.answer, "A") == {"127.0.0.2"}
            assert message.answer[0].ttl == 10


# -- outside the zones, malformed names --------------------------------------------------


@pytest.mark.parametrize(
    "qname",
    [
        "example.org",
        "org",
        ".",
        "xbl.example.org",
        "bl.example.org.evil",
        "2.0.0.127.bl.example.com",
        "other.test",
    ],
)
@pytest.mark.parametrize("edns", [None, 0])
def test_refused_outside_our_zones(responder: Responder, qname: str, edns: int | None) -> None:
    message = ask(responder, qname, "A", edns=edns)
    assert message.rcode() == dns.rcode.REFUSED
    assert message.flags & dns.flags.QR
    assert not message.flags & dns.flags.AA
    assert not message.flags & dns.flags.RA
    assert message.answer == message.authority == []
    assert message.question[0].name == dns.name.from_text(qname)
    assert message.edns == (-1 if edns is None else 0)


@pytest.mark.parametrize(
    "relative",
    [
        "5.4.3.2.1",  # five labels
        "1.2.0.256",
        "1.2.0.01",
        "01.2.0.192",
        "1.02.0.192",
        "+1.2.0.192",
        " 1.2.0.192",
        "-1.2.0.192",
        "1.2.0.192.192",
        "g.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2",
        "00.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2",
        "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.0.0.0.1.0.0.0.8.b.d.0.1.0.0.2.0",  # 33
        "x.1.2.0.192",
    ],
)
def test_malformed_names_inside_the_zone_are_nxdomain(responder: Responder, relative: str) -> None:
    qname = dns.name.from_text(relative, origin=dns.name.from_text(IP_ZONE))
    message = ask(responder, qname, "A")
    assert_negative(message, dns.rcode.NXDOMAIN, IP_ZONE, IP_NEGATIVE_TTL)


def test_canonical_forms_of_the_same_addresses_are_listed(responder: Responder) -> None:
    # The malformed names above are near misses of these.
    assert ask(responder, rev("192.0.2.1")).answer
    assert ask(responder, rev("2001:db8:1:2::1")).answer


# -- errors ------------------------------------------------------------------------------


def header(qid: int = 0xBEEF, flags: int = 0x0100, counts: tuple[int, ...] = (1, 0, 0, 0)) -> bytes:
    return struct.pack(">HH4H", qid, flags, *counts)


@pytest.mark.parametrize(
    "data",
    [
        header() + b"\x03abc",  # question cut short
        header(counts=(2, 0, 0, 0)) + wire("x.bl.example.org")[12:],  # one question missing
        header(counts=(1, 5, 0, 0)) + wire("x.bl.example.org")[12:],  # answers missing
        header() + b"\xc0\x0c\x00\x01\x00\x01",  # a pointer to itself
        header() + b"\x40" + b"a" * 64 + b"\x00\x00\x01\x00\x01",  # extended label type
    ],
)
def test_formerr_for_unparseable_packets(responder: Responder, data: bytes) -> None:
    reply = responder.respond(data, True)
    assert reply is not None
    assert reply[0:2] == b"\xbe\xef"
    message = parse(reply)
    assert message.rcode() == dns.rcode.FORMERR
    assert message.flags & dns.flags.QR
    assert not message.flags & dns.flags.AA
    assert message.question == message.answer == message.authority == []


@pytest.mark.parametrize("seed", range(5))
def test_formerr_for_random_garbage_after_a_header(responder: Responder, seed: int) -> None:
    # Counts no packet of this size can hold: unparseable whatever the bytes are.
    garbage = random.Random(seed).randbytes(12 + 20 * seed)
    data = header(qid=seed, flags=0x0100, counts=(0xFFFF, 0xFFFF, 0xFFFF, 0xFFFF)) + garbage
    for udp in (True, False):
        reply = responder.respond(data, udp)
        assert reply is not None
        assert len(reply) == 12
        message = parse(reply)
        assert message.id == seed
        assert message.rcode() == dns.rcode.FORMERR
        assert message.flags & dns.flags.QR
        assert message.flags & dns.flags.RD


def test_formerr_for_two_questions(responder: Responder) -> None:
    question = wire("x.bl.example.org")[12:]
    data = header(counts=(2, 0, 0, 0)) + question + question
    message = parse(responder.respond(data, True))
    assert message.rcode() == dns.rcode.FORMERR
    assert message.id == 0xBEEF


def test_formerr_for_two_opt_records(responder: Responder) -> None:
    query = wire("x.bl.example.org", edns=0)
    opt = query[-11:]
    data = query[:10] + b"\x00\x02" + query[12:] + opt
    message = parse(responder.respond(data, True))
    assert message.rcode() == dns.rcode.FORMERR


@pytest.mark.parametrize("data", [b"", b"\x00", b"\x12\x34\x01\x00\x00\x01", b"x" * 11])
def test_runts_get_no_answer(responder: Responder, data: bytes) -> None:
    assert responder.respond(data, True) is None
    assert responder.respond(data, False) is None


def test_responses_get_no_answer(responder: Responder) -> None:
    reply = responder.respond(wire(rev("192.0.2.1")), True)
    assert reply is not None
    assert responder.respond(reply, True) is None
    query = make_query(rev("192.0.2.1"))
    query.flags |= dns.flags.QR
    assert responder.respond(query.to_wire(), True) is None
    assert responder.respond(header(flags=0x8000) + b"\xff" * 20, False) is None


@pytest.mark.parametrize("opcode", [dns.opcode.IQUERY, dns.opcode.STATUS, dns.opcode.NOTIFY])
@pytest.mark.parametrize("edns", [None, 0])
def test_notimp_for_other_opcodes(responder: Responder, opcode: int, edns: int | None) -> None:
    message = ask(responder, rev("192.0.2.1"), "A", opcode=opcode, edns=edns)
    assert message.rcode() == dns.rcode.NOTIMP
    assert message.opcode() == opcode
    assert message.flags & dns.flags.QR
    assert message.answer == []
    assert message.edns == (-1 if edns is None else 0)


@pytest.mark.parametrize("edns", [None, 0])
def test_notimp_for_update(responder: Responder, edns: int | None) -> None:
    update = dns.update.UpdateMessage(IP_ZONE, id=0x4242)
    update.add("1.2.0.192", 300, "A", "127.0.0.2")
    if edns is not None:
        update.use_edns(edns)
    reply = responder.respond(update.to_wire(), True)
    assert reply is not None
    message = dns.message.from_wire(reply)
    assert isinstance(message, dns.update.UpdateMessage)
    assert message.id == 0x4242
    assert message.opcode() == dns.opcode.UPDATE
    assert message.rcode() == dns.rcode.NOTIMP
    assert message.flags & dns.flags.QR
    assert message.update == []
    assert message.edns == (-1 if edns is None else 0)
    # The raw header says the same, independently of dnspython's UPDATE view.
    assert reply[2] >> 3 & 0xF == 5
    assert reply[3] & 0xF == 4


@pytest.mark.parametrize("rdtype", ["AXFR", "IXFR"])
def test_zone_transfers_are_refused(responder: Responder, rdtype: str) -> None:
    for udp in (True, False):
        if rdtype == "IXFR" and udp:
            continue  # the single SOA: test_ixfr_over_udp_is_the_current_soa
        message = ask(responder, IP_ZONE, rdtype, udp=udp)
        assert message.rcode() == dns.rcode.REFUSED
        assert message.answer == []


def test_ixfr_over_udp_is_the_current_soa(responder: Responder) -> None:
    """RFC 1995 section 2: an answer that does not fit UDP is the SOA alone: ask over TCP."""
    message = ask(responder, IP_ZONE, "IXFR", udp=True)
    assert message.rcode() == dns.rcode.NOERROR and message.flags & dns.flags.AA
    (soa,) = message.answer
    assert soa.rdtype == dns.rdatatype.SOA and soa.name == dns.name.from_text(IP_ZONE)
    assert ask(responder, rev("192.0.2.1"), "IXFR", udp=True).rcode() == dns.rcode.REFUSED


@pytest.mark.parametrize("rdtype", ["MAILB", "MAILA", "TSIG", "TKEY", 0, 200])
def test_meta_types_are_notimp(responder: Responder, rdtype: str | int) -> None:
    message = ask(responder, rev("192.0.2.1"), rdtype)
    assert message.rcode() == dns.rcode.NOTIMP
    assert message.answer == []


@pytest.mark.parametrize("qname", [rev("192.0.2.1"), IP_ZONE, "version.bind"])
@pytest.mark.parametrize("rdclass", ["CH", "HS", 42])
def test_other_classes_are_refused(
    responder: Responder, qname: dns.name.Name | str, rdclass: str | int
) -> None:
    message = ask(responder, qname, "TXT", rdclass=rdclass)
    assert message.rcode() == dns.rcode.REFUSED
    assert message.answer == []
    assert not message.flags & dns.flags.AA
    assert message.question[0].rdclass == dns.rdataclass.RdataClass.make(rdclass)


def test_class_any_is_answered_as_in(responder: Responder) -> None:
    message = ask(responder, rev("192.0.2.1"), "A", rdclass="ANY")
    assert message.rcode() == dns.rcode.NOERROR
    assert rdata_texts(message.answer, "A") == {"127.0.0.2", "127.0.0.4"}
    assert message.answer[0].rdclass == dns.rdataclass.IN


# -- EDNS0 -------------------------------------------------------------------------------


@pytest.mark.parametrize("payload", [512, 1232, 4096, 65535, 100])
@pytest.mark.parametrize("do", [False, True])
def test_edns_opt_is_echoed_with_our_payload(responder: Responder, payload: int, do: bool) -> None:
    for qname in (rev("192.0.2.1"), rev("192.0.2.2"), IP_ZONE):
        message = ask(responder, qname, "A", edns=0, do=do, payload=payload)
        assert message.edns == 0
        assert message.payload == UDP_PAYLOAD
        assert bool(message.ednsflags & dns.flags.DO) is do
        assert message.options == ()


def test_edns_payload_is_the_configured_one() -> None:
    responder = make_responder(udp_payload=4000)
    message = ask(responder, rev("192.0.2.1"), "A", edns=0, payload=512)
    assert message.payload == 4000


def test_edns_options_are_not_echoed(responder: Responder) -> None:
    query = make_query(rev("192.0.2.1"), "A", edns=0)
    query.use_edns(0, options=[dns.edns.GenericOption(dns.edns.OptionType.NSID, b"")])
    message = parse(responder.respond(query.to_wire(), True))
    assert message.rcode() == dns.rcode.NOERROR
    assert message.edns == 0
    assert message.options == ()
    assert rdata_texts(message.answer, "A") == {"127.0.0.2", "127.0.0.4"}


@pytest.mark.parametrize("version", [1, 2, 255])
@pytest.mark.parametrize("qname", [rev("192.0.2.1"), "example.org"])
def test_unknown_edns_version_is_badvers(
    responder: Responder, version: int, qname: dns.name.Name | str
) -> None:
    message = ask(responder, qname, "A", edns=version, do=True)
    assert message.rcode() == dns.rcode.BADVERS
    assert message.edns == 0
    assert message.ednsflags & dns.flags.DO
    assert message.answer == []


def test_no_edns_no_opt(responder: Responder) -> None:
    for qname in (rev("192.0.2.1"), rev("192.0.2.2"), "example.org"):
        message = ask(responder, qname, "A")
        assert message.edns == -1
        assert message.additional == []


# -- header flags ------------------------------------------------------------------------


@pytest.mark.parametrize("rd", [False, True])
@pytest.mark.parametrize("cd", [False, True])
@pytest.mark.parametrize(
    "qname", [rev("192.0.2.1"), rev("192.0.2.2"), "example.org", IP_ZONE], ids=str
)
def test_header_flags(responder: Responder, rd: bool, cd: bool, qname: dns.name.Name | str) -> None:
    for qid in (0, 1, 0xABCD, 0xFFFF):
        message = ask(responder, qname, "A", rd=rd, cd=cd, ad=True, qid=qid)
        assert message.id == qid
        assert message.flags & dns.flags.QR
        assert bool(message.flags & dns.flags.RD) is rd
        assert bool(message.flags & dns.flags.CD) is cd
        assert not message.flags & dns.flags.AD
        assert not message.flags & dns.flags.RA
        assert not message.flags & dns.flags.TC
        in_zone = qname != "example.org"
        assert bool(message.flags & dns.flags.AA) is in_zone


def test_query_flags_aa_and_tc_are_not_echoed(responder: Responder) -> None:
    query = make_query(rev("192.0.2.1"))
    query.flags |= dns.flags.TC | dns.flags.AA | dns.flags.RA
    message = parse(responder.respond(query.to_wire(), True))
    assert not message.flags & dns.flags.TC
    assert not message.flags & dns.flags.RA
    assert message.flags & dns.flags.AA
    assert message.answer


@pytest.mark.parametrize(
    ("qname", "listed"),
    [
        ("2.0.0.127.Bl.ExAmPlE.oRG", True),
        ("1.2.0.192.BL.EXAMPLE.ORG", True),
        ("5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.B.D.0.1.0.0.2.bl.example.org", True),
        ("EXAMPLE.com.DBL.example.org", True),
        ("B.a.SPAM.example.dBl.example.org", True),
        ("2.2.0.192.BL.example.ORG", False),
        ("Nothing.Dbl.Example.Org", False),
    ],
)
def test_qname_case_is_preserved_and_lookups_ignore_it(
    responder: Responder, qname: str, listed: bool
) -> None:
    message = ask(responder, qname, "A")
    assert message.question[0].name.to_text(omit_final_dot=True) == qname
    if listed:
        assert message.rcode() == dns.rcode.NOERROR
        assert message.answer[0].name.to_text(omit_final_dot=True) == qname
    else:
        assert message.rcode() == dns.rcode.NXDOMAIN
        assert message.answer == []


def test_question_bytes_are_echoed(responder: Responder) -> None:
    data = wire("2.0.0.127.Bl.ExAmPlE.oRG", "TXT")
    reply = responder.respond(data, True)
    assert reply is not None
    assert reply[12 : len(data)] == data[12:]


# -- truncation and long TXT -------------------------------------------------------------


def expected_long_txt(key: str) -> bytes:
    return LONG_TXT.format(key=key).encode()


@pytest.mark.parametrize(
    ("address", "rdtype"), [("203.0.113.9", "TXT"), ("203.0.113.10", "A"), ("203.0.113.10", "ANY")]
)
def test_udp_answer_over_512_without_edns_is_truncated(
    responder: Responder, address: str, rdtype: str
) -> None:
    message = ask(responder, rev(address), rdtype, udp=True)
    assert message.flags & dns.flags.TC
    assert message.flags & dns.flags.AA
    assert message.rcode() == dns.rcode.NOERROR
    assert message.answer == message.authority == []
    assert message.question[0].name == rev(address)
    # A client advertising a small EDNS buffer gets TC too, with the OPT record.
    message = ask(responder, rev(address), rdtype, udp=True, edns=0, payload=400)
    assert message.flags & dns.flags.TC
    assert message.edns == 0


@pytest.mark.parametrize("udp", [False, True])
def test_long_txt_split_into_character_strings(responder: Responder, udp: bool) -> None:
    # Over TCP, or over UDP with a large enough EDNS buffer, the whole answer comes back.
    message = ask(responder, rev("203.0.113.9"), "TXT", udp=udp, edns=0 if udp else None)
    assert not message.flags & dns.flags.TC
    strings = txt_strings(message)
    assert [len(s) for s in strings] == [255, 255, 612 - 2 * 255]
    assert b"".join(strings) == expected_long_txt("203.0.113.9")


def test_many_codes_over_tcp(responder: Responder) -> None:
    message = ask(responder, rev("203.0.113.10"), "A", udp=False)
    assert not message.flags & dns.flags.TC
    assert rdata_texts(message.answer, "A") == set(MANY_CODES)


def test_answer_just_within_the_udp_limit_is_not_truncated() -> None:
    # Grow a TXT until the reply is exactly 512 bytes: the limit is inclusive.
    qname = rev("192.0.2.77")
    base = len(wire(qname, "TXT")) + 2 + 10 + 1  # owner pointer, RR header, one length byte
    text = "x" * 200 + "{key}"
    size_without = base + len(text.format(key="192.0.2.77").encode()) + 1  # second length byte
    padding = 512 - size_without
    value = Value(("127.0.0.2",), "x" * (200 + padding) + "{key}")
    responder = make_responder({"192.0.2.77": value})
    reply = responder.respond(wire(qname, "TXT"), True)
    assert reply is not None
    assert len(reply) == 512
    assert not parse(reply).flags & dns.flags.TC
    value = Value(("127.0.0.2",), "x" * (201 + padding) + "{key}")
    responder = make_responder({"192.0.2.77": value})
    assert parse(responder.respond(wire(qname, "TXT"), True)).flags & dns.flags.TC


@pytest.mark.parametrize("length", [1, 254, 255, 256, 510, 511, 766])
def test_txt_chunking_boundaries(length: int) -> None:
    value = Value(("127.0.0.2",), "y" * length)
    responder = make_responder({"192.0.2.1": value})
    data = wire(rev("192.0.2.1"), "TXT")
    for reply in (responder.fast(data, False), slowpath.respond(responder, data, False)):
        strings = txt_strings(parse(reply))
        assert b"".join(strings) == b"y" * length
        assert all(len(s) == 255 for s in strings[:-1])
        assert 0 < len(strings[-1]) <= 255
        assert len(strings) == -(-length // 255)


def test_empty_txt_is_one_empty_string() -> None:
    config = copy.deepcopy(CONFIG)
    config["zones"][0]["txt"] = ""
    responder = make_responder({"192.0.2.1": Value(("127.0.0.2",))}, config=config)
    data = wire(rev("192.0.2.1"), "TXT")
    for reply in (responder.fast(data, True), slowpath.respond(responder, data, True)):
        assert txt_strings(parse(reply)) == [b""]


def test_truncated_negative_answer_keeps_nxdomain() -> None:
    config = {
        "zones": [
            {
                "name": DOMAIN_ZONE,
                "kind": "domain",
                "ns": ["ns1.example.org"],
                "soa": {
                    "mname": ".".join(["m" * 60] * 3) + ".example.org",
                    "rname": ".".join(["r" * 60] * 3) + ".example.net",
                },
            }
        ]
    }
    responder = make_responder(domain_listings={}, config=config)
    data = wire(dom(".".join(["q" * 60] * 3)), "A")
    slow = parse(slowpath.respond(responder, data, True))
    assert slow.flags & dns.flags.TC
    assert slow.rcode() == dns.rcode.NXDOMAIN
    fast = parse(responder.fast(data, True))
    assert fast.flags & dns.flags.TC
    assert fast.rcode() == dns.rcode.NXDOMAIN
    assert fast.flags == slow.flags
    assert fast.question == slow.question
    assert fast.answer == fast.authority == []


# -- the fast path declines what it does not know, and agrees with the dnslib path --------


@pytest.mark.parametrize(
    ("qname", "rdtype", "kwargs"),
    [
        (rev("192.0.2.1"), "A", {}),
        (rev("192.0.2.1"), "TXT", {"edns": 0, "do": True}),
        (rev("192.0.2.2"), "ANY", {}),
        (IP_ZONE, "SOA", {}),
        ("example.org", "A", {}),
        (dom("example.com"), "MX", {"edns": 0}),
    ],
)
def test_fast_path_answers_common_queries(
    responder: Responder, qname: dns.name.Name | str, rdtype: str, kwargs: dict[str, object]
) -> None:
    data = wire(qname, rdtype, **kwargs)  # type: ignore[arg-type]
    fast = responder.fast(data, True)
    assert fast is not None
    assert fast == responder.respond(data, True)
    assert parse(fast).to_text() == parse(slowpath.respond(responder, data, True)).to_text()


@pytest.mark.parametrize(
    ("qname", "rdtype", "kwargs"),
    [
        (IP_ZONE, "AXFR", {}),
        (rev("192.0.2.1"), "A", {"edns": 1}),
        (rev("192.0.2.1"), "A", {"rdclass": "CH"}),
        (rev("192.0.2.1"), "A", {"rdclass": "ANY"}),
        (rev("192.0.2.1"), "A", {"opcode": dns.opcode.UPDATE}),
    ],
)
def test_fast_path_declines_unusual_queries(
    responder: Responder, qname: dns.name.Name | str, rdtype: str, kwargs: dict[str, object]
) -> None:
    assert responder.fast(wire(qname, rdtype, **kwargs), True) is None  # type: ignore[arg-type]


# -- hypothesis: random queries ------------------------------------------------------------

V4_POOL = ["192.0.2.1", "192.0.2.2", "198.51.100.7", "198.51.100.200", "127.0.0.1", "127.0.0.2",
           "203.0.113.9", "203.0.113.10", "203.0.113.11"]  # fmt: skip
V6_POOL = ["2001:db8::5", "2001:db8::6", "2001:db8:1:2::1", "2001:db8:1:3::", "::ffff:7f00:2",
           "::ffff:7f00:1", "2001:db8:1:2:ffff:ffff:ffff:ffff"]  # fmt: skip
DOMAIN_POOL = ["example.com", "www.example.com", "a.spam.example", "spam.example",
               "ok.spam.example", "x.ok.spam.example", "test", "invalid", "com", "example",
               "a.safe.spam.example"]  # fmt: skip


@st.composite
def ip_names(draw: st.DrawFn) -> dns.name.Name:
    choice = draw(st.integers(0, 3))
    if choice == 0:
        address = draw(st.sampled_from(V4_POOL + V6_POOL))
    elif choice == 1:
        address = str(draw(st.ip_addresses(v=4)))
    elif choice == 2:
        address = str(draw(st.ip_addresses(v=6)))
    else:
        prefix = draw(st.sampled_from(["2001:db8:1:2::", "2001:db8::", "198.51.100."]))
        if prefix.endswith("."):
            address = prefix + str(draw(st.integers(0, 255)))
        else:
            address = prefix + format(draw(st.integers(0, 0xFFFF)), "x")
    name = rev(address)
    # Sometimes cut labels off the front: partial names and empty non-terminals.
    relative = len(name) - len(dns.name.from_text(IP_ZONE))
    cut = draw(st.sampled_from([0, 0, 0, draw(st.integers(0, relative))]))
    return dns.name.Name(name.labels[cut:])


LABEL = st.from_regex(r"[a-z0-9][a-z0-9-]{0,8}", fullmatch=True)


@st.composite
def domain_names(draw: st.DrawFn) -> dns.name.Name:
    if draw(st.booleans()):
        return dom(draw(st.sampled_from(DOMAIN_POOL)))
    labels = draw(st.lists(LABEL, min_size=1, max_size=4))
    suffix = draw(st.sampled_from(["", "spam.example", "example.com", "safe.spam.example"]))
    return dom(".".join(labels + ([suffix] if suffix else [])))


@st.composite
def other_names(draw: st.DrawFn) -> dns.name.Name:
    return dns.name.from_text(
        draw(st.sampled_from([IP_ZONE, DOMAIN_ZONE, "example.org", "x.example.org", "org", "."]))
    )


@st.composite
def random_case(draw: st.DrawFn, name: dns.name.Name) -> dns.name.Name:
    flips = draw(st.randoms(use_true_random=False))
    labels = [
        bytes(b ^ 0x20 if 97 <= b <= 122 and flips.random() < 0.5 else b for b in label)
        for label in name.labels
    ]
    return dns.name.Name(labels)


@st.composite
def queries(draw: st.DrawFn) -> tuple[bytes, bool]:
    name = draw(st.one_of(ip_names(), domain_names(), other_names()))
    name = draw(random_case(name))
    rdtype = draw(st.sampled_from(["A", "TXT", "ANY", "AAAA", "SOA", "NS", "MX"]))
    edns = draw(st.sampled_from([None, 0, 0, 1]))
    do = draw(st.booleans()) if edns is not None else False
    payload = draw(st.sampled_from([0, 100, 512, 513, 1232, 4096, 65535]))
    query = make_query(
        name,
        rdtype,
        edns=edns,
        do=do,
        payload=payload,
        rd=draw(st.booleans()),
        cd=draw(st.booleans()),
        ad=draw(st.booleans()),
        qid=draw(st.integers(0, 0xFFFF)),
    )
    if edns is None and do:
        query.use_edns(False)
    return query.to_wire(), draw(st.booleans())


HYPOTHESIS = settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@HYPOTHESIS
@given(query=queries())
def test_fast_path_agrees_with_dnslib_path(responder: Responder, query: tuple[bytes, bool]) -> None:
    data, udp = query
    fast = responder.fast(data, udp)
    slow = slowpath.respond(responder, data, udp)
    assert slow is not None
    slow_message = parse(slow)
    note(slow_message.to_text())
    if fast is None:
        return
    assert responder.respond(data, udp) == fast
    fast_message = parse(fast)
    assert same_message(fast_message, slow_message)
    assert fast_message.flags == slow_message.flags
    assert fast_message.ednsflags == slow_message.ednsflags
    assert fast_message.payload == slow_message.payload
    limit = 65535 if not udp else (512 if fast_message.edns < 0 else UDP_PAYLOAD)
    assert len(fast) <= limit


def test_fast_path_agrees_with_dnslib_path_on_every_pool_name(responder: Responder) -> None:
    names = [rev(address) for address in V4_POOL + V6_POOL]
    names += [dom(name) for name in DOMAIN_POOL]
    names += [dns.name.from_text(name) for name in (IP_ZONE, DOMAIN_ZONE, "example.org")]
    names += [dns.name.Name(name.labels[cut:]) for name in names[:3] for cut in (1, 2, 3)]
    checked = 0
    for name in names:
        for rdtype in ("A", "TXT", "ANY", "AAAA", "SOA", "NS", "MX"):
            for edns, do in ((None, False), (0, False), (0, True)):
                data = wire(name, rdtype, edns=edns, do=do)
                for udp in (True, False):
                    fast = responder.fast(data, udp)
                    assert fast is not None, (name, rdtype, edns)
                    slow = slowpath.respond(responder, data, udp)
                    assert same_message(parse(fast), parse(slow))
                    checked += 1
    assert checked == len(names) * 7 * 3 * 2


@HYPOTHESIS
@given(data=st.binary(max_size=600), udp=st.booleans())
def test_arbitrary_bytes_never_raise(responder: Responder, data: bytes, udp: bool) -> None:
    check_reply(data, responder.respond(data, udp))


@st.composite
def mutated_queries(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(queries())[0])
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["flip", "set", "insert", "delete", "truncate"]))
        position = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[position] = draw(st.sampled_from([0, 1, 0x3F, 0x40, 0xC0, 0xFF, 41]))
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=4))
        elif kind == "delete":
            del data[position : position + draw(st.integers(1, 4))]
        else:
            del data[position:]
    return bytes(data)


@HYPOTHESIS
@given(data=mutated_queries(), udp=st.booleans())
def test_mutated_queries_never_raise(responder: Responder, data: bytes, udp: bool) -> None:
    check_reply(data, responder.respond(data, udp))


def same_message(one: dns.message.Message, other: dns.message.Message) -> bool:
    """Equal, case included, except for the authority SOA owner's case.

    The fast path points the SOA owner into the question, so it takes the
    query's case (BL.example.org); dnslib writes the zone's own lowercase name.
    DNS names compare case-insensitively, so both are right.
    """
    assert one.id == other.id
    assert one.flags == other.flags
    assert one.rcode() == other.rcode()
    assert (one.edns, one.ednsflags, one.payload) == (other.edns, other.ednsflags, other.payload)
    assert one.question == other.question
    assert [r.to_text() for r in one.question] == [r.to_text() for r in other.question]
    assert [r.to_text() for r in one.answer] == [r.to_text() for r in other.answer]
    assert [r.to_text().lower() for r in one.authority] == [
        r.to_text().lower() for r in other.authority
    ]
    assert one.authority == other.authority
    assert one.additional == other.additional == []
    return True


def check_reply(data: bytes, reply: bytes | None) -> None:
    if len(data) < 12 or data[2] & 0x80:
        assert reply is None
        return
    assert reply is not None
    assert len(reply) >= 12
    assert reply[0:2] == data[0:2]  # id
    assert reply[2] & 0x80  # QR
    assert not reply[3] & 0x80  # never RA
    assert (reply[2] >> 3) & 0xF == (data[2] >> 3) & 0xF  # opcode echoed


def test_label_holding_a_dot_is_not_the_dotted_name(responder: Responder) -> None:
    assert ask(responder, dom("example.com"), "A").rcode() == dns.rcode.NOERROR
    one_label = dns.name.Name((b"example.com",)).concatenate(DOMAIN_ORIGIN)
    message = ask(responder, one_label, "A")
    assert_negative(message, dns.rcode.NXDOMAIN, DOMAIN_ZONE, DOMAIN_NEGATIVE_TTL)


@pytest.mark.parametrize("qname", [rev("192.0.2.200"), dom("nothing.example"), IP_ZONE])
def test_negative_answers_are_as_compact_as_dnslib_compression(
    responder: Responder, qname: dns.name.Name | str
) -> None:
    data = wire(qname, "A" if qname != IP_ZONE else "MX")
    fast = responder.fast(data, True)
    assert fast is not None
    slow = slowpath.respond(responder, data, True)
    assert slow is not None
    assert len(fast) <= len(slow)
    assert parse(fast).to_text().lower() == parse(slow).to_text().lower()
