"""The walk of a zone view: entries in address order with their immediate children,
pieces around them, the plain-list block count; the snapshot loading helpers."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from rbl.index.tables import EXCLUDED, Value
from rbl.model.keys import DomainKey, ZoneKind, parse_ip_key
from rbl.zonedata.snapshot import domain_key, exclusion_keys, is_test_point
from rbl.zonedata.view import LevelView, ZoneView, ip_entries, nested_levels
from tests.support.dump_seed import IP_ZONE, make_settings

BASE = int(ipaddress.IPv4Address("10.0.0.0"))
Net = tuple[int, int]

networks = st.dictionaries(
    st.tuples(st.integers(0, 255), st.integers(24, 32)).map(
        lambda np: ((BASE + np[0]) & ~((1 << (32 - np[1])) - 1), np[1])
    ),
    st.integers(0, 3),  # 0: an exclusion
    max_size=24,
)


def levels_of(entries: dict[Net, int]) -> list[LevelView]:
    by_len: dict[int, list[tuple[int, int]]] = {}
    for (network, prefixlen), vid in sorted(entries.items()):
        by_len.setdefault(prefixlen, []).append((network, vid))
    return [
        (p, [n for n, _v in rows], [v for _n, v in rows])
        for p, rows in sorted(by_len.items(), reverse=True)
    ]


def addresses(network: int, prefixlen: int) -> set[int]:
    return set(range(network, network + (1 << (32 - prefixlen))))


def inside(inner: Net, outer: Net) -> bool:
    return inner != outer and addresses(*inner) <= addresses(*outer)


@settings(max_examples=200, deadline=None)
@given(networks)
def test_entries_come_in_address_order_with_their_immediate_children(
    entries: dict[Net, int],
) -> None:
    walked = list(ip_entries(4, levels_of(entries)))
    assert [(e.network, e.prefixlen) for e in walked] == sorted(entries)
    for entry in walked:
        me = (entry.network, entry.prefixlen)
        below = [net for net in entries if inside(net, me)]
        immediate = sorted(n for n in below if not any(inside(n, other) for other in below))
        assert list(entry.children) == immediate
        assert entry.vid == entries[me]
        text = str(ipaddress.IPv4Address(me[0]))
        assert entry.key == (text if me[1] == 32 else f"{text}/{me[1]}")
        covered = set().union(*(addresses(n, p) for n, p in entry.pieces()))
        holes = set().union(*(addresses(*child) for child in entry.children))
        assert covered == addresses(*me) - holes


@settings(max_examples=200, deadline=None)
@given(networks)
def test_nested_levels_keep_every_entry_with_children(entries: dict[Net, int]) -> None:
    levels = levels_of(entries)
    full = {(e.network, e.prefixlen): e for e in ip_entries(4, levels)}
    for entry in ip_entries(4, nested_levels(4, levels)):
        assert entry.children == full[(entry.network, entry.prefixlen)].children


@settings(max_examples=100, deadline=None)
@given(networks, st.integers(0, 3))
def test_listed_blocks_count_the_pieces_of_the_listed_entries(
    entries: dict[Net, int], unlisted: int
) -> None:
    zone = make_settings(Path("/nonexistent")).zone(IP_ZONE)
    values = [None, *(Value((f"127.0.0.{vid}",)) for vid in (1, 2, 3))]
    view = ZoneView(zone, values, levels_of(entries), [], {}, {})
    skip = {EXCLUDED, unlisted}
    expected = sum(
        sum(1 for _ in entry.pieces()) if entry.children else 1
        for entry in view.ip_entries(4)
        if entry.vid not in skip
    )
    assert view.listed_blocks(4, skip) == expected


def test_snapshot_helpers() -> None:
    assert exclusion_keys(ZoneKind.DOMAIN, "a.example") == [
        DomainKey("a.example", False),
        DomainKey("a.example", True),
    ]
    assert exclusion_keys(ZoneKind.DOMAIN, "*.a.example") == [DomainKey("a.example", True)]
    assert exclusion_keys(ZoneKind.IP, "a.example") == []  # the other kind: not for this zone
    assert exclusion_keys(ZoneKind.IP, "192.0.2.0/24") == [parse_ip_key("192.0.2.0/24")]
    assert domain_key("*.x.example") == DomainKey("x.example", True)
    assert is_test_point(4, int(ipaddress.IPv4Address("127.0.0.0")), 24)
    assert is_test_point(4, 0, 1) and not is_test_point(4, BASE, 8)
    assert is_test_point(6, int(ipaddress.IPv6Address("::ffff:7f00:2")), 128)
