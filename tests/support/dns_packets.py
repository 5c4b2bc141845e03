"""Hypothesis strategies for DNS packets a hostile client sends: valid queries dnspython
builds, their mutations, and packets crafted from raw parts (odd names, pointers, OPTs
anywhere, counts that lie). The in-process fuzz tests of the Python paths
(tests/dnsserver/test_fuzz.py) and of the compiled hot path (test_hotpath.py) draw from
them; the zones are tests/support/dns_zones.py's."""

from __future__ import annotations

import dns.name
from hypothesis import strategies as st

from tests.support.dns_client import dom, make_query, rev
from tests.support.dns_wire import raw_header, raw_name, raw_opt, raw_option, raw_question, raw_rr
from tests.support.dns_zones import DOMAIN_ZONE, IP_ZONE

IP_LABELS = [b"bl", b"example", b"org"]
DOMAIN_LABELS = [b"dbl", b"example", b"org"]

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
