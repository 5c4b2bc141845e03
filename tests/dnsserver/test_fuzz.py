"""Fuzzing the responder in process: random and malformed packets never break it.

Every packet, however broken, must give either silence (runts, responses) or a
reply that dnspython parses, with the query's id and opcode, QR set, within
the UDP size limit, and an rcode that agrees with dnspython's own reading of
the query. Where the fast path answers and the dnslib path accepts the packet
too, the two give the same message. ``scripts/fuzz-dns`` does the same to a
real server, a million packets at a time, and watches its memory.

Known disagreements are named here, not hidden: dnslib refuses labels that are
not UTF-8, which the fast path (rightly, RFC 2181 section 11) answers.
``test_qname_over_255_octets`` keeps the fast path from answering names past
255 octets, which the fuzzer found (their replies could pass 512 bytes).
"""

from __future__ import annotations

import tracemalloc

import dns.exception
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dnslib
import pytest
from hypothesis import HealthCheck, currently_in_test_context, given, note, settings
from hypothesis import strategies as st

from rbl.dnsserver import slowpath
from rbl.dnsserver.responder import Responder
from tests.support.dns_client import dom, rev, wire
from tests.support.dns_packets import (
    IP_LABELS,
    crafted_packets,
    mutated_queries,
    pointer,
    valid_queries,
)
from tests.support.dns_wire import raw_header, raw_name, raw_opt, raw_option, raw_question, raw_rr
from tests.support.dns_zones import DOMAIN_ZONE, IP_ZONE, UDP_PAYLOAD, make_responder

ZONES = (dns.name.from_text(IP_ZONE), dns.name.from_text(DOMAIN_ZONE))
META_OR_XFR = set(range(128, 255)) | {0}
FUZZ = settings(
    max_examples=1500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture(scope="module")
def responder() -> Responder:
    """The two-zone setup of tests/support/dns_zones.py: IPv4, IPv6 and domain listings."""
    return make_responder()


# -- the oracle ---------------------------------------------------------------------------


def examine(responder: Responder, data: bytes, udp: bool) -> dns.message.Message | None:
    """Run one packet through both paths and check everything the reply must satisfy."""
    say(f"packet {data!r} udp={udp}")
    fast = responder.fast(data, udp)  # it may decline, but must not raise
    reply = responder.respond(data, udp)
    if len(data) < 12 or data[2] & 0x80:
        assert reply is None, "a runt or a response must get no reply"
        assert fast is None
        return None
    assert reply is not None, "every packet with a query header gets a reply"
    say(f"reply {reply!r}")
    message = parse_reply(reply)
    assert reply[0:2] == data[0:2], "id echoed"
    assert reply[2] & 0x80, "QR set"
    assert (reply[2] >> 3) & 0xF == (data[2] >> 3) & 0xF, "opcode echoed"
    assert not reply[3] & 0x80, "RA never set"
    query = parse_query(data)
    if udp:
        assert len(reply) <= udp_limit(query, message), (len(reply), udp_limit(query, message))
    if query is not None:
        if message.edns >= 0:
            assert query.edns >= 0, "an OPT in the reply only if the query had one"
        expected = expected_rcodes(query, data)
        assert message.rcode() in expected, (dns.rcode.to_text(message.rcode()), expected)
    if fast is not None:
        assert fast == reply, "respond() returns the fast path's answer when there is one"
        slow = slowpath.respond(responder, data, udp)
        assert slow is not None
        slow_message = parse_reply(slow)
        if slow_message.rcode() == dns.rcode.FORMERR:
            # Only where dnslib cannot read the packet (labels that are not UTF-8).
            assert not dnslib_parses(data)
        else:
            assert_same(message, slow_message)
    return message


def say(text: str) -> None:
    """A hypothesis note when under @given; the plain tests report through pytest."""
    if currently_in_test_context():
        note(text)


def parse_reply(reply: bytes) -> dns.message.Message:
    """dnspython's view of a reply; UPDATE replies are read as QUERY.

    dnspython reads an UPDATE's question as the zone section and rejects one
    whose type is not SOA, though echoing the question is what RFC 2136 asks
    of a server that does not do updates; the structure is the same.
    """
    if (reply[2] >> 3) & 0xF == dns.opcode.UPDATE:
        reply = reply[0:2] + bytes((reply[2] & 0x87,)) + reply[3:]
    return dns.message.from_wire(reply, keyring=False)


def parse_query(data: bytes) -> dns.message.Message | None:
    """dnspython's view of the query (TSIG unchecked), or None where it calls it malformed."""
    try:
        return dns.message.from_wire(data, keyring=False)
    except Exception:  # dnspython raises FormError, BadEDNS, NameTooLong, TrailingJunk, ...
        return None


def dnslib_parses(data: bytes) -> bool:
    try:
        dnslib.DNSRecord.parse(data)
    except Exception:
        return False
    return True


def udp_limit(query: dns.message.Message | None, reply: dns.message.Message) -> int:
    """512 without EDNS, else what the client advertised, capped by our own payload."""
    if reply.edns < 0:
        return 512
    if query is None or query.edns < 0:
        return UDP_PAYLOAD
    return max(512, min(query.payload, UDP_PAYLOAD))


def expected_rcodes(query: dns.message.Message, data: bytes) -> set[int]:
    """The rcodes a query dnspython reads as well-formed may get, in the order checked."""
    counts = [int.from_bytes(data[i : i + 2], "big") for i in (4, 6, 8, 10)]
    formerr = {dns.rcode.FORMERR} if not dnslib_parses(data) else set()
    if counts[0] > 1 or sum(counts[1:]) > slowpath.MAX_QUERY_RECORDS:
        return {dns.rcode.FORMERR}
    if query.edns > 0:
        return {dns.rcode.BADVERS} | formerr
    if query.opcode() != dns.opcode.QUERY:
        return {dns.rcode.NOTIMP} | formerr
    if len(query.question) != 1:
        return {dns.rcode.FORMERR}
    question = query.question[0]
    if question.rdclass not in (1, 255):
        return {dns.rcode.REFUSED} | formerr
    if not any(question.name.is_subdomain(zone) for zone in ZONES):
        return {dns.rcode.REFUSED} | formerr
    if question.rdtype in (251, 252):
        return {dns.rcode.REFUSED} | formerr
    if question.rdtype in META_OR_XFR:
        return {dns.rcode.NOTIMP} | formerr
    return {dns.rcode.NOERROR, dns.rcode.NXDOMAIN} | formerr


def assert_same(fast: dns.message.Message, slow: dns.message.Message) -> None:
    """The fast path's message equals the dnslib path's, but for the SOA owner's case.

    (The fast path points that owner into the question, so it takes the
    query's case; test_responder.py explains.)
    """
    assert fast.id == slow.id
    assert fast.flags == slow.flags
    assert fast.rcode() == slow.rcode()
    assert (fast.edns, fast.ednsflags, fast.payload) == (slow.edns, slow.ednsflags, slow.payload)
    assert [r.to_text() for r in fast.question] == [r.to_text() for r in slow.question]
    assert [r.to_text() for r in fast.answer] == [r.to_text() for r in slow.answer]
    assert [r.to_text().lower() for r in fast.authority] == [
        r.to_text().lower() for r in slow.authority
    ]


# -- properties ---------------------------------------------------------------------------


@FUZZ
@given(data=st.binary(max_size=600), udp=st.booleans())
def test_arbitrary_bytes(responder: Responder, data: bytes, udp: bool) -> None:
    examine(responder, data, udp)


@FUZZ
@given(data=st.binary(min_size=12, max_size=80).map(lambda b: b[:2] + b"\x01\x00" + b[4:]))
def test_arbitrary_bytes_behind_a_query_header(responder: Responder, data: bytes) -> None:
    """Random bodies with QR clear and opcode QUERY, so they reach the parsers."""
    for udp in (True, False):
        examine(responder, data, udp)


@FUZZ
@given(data=mutated_queries(), udp=st.booleans())
def test_mutated_queries(responder: Responder, data: bytes, udp: bool) -> None:
    examine(responder, data, udp)


@FUZZ
@given(data=crafted_packets(), udp=st.booleans())
def test_crafted_packets(responder: Responder, data: bytes, udp: bool) -> None:
    examine(responder, data, udp)


@settings(max_examples=300, deadline=None)
@given(data=valid_queries(), udp=st.booleans())
def test_valid_queries_are_answered_not_refused_as_malformed(data: bytes, udp: bool) -> None:
    """Control: the oracle accepts what dnspython builds, and such queries get real answers."""
    message = examine(make_responder(), data, udp)
    assert message is not None
    assert message.rcode() != dns.rcode.FORMERR


# -- explicit cases -----------------------------------------------------------------------

SEEDS = [
    wire(rev("192.0.2.1"), "A"),
    wire(rev("2001:db8::5"), "TXT", edns=0, do=True),
    wire(dom("a.spam.example"), "ANY", edns=0),
    wire(IP_ZONE, "SOA"),
    wire("example.org", "A", edns=0),
]


@pytest.mark.parametrize("seed", SEEDS, ids=range(len(SEEDS)))
@pytest.mark.parametrize("udp", [True, False])
def test_truncation_at_every_length(responder: Responder, seed: bytes, udp: bool) -> None:
    answered = 0
    for length in range(len(seed) + 1):
        answered += examine(responder, seed[:length], udp) is not None
    assert answered == len(seed) + 1 - 12  # every cut from the full header on gets a reply


@pytest.mark.parametrize(
    "name",
    [
        pointer(12),  # itself
        b"\x01a" + pointer(12),  # a label, then back to it: a loop
        b"\x01a" + pointer(14),  # to itself after a label
        b"\x01a" + pointer(16),  # forward, past the question
        pointer(0x3FFF),  # far past the end
        b"\x40abc\x00",  # extended label type
        b"\x80abc\x00",  # reserved label type
        b"\x41" + b"a" * 65 + b"\x00",  # a 65-octet label
    ],
)
@pytest.mark.parametrize("udp", [True, False])
def test_bad_names_are_formerr(responder: Responder, name: bytes, udp: bool) -> None:
    data = raw_header(0xBEEF) + raw_question(name) + raw_opt()
    message = examine(responder, data, udp)
    assert message is not None
    assert message.rcode() == dns.rcode.FORMERR
    assert message.question == []


@pytest.mark.parametrize(
    ("extra", "counts", "rcode"),
    [
        (raw_opt() + raw_opt(), (0, 0, 2), dns.rcode.FORMERR),  # two OPTs
        (raw_opt(version=1), (0, 0, 1), dns.rcode.BADVERS),
        (raw_opt(owner=b"\x01a\x00"), (0, 0, 1), dns.rcode.FORMERR),  # OPT owner not the root
        (raw_opt(options=raw_option(10, b"12345678")), (0, 0, 1), dns.rcode.NOERROR),  # cookie
        (raw_opt(options=b"\x00\x0a\x00\x08\x01"), (0, 0, 1), dns.rcode.NOERROR),  # cut short
    ],
)
def test_bogus_edns(
    responder: Responder, extra: bytes, counts: tuple[int, int, int], rcode: int
) -> None:
    question = raw_question(raw_name([b"2", b"0", b"0", b"127", *IP_LABELS]))
    data = raw_header(0x0BAD, 0x0100, 1, *counts) + question + extra
    for udp in (True, False):
        reply = responder.respond(data, udp)
        assert reply is not None
        assert parse_reply(reply).rcode() == rcode


@pytest.mark.parametrize("section", [0, 1])
def test_opt_in_the_wrong_section_is_not_echoed(responder: Responder, section: int) -> None:
    question = raw_question(raw_name([b"2", b"0", b"0", b"127", *IP_LABELS]))
    counts = (1, 0, 0) if section == 0 else (0, 1, 0)
    data = raw_header(0x0BAD, 0x0100, 1, *counts) + question + raw_opt()
    for udp in (True, False):
        message = examine(responder, data, udp)
        assert message is not None
        assert message.edns == -1
        assert message.rcode() == dns.rcode.NOERROR


def many_questions(count: int) -> bytes:
    """``count`` questions, each with its own 24-octet first label, so none compresses away."""
    return raw_header(0x7777, 0x0100, count) + b"".join(
        raw_question(raw_name([b"%024d" % i, b"2", b"0", b"0", b"127", *IP_LABELS]))
        for i in range(count)
    )


@pytest.mark.parametrize("count", [0, 2, 3, 40])
def test_many_questions_are_formerr_within_the_udp_limit(responder: Responder, count: int) -> None:
    reply = responder.respond(many_questions(count), True)
    assert reply is not None
    assert len(reply) <= 512  # 40 questions echoed back would be over 1,000 bytes
    message = parse_reply(reply)
    assert message.rcode() == dns.rcode.FORMERR
    assert message.id == 0x7777


def respond_counting_memory(responder: Responder, data: bytes) -> tuple[bytes | None, int]:
    """The reply over TCP, and the peak of memory allocated while it was made."""
    tracemalloc.start()
    try:
        reply = responder.respond(data, False)
        return reply, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def pointer_chain_bomb() -> bytes:
    """10,000 questions, each a pointer to the end of a 900-link pointer chain (64 KiB).

    Each link is a question ``a`` + pointer to the previous link; dnslib
    expands every name in full, with no 255-octet or hop limit.
    """
    body = bytearray(raw_question(b"\x00"))  # link 0: the root, at offset 12
    links = [12]
    for _ in range(900):
        links.append(12 + len(body))
        body += raw_question(b"\x01a" + pointer(links[-2]))
    count = len(links)
    while 12 + len(body) + 6 <= 65535:
        body += raw_question(pointer(links[-1]))
        count += 1
    return raw_header(0x0B0B, 0x0100, count) + bytes(body)


def test_pointer_chain_bomb_costs_no_memory(responder: Responder) -> None:
    """Regression: this one packet cost 26 s of CPU and 500 MiB before slowpath's guard.

    Measured as allocated memory, not time: without the guard dnslib builds
    millions of label objects (hundreds of MiB); with it the packet is never parsed.
    """
    data = pointer_chain_bomb()
    assert len(data) > 60_000
    reply, peak = respond_counting_memory(responder, data)
    assert reply == b"\x0b\x0b\x81\x01" + b"\x00" * 8  # a bare FORMERR
    assert peak < 1 << 20, peak


def test_a_few_records_are_still_parsed(responder: Responder) -> None:
    """Control for the guard: a query with an OPT and another additional record.

    (A malformed TSIG record there is FORMERR: tests/dnsserver/test_signed_queries.py.)
    """
    question = raw_question(raw_name([b"2", b"0", b"0", b"127", *IP_LABELS]))
    extra = raw_rr(raw_name([b"key"]), 16, 1, 0, b"\x04junk")
    data = raw_header(0x0C0C, 0x0100, 1, 0, 0, 2) + question + raw_opt() + extra
    message = examine(responder, data, False)
    assert message is not None
    assert message.rcode() == dns.rcode.NOERROR
    assert message.edns == 0


@pytest.mark.parametrize("edns", [False, True])
def test_qname_over_255_octets(responder: Responder, edns: bool) -> None:
    name = raw_name([b"x" * 63] * 8 + IP_LABELS)  # 526 octets, in the zone
    data = raw_header(ar=int(edns)) + raw_question(name) + (raw_opt(512) if edns else b"")
    with pytest.raises(dns.exception.FormError):
        dns.message.from_wire(data)  # dnspython: NameTooLong
    reply = responder.respond(data, True)
    assert reply is not None
    assert len(reply) <= 512
    assert parse_reply(reply).rcode() == dns.rcode.FORMERR


def records_through_a_pointer_chain(links: int = 900, records: int = 7) -> bytes:
    """A listed-IP question, then a NULL record whose data is a chain of ``links`` backward
    pointers, then CNAME records whose data points at the chain's far end."""
    question = raw_question(raw_name([b"2", b"0", b"0", b"127", *IP_LABELS]))
    chain_start = 12 + len(question) + 1 + 10  # root owner + type/class/ttl/rdlength
    chain = bytearray(b"\x01a\x00")
    previous = chain_start
    for _ in range(links - 1):
        here = chain_start + len(chain)
        chain += b"\x01a" + (0xC000 | previous).to_bytes(2, "big")
        previous = here
    data = raw_header(0x0D0D, 0x0100, 1, records, 0, 0) + question
    data += raw_rr(b"\x00", 10, 1, 0, bytes(chain))
    for _ in range(records - 1):
        data += raw_rr(b"\x00", 5, 1, 0, (0xC000 | previous).to_bytes(2, "big"))
    return data


def test_record_data_through_a_pointer_chain_is_never_expanded(
    responder: Responder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regression: seven records whose names ran through a 900-link chain cost dnslib 19 ms
    of CPU per packet (about 50 such packets a second filled a core). A query's records
    other than OPT mean nothing here, so dnslib now sees only the question."""
    data = records_through_a_pointer_chain()
    seen: list[bytes] = []
    parse = dnslib.DNSRecord.parse

    def spy(packet: bytes) -> object:
        seen.append(bytes(packet))
        return parse(packet)

    monkeypatch.setattr(dnslib.DNSRecord, "parse", staticmethod(spy))
    reply, peak = respond_counting_memory(responder, data)
    assert reply is not None
    assert parse_reply(reply).rcode() == dns.rcode.NOERROR  # the question still gets its answer
    question = raw_question(raw_name([b"2", b"0", b"0", b"127", *IP_LABELS]))
    assert seen == [data[0:4] + b"\x00\x01" + b"\x00" * 6 + question]  # the question alone
    assert peak < 1 << 20, peak


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        (b"\xc0\x0c", "a pointer to itself"),
        (b"\xc0\x40", "a forward pointer"),
        (b"\x01a" * 128 + b"\x00", "a name over 255 octets"),
        (b"\x41a\x00", "an extended label type"),
    ],
)
def test_insane_question_names_are_formerr_unparsed(
    responder: Responder, name: bytes, problem: str
) -> None:
    data = raw_header(0x0E0E) + raw_question(name) + b"\x00" * 64
    reply = responder.respond(data, True)
    assert reply is not None, problem
    assert parse_reply(reply).rcode() == dns.rcode.FORMERR, problem
