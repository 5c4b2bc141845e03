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
from tests.support.dns_client import dom, make_query, rev, wire
from tests.support.dns_wire import raw_header, raw_name, raw_opt, raw_option, raw_question, raw_rr
from tests.support.dns_zones import DOMAIN_ZONE, IP_ZONE, UDP_PAYLOAD, make_responder

ZONES = (dns.name.from_text(IP_ZONE), dns.name.from_text(DOMAIN_ZONE))
IP_LABELS = [b"bl", b"example", b"org"]
DOMAIN_LABELS = [b"dbl", b"example", b"org"]
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


# -- generators ---------------------------------------------------------------------------

NAMES = [
    rev("192.0.2.1"),  # listed, two codes
    rev("192.0.2.2"),
    rev("198.51.100.7"),  # excluded inside a listed /24
    rev("2001:db8::5"),
    rev("2001:db8:1:2::9"),
    rev("127.0.0.2"),
    dom("example.com"),
    dom("a.spam.example"),
    dom("ok.spam.example"),
    dns.name.from_text(IP_ZONE),
    dns.name.from_text(DOMAIN_ZONE),
    dns.name.from_text("example.org"),
    dns.name.root,
]
RDTYPES = [1, 16, 255, 28, 6, 2, 15, 0, 41, 250, 251, 252, 128, 254, 65535]


@st.composite
def valid_queries(draw: st.DrawFn) -> bytes:
    """Queries dnspython builds: the seeds the mutations start from."""
    edns = draw(st.sampled_from([None, 0, 0, 1, 255]))
    return make_query(
        draw(st.sampled_from(NAMES)),
        draw(st.sampled_from([1, 16, 255, 28, 6, 2, 15])),
        edns=edns,
        do=draw(st.booleans()) if edns is not None else False,
        payload=draw(st.sampled_from([0, 511, 512, 1232, 4096, 65535])),
        rd=draw(st.booleans()),
        qid=draw(st.integers(0, 0xFFFF)),
    ).to_wire()


SPECIAL_BYTES = [0x00, 0x01, 0x3F, 0x40, 0x41, 0x7F, 0x80, 0xBF, 0xC0, 0xC1, 0xFF, 41]
SPECIAL_COUNTS = [0, 1, 2, 3, 8, 9, 0x7FFF, 0xFFFF]


@st.composite
def mutated_queries(draw: st.DrawFn) -> bytes:
    """A valid query with 1-6 mutations: flips, bytes set, inserted, deleted, counts, flags."""
    data = bytearray(draw(valid_queries()))
    for _ in range(draw(st.integers(1, 6))):
        kind = draw(
            st.sampled_from(
                ["flip", "set", "insert", "delete", "truncate", "count", "flags", "tail", "append"]
            )
        )
        position = draw(st.integers(0, max(0, len(data) - 1)))
        if kind == "flip" and data:
            data[position] ^= 1 << draw(st.integers(0, 7))
        elif kind == "set" and data:
            data[position] = draw(st.sampled_from(SPECIAL_BYTES) | st.integers(0, 255))
        elif kind == "insert":
            data[position:position] = draw(st.binary(min_size=1, max_size=8))
        elif kind == "delete":
            del data[position : position + draw(st.integers(1, 8))]
        elif kind == "truncate":
            del data[position:]
        elif kind == "count" and len(data) >= 12:
            at = 4 + 2 * draw(st.integers(0, 3))
            count = draw(st.sampled_from(SPECIAL_COUNTS) | st.integers(0, 0xFFFF))
            data[at : at + 2] = count.to_bytes(2, "big")
        elif kind == "flags" and len(data) >= 4:
            data[2:4] = draw(st.integers(0, 0xFFFF)).to_bytes(2, "big")
        elif kind == "tail" and len(data) >= 16:  # QTYPE/QCLASS, or wherever the tail is
            data[-4:] = draw(st.binary(min_size=4, max_size=4))
        else:
            data += draw(st.binary(max_size=40))
    return bytes(data)


def pointer(offset: int) -> bytes:
    return bytes((0xC0 | (offset >> 8) & 0x3F, offset & 0xFF))


NAME_KINDS = ("plain", "long-label", "long-name", "self", "loop", "forward", "header", "ext",
              "binary", "cut", "root")  # fmt: skip


@st.composite
def odd_names(draw: st.DrawFn) -> bytes:
    """Question names from the edges of RFC 1035 4.1.4 and beyond."""
    zone = draw(st.sampled_from([IP_LABELS, DOMAIN_LABELS, [b"example", b"net"], []]))
    kind = draw(st.sampled_from(NAME_KINDS))
    if kind == "plain":
        return raw_name([b"2", b"0", b"0", b"127", *zone])
    if kind == "long-label":  # length byte 64..255 (0x40 and 0x80 are reserved label types)
        size = draw(st.integers(64, 255))
        return bytes((size,)) + b"a" * draw(st.integers(0, size)) + raw_name(zone)
    if kind == "long-name":  # over 255 octets in 63-octet labels
        count = draw(st.integers(4, 12))
        return raw_name([b"x" * 63] * count + zone)
    if kind == "self":  # a pointer to the question's own start
        return pointer(12)
    if kind == "loop":  # a label, then a pointer back to it
        return b"\x01a" + pointer(12)
    if kind == "forward":  # pointing past itself
        return raw_name([b"a"], end=pointer(draw(st.integers(14, 0x3FFF))))
    if kind == "header":  # pointing into the header
        return pointer(draw(st.integers(0, 11)))
    if kind == "ext":  # extended label types 0x40 and 0x80
        return bytes((draw(st.sampled_from([0x40, 0x41, 0x80, 0xBF])),)) + b"abc" + raw_name(zone)
    if kind == "binary":  # legal per RFC 2181, not UTF-8 for dnslib
        return raw_name([draw(st.binary(min_size=1, max_size=8)), *zone])
    if kind == "cut":
        return raw_name([b"1", b"2", *zone])[: draw(st.integers(0, 6))]
    return b"\x00"


@st.composite
def odd_opts(draw: st.DrawFn) -> bytes:
    """OPT records: other versions, options (some malformed), DO, tiny payloads, bad owners."""
    options = b"".join(
        raw_option(draw(st.sampled_from([3, 8, 10, 12, 15, 0xFFFF])), draw(st.binary(max_size=12)))
        for _ in range(draw(st.integers(0, 3)))
    )
    if draw(st.booleans()):
        options += draw(st.binary(max_size=6))  # an option cut short, or junk
    return raw_opt(
        draw(st.sampled_from([0, 1, 511, 512, 1232, 4096, 65535])),
        version=draw(st.sampled_from([0, 0, 0, 1, 255])),
        do=draw(st.booleans()),
        ext_rcode=draw(st.sampled_from([0, 0, 1, 255])),
        options=options if draw(st.booleans()) else b"",
        owner=draw(st.sampled_from([b"\x00", b"\x00", b"\x01a\x00", pointer(12)])),
    )


@st.composite
def crafted_packets(draw: st.DrawFn) -> bytes:
    """Packets built from raw parts: odd names, many questions, OPTs anywhere, wrong counts."""
    questions = [
        raw_question(
            draw(odd_names()),
            draw(st.sampled_from(RDTYPES) | st.integers(0, 0xFFFF)),
            draw(st.sampled_from([1, 1, 1, 3, 4, 254, 255, 0]) | st.integers(0, 0xFFFF)),
        )
        for _ in range(draw(st.sampled_from([0, 1, 1, 1, 2, 3, 40])))
    ]
    sections: list[list[bytes]] = [[], [], []]
    for _ in range(draw(st.integers(0, 4))):
        record = draw(st.sampled_from(["opt", "opt", "a", "tsig"]))
        if record == "opt":
            rr = draw(odd_opts())
        elif record == "a":
            rr = raw_rr(pointer(12), 1, 1, 300, draw(st.binary(min_size=0, max_size=6)))
        else:
            rr = raw_rr(raw_name([b"key"]), 250, 255, 0, draw(st.binary(max_size=30)))
        sections[draw(st.sampled_from([0, 1, 2, 2, 2]))].append(rr)
    counts = [len(questions)] + [len(section) for section in sections]
    if draw(st.integers(0, 4)) == 0:  # counts that lie
        counts[draw(st.integers(0, 3))] = draw(st.sampled_from(SPECIAL_COUNTS))
    opcode = draw(st.sampled_from([0, 0, 0, 1, 2, 4, 5, 6, 15]))
    flags = draw(st.integers(0, 0xFFFF)) & 0x87FF | opcode << 11
    if draw(st.integers(0, 3)):
        flags &= 0x7FFF  # QR mostly clear, so most packets reach the parsers
    return (
        raw_header(draw(st.integers(0, 0xFFFF)), flags, *counts)
        + b"".join(questions)
        + b"".join(b"".join(section) for section in sections)
    )


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
