"""The compiled hot path against the Python one: same bytes, or it declines.

The Python ``Responder.respond`` is the oracle. Every packet the hypothesis
strategies of tests/support/dns_packets.py make (valid, mutated, crafted from raw parts,
random bytes) goes to both; where the C answers, the bytes must be the
Python's. The zones hold an IPv4 level big enough for the /16 directory,
networks, exclusions, an overlay with tombstones, values with their own TXT,
a TXT over 512 bytes and many A records. Live changes to the index must show
on the next query, and the counts must be the ones the Python path keeps.
"""

from __future__ import annotations

import ipaddress
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rbl.dnsserver.responder import Responder
from rbl.index.tables import Value
from rbl.model.keys import ZoneKind, parse_key
from tests.support.dns_client import make_query, rev, wire
from tests.support.dns_packets import crafted_packets, mutated_queries, valid_queries
from tests.support.dns_wire import raw_header, raw_name, raw_opt, raw_option, raw_question
from tests.support.dns_zones import IP_ZONE, make_responder

pytest.importorskip("rbl.dnsserver._hotpath")
from rbl.dnsserver.hotpath import HotPath, txt_parts

FUZZ = settings(
    max_examples=1500,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
RANDOM = random.Random(15)
# Enough /32s for the level's /16 directory (tables._DIRECTORY_AT), in 10.0.0.0/8.
BULK = sorted({RANDOM.randrange(0x0A000000, 0x0B000000) for _ in range(6000)})
NOT_LISTED = [0x0A000000 + i for i in range(0, 0x1000000, 0xB03) if 0x0A000000 + i not in BULK]


def text(value: int) -> str:
    return str(ipaddress.IPv4Address(value))


def build() -> tuple[Responder, HotPath]:
    responder = make_responder()
    zone = responder.zones[0]
    index = zone.index
    spam = Value(("127.0.0.2",))
    for value in BULK:
        index.set(parse_key(ZoneKind.IP, text(value)), spam, bulk=True)
    index.finish_load()
    index.set(parse_key(ZoneKind.IP, text(BULK[0])), None)  # an exclusion in the overlay
    index.delete(parse_key(ZoneKind.IP, text(BULK[1])))  # a tombstone
    index.set(parse_key(ZoneKind.IP, "10.1.0.0/16"), Value(("127.0.0.9",), "net16 {key}"))
    index.set(parse_key(ZoneKind.IP, "100.64.0.0/10"), Value((), "no codes {key}"))
    index.set(parse_key(ZoneKind.IP, "100.64.1.1"), Value(("127.0.0.3",), "{key:>20}"))
    index.set(parse_key(ZoneKind.IP, "100.64.2.2"), Value(("127.0.0.3",), "X" * 4000 + "{key}"))
    return responder, HotPath(responder)


@pytest.fixture(scope="module")
def paths() -> tuple[Responder, HotPath]:
    return build()


def same(paths: tuple[Responder, HotPath], data: bytes) -> bytes | None:
    """The C answer, asserted to be the Python's; None where the C declined."""
    responder, hot = paths
    answer = hot.answer(data)
    if answer is not None:
        assert answer == responder.respond(data, True), data
    return answer


def ip_names() -> st.SearchStrategy[bytes]:
    """Queries for addresses in and around the listings, in every case and EDNS variant."""
    addresses = st.sampled_from(BULK[:50] + NOT_LISTED[:50]) | st.sampled_from(
        [0x7F000002, 0x7F000001, 0xC0000201, 0xC6336407, 0xC6336401, 0xCB00710A, 0xCB007109,
         0x0A010203, 0x64400101, 0x64400202]
    )  # fmt: skip
    return st.builds(
        lambda value, rdtype, edns, do, payload, upper, qid: _upper(
            make_query(
                rev(text(value)), rdtype, edns=edns, do=do, payload=payload, qid=qid
            ).to_wire(),
            upper,
        ),
        addresses,
        st.sampled_from([1, 16, 255, 6, 2, 28, 15]),
        st.sampled_from([None, 0, 0, 1]),
        st.booleans(),
        st.sampled_from([0, 511, 512, 600, 1232, 4096, 65535]),
        st.booleans(),
        st.integers(0, 0xFFFF),
    )


def _upper(data: bytes, upper: bool) -> bytes:
    return data[:12] + data[12:].upper() if upper else data


@FUZZ
@given(data=ip_names())
def test_ipv4_queries(paths: tuple[Responder, HotPath], data: bytes) -> None:
    same(paths, data)


@FUZZ
@given(data=valid_queries())
def test_valid_queries(paths: tuple[Responder, HotPath], data: bytes) -> None:
    same(paths, data)


@FUZZ
@given(data=mutated_queries())
def test_mutated_queries(paths: tuple[Responder, HotPath], data: bytes) -> None:
    same(paths, data)


@FUZZ
@given(data=crafted_packets())
def test_crafted_packets(paths: tuple[Responder, HotPath], data: bytes) -> None:
    same(paths, data)


@FUZZ
@given(data=st.binary(max_size=300))
def test_random_bytes(paths: tuple[Responder, HotPath], data: bytes) -> None:
    same(paths, data)


@FUZZ
@given(data=ip_names(), cut=st.integers(0, 80), junk=st.binary(max_size=12))
def test_cut_and_padded_queries(
    paths: tuple[Responder, HotPath], data: bytes, cut: int, junk: bytes
) -> None:
    same(paths, data[: max(0, len(data) - cut)])
    same(paths, data + junk)


COMMON = [
    (rev("10.1.2.3"), "A", None),  # the /16 network
    (rev(text(BULK[5])), "TXT", 0),
    (rev(text(BULK[6])), "ANY", 0),
    (rev(text(NOT_LISTED[3])), "A", None),  # NXDOMAIN
    (rev("192.0.2.1"), "A", 0),
    (rev("203.0.113.9"), "TXT", None),  # over 512 bytes: TC
    (rev("203.0.113.9"), "TXT", 0),  # fits 1232: chunked at 255
    (rev("203.0.113.10"), "A", None),  # many A records: TC
    (rev("100.64.9.9"), "A", 0),  # listed without codes: NODATA
    (rev("198.51.100.7"), "A", None),  # excluded inside a listed network
    (rev("198.51.100.8"), "MX", None),  # listed, another type: NODATA
    (IP_ZONE, "SOA", None),
    (IP_ZONE, "NS", 0),
    (IP_ZONE, "ANY", 0),
    (IP_ZONE, "A", None),
    ("dbl.example.org", "SOA", 0),
    ("example.net", "A", None),  # REFUSED
    ("a.example.net", "TXT", 0),
]


@pytest.mark.parametrize(("name", "rdtype", "edns"), COMMON)
def test_common_shapes_are_answered_in_c(
    paths: tuple[Responder, HotPath], name: object, rdtype: str, edns: int | None
) -> None:
    for do in (False, True) if edns is not None else (False,):
        data = wire(name, rdtype, edns=edns, do=do)  # type: ignore[arg-type]
        assert same(paths, data) is not None, "declined"
        assert same(paths, data[:12] + data[12:].upper()) is not None


@pytest.mark.parametrize(
    "data",
    [
        wire(rev("2001:db8::5"), "TXT", edns=0),  # IPv6 names: Python
        wire("a.spam.dbl.example.org", "A"),  # domain zones: Python
        wire(rev("1.2.3.4"), "A"),  # four one-character labels: maybe an IPv6 /16
        wire(rev("100.64.1.1"), "TXT"),  # a template with a format spec
        wire(rev("100.64.2.2"), "TXT", edns=0, payload=4096),  # a TXT too long for the engine
        raw_header() + raw_question(raw_name([b"2", b"0", b"0", b"127", b"bl", b"example"])
        + b"\xc0\x0c"),  # compressed
        raw_header(ar=1) + raw_question(raw_name([b"9", b"2", b"0", b"127", b"bl", b"example",
        b"org"])) + raw_opt(version=1),  # BADVERS
    ],
)  # fmt: skip
def test_declined(paths: tuple[Responder, HotPath], data: bytes) -> None:
    responder, hot = paths
    assert hot.answer(data) is None
    assert responder.respond(data, True) is not None


def test_edns_options_are_answered_as_python_does(paths: tuple[Responder, HotPath]) -> None:
    name = raw_name([b"9", b"2", b"0", b"127", b"bl", b"example", b"org"])
    data = raw_header(ar=1) + raw_question(name) + raw_opt(options=raw_option(10, b"12345678"))
    assert same(paths, data) is not None


def test_txt_template_split() -> None:
    responder = make_responder()
    zone = responder.zones[0]
    assert txt_parts(zone, None) == (b"", b" listed: https://example.org/q?", b"")
    assert txt_parts(zone, Value(("127.0.0.2",), "net {key}")) == (b"net ", b"")
    assert txt_parts(zone, Value(("127.0.0.2",), "{key!r}")) is None
    assert txt_parts(zone, Value(("127.0.0.2",), "{nope}")) is None


# -- the live index -------------------------------------------------------------------------


def test_live_changes_show_on_the_next_query() -> None:
    responder, hot = build()
    index = responder.zones[0].index
    address = NOT_LISTED[10]
    query = wire(rev(text(address)), "A")
    nxdomain = hot.answer(query)
    assert nxdomain is not None and nxdomain[3] & 0xF == 3
    index.set(parse_key(ZoneKind.IP, text(address)), Value(("127.0.0.7",)))  # overlay
    listed = hot.answer(query)
    assert listed is not None and listed[3] & 0xF == 0 and listed.endswith(bytes([127, 0, 0, 7]))
    index.v4.level(32).merge()  # into the arrays, in place
    assert hot.answer(query) == listed
    index.set(parse_key(ZoneKind.IP, text(address)), None)  # excluded
    assert hot.answer(query) == nxdomain
    index.delete(parse_key(ZoneKind.IP, text(address)))
    index.set(parse_key(ZoneKind.IP, text(address & 0xFFFFFF00) + "/24"), Value(("127.0.0.7",)))
    assert hot.answer(query) == listed  # the network now, after the /32's tombstone
    for value in NOT_LISTED[20:5020]:  # a merge that copies into new arrays
        index.set(parse_key(ZoneKind.IP, text(value)), Value(("127.0.0.8",)))
    last = wire(rev(text(NOT_LISTED[5019])), "A")
    assert (hot.answer(last) or b"").endswith(bytes([127, 0, 0, 8]))
    assert hot.answer(last) == responder.respond(last, True)
    index.delete(parse_key(ZoneKind.IP, text(address & 0xFFFFFF00) + "/24"))
    assert hot.answer(query) == nxdomain


def test_follower_can_resize_the_arrays_between_queries() -> None:
    """The engine exports the arrays only while it answers: inserting in place still works."""
    responder, hot = build()
    index = responder.zones[0].index
    level = index.v4.level(32)
    assert hot.answer(wire(rev(text(BULK[9])), "A")) is not None
    index.set(parse_key(ZoneKind.IP, "11.0.0.1"), Value(("127.0.0.2",)))
    level.merge()  # _insert_in_place: array.insert would raise BufferError if still exported
    assert 0x0B000001 in level.keys


def test_new_value_ids_and_serials_rebuild_the_plan() -> None:
    responder, hot = build()
    zone = responder.zones[0]
    query = wire(rev("10.200.0.1"), "TXT")
    zone.index.set(parse_key(ZoneKind.IP, "10.200.0.1"), Value(("127.0.0.6",), "brand new {key}"))
    answer = hot.answer(query)
    assert answer is not None and b"brand new 10.200.0.1" in answer
    negative = wire(rev(text(NOT_LISTED[1])), "A")
    before = hot.answer(negative)
    zone.set_serial(zone.serial + 7)
    after = hot.answer(negative)
    assert before != after and after == responder.respond(negative, True)


# -- counts ----------------------------------------------------------------------------------


def test_counts_are_those_of_the_python_path() -> None:
    queries = [wire(name, rdtype, edns=edns) for name, rdtype, edns in COMMON]
    queries.append(wire(rev("2001:db8::5"), "A"))  # declined: counted by Python only
    c_side, hot = build()
    python_side, _ = build()
    for data in queries:
        assert (hot.answer(data) or c_side.respond(data, True)) == python_side.respond(data, True)
    assert c_side.query_counts() == python_side.query_counts()
    assert c_side.query_counts()[("", "REFUSED")] == 2
