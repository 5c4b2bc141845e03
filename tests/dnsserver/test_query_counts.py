"""Answers counted by zone and rcode, on the fast and the dnslib path (for /metrics)."""

from __future__ import annotations

from collections import Counter

import dns.message
import dns.opcode
import dns.rcode
from hypothesis import given, settings
from hypothesis import strategies as st

from rbl.dnsserver.responder import RCODE_NAMES, Responder
from rbl.dnsserver.zone import Zone
from tests.support.dns_client import dom, make_query, rev, wire
from tests.support.dns_zones import DOMAIN_ZONE, IP_ZONE, make_responder

HEADER = b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"  # RD, one question


def ask_all(responder: Responder, packets: list[bytes], udp: bool = True) -> list[bytes]:
    replies = [responder.respond(packet, udp) for packet in packets]
    return [reply for reply in replies if reply is not None]


def test_fast_path_counts_by_zone_and_rcode() -> None:
    responder = make_responder()
    assert responder.query_counts() == {}
    ask_all(
        responder,
        [
            wire(rev("192.0.2.1")),  # listed
            wire(rev("192.0.2.1"), "TXT"),
            wire(rev("192.0.2.99")),  # not listed
            wire(rev("203.0.113.10")),  # 58 A records: truncated, still NOERROR
            wire(dom("example.com")),
            wire(dom("nothing.example")),
            wire(dom("nothing.example")),
            wire("www.example.net."),  # outside every zone
        ],
    )
    assert responder.query_counts() == {
        (IP_ZONE, "NOERROR"): 3,
        (IP_ZONE, "NXDOMAIN"): 1,
        (DOMAIN_ZONE, "NOERROR"): 1,
        (DOMAIN_ZONE, "NXDOMAIN"): 2,
        ("", "REFUSED"): 1,
    }


def test_slow_path_counts_by_zone_and_rcode() -> None:
    responder = make_responder()
    notify = make_query(rev("192.0.2.1"))
    notify.set_opcode(dns.opcode.NOTIFY)
    ask_all(
        responder,
        [
            wire(rev("192.0.2.99"), rdclass="ANY"),  # class ANY: dnslib path, NXDOMAIN
            wire(rev("192.0.2.1"), rdclass="ANY"),  # listed
            wire(rev("192.0.2.1"), "AXFR"),  # over UDP: REFUSED, in the zone
            wire(dom("example.com"), "MAILB"),  # a meta type: NOTIMP, in the zone
            wire(dom("example.com"), rdclass="CH"),  # REFUSED outside every zone
            notify.to_wire(),  # NOTIMP
            wire(rev("192.0.2.1"), edns=1),  # BADVERS: header NOERROR, the OPT says 16
            HEADER + b"\x05abc",  # unparseable: FORMERR
            b"\x00\x01",  # a runt: no answer, not counted
            b"\x12\x34\x81\x00" + HEADER[4:],  # a response: no answer, not counted
        ],
    )
    assert responder.query_counts() == {
        (IP_ZONE, "NXDOMAIN"): 1,
        (IP_ZONE, "NOERROR"): 1,
        (IP_ZONE, "REFUSED"): 1,
        (DOMAIN_ZONE, "NOTIMP"): 1,
        ("", "REFUSED"): 1,
        ("", "NOTIMP"): 1,
        ("", "BADVERS"): 1,
        ("", "FORMERR"): 1,
    }


def test_tcp_and_udp_count_alike_and_each_answer_once() -> None:
    responder = make_responder()
    for udp in (True, False):
        ask_all(responder, [wire(rev("192.0.2.1")), wire(rev("192.0.2.1"), rdclass="ANY")], udp)
    assert responder.query_counts() == {(IP_ZONE, "NOERROR"): 4}


def test_counts_live_in_the_zone_list_a_reload_carries_over() -> None:
    responder = make_responder()
    ask_all(responder, [wire(rev("192.0.2.99"))] * 3)
    old: Zone = responder.zones[0]
    fresh = Zone(old.settings, old.index)
    fresh.rcodes = old.rcodes
    reloaded = Responder([fresh, responder.zones[1]])
    ask_all(reloaded, [wire(rev("192.0.2.99"))])
    assert reloaded.query_counts() == {(IP_ZONE, "NXDOMAIN"): 4}


_names = st.sampled_from(
    [
        rev("192.0.2.1"),
        rev("192.0.2.99"),
        rev("2001:db8::5"),
        dom("example.com"),
        dom("a.spam.example"),
        "example.net.",
        IP_ZONE + ".",
    ]
)
_queries = st.builds(
    lambda name, rdtype, rdclass, edns: wire(name, rdtype, rdclass=rdclass, edns=edns),
    _names,
    st.sampled_from(["A", "TXT", "ANY", "SOA", "NS", "AAAA", "MAILA", "AXFR"]),
    st.sampled_from(["IN", "ANY", "CH"]),
    st.sampled_from([None, 0, 1]),
)


@settings(max_examples=50, deadline=None)
@given(st.lists(st.one_of(_queries, st.binary(max_size=40)), max_size=30), st.booleans())
def test_every_answer_is_counted_once_under_its_rcode(packets: list[bytes], udp: bool) -> None:
    responder = make_responder()
    replies = ask_all(responder, packets, udp)
    by_rcode: Counter[str] = Counter()
    for (_zone, rcode), count in responder.query_counts().items():
        by_rcode[rcode] += count
    # dnspython reads the full rcode: the header's 4 bits and the OPT record's upper bits
    assert by_rcode == Counter(
        RCODE_NAMES[dns.message.from_wire(reply, keyring=False).rcode()] for reply in replies
    )
    assert sum(by_rcode.values()) == len(replies)


def test_rcode_names_match_dnspython() -> None:
    for value in (*range(11), 16):
        assert RCODE_NAMES[value] == dns.rcode.to_text(dns.rcode.Rcode(value))
    assert dns.message.make_query("a.", "A").rcode() == 0
