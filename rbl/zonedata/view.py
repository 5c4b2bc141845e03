"""One consistent view of a zone's index and its entries in nesting order. Pure.

Everything that writes a whole zone (AXFR/IXFR in rbl.dnsserver.transfer, the
dump formats in rbl.dumps.formats) walks a ``ZoneView``: IP entries come in
address order, each with the entries immediately inside it, so a renderer
can cut them out (``IpEntry.pieces``); domain entries come sorted by name.
"""

from __future__ import annotations

import heapq
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from socket import inet_ntoa
from typing import NamedTuple

from rbl.config import ZoneSettings
from rbl.index.tables import EXCLUDED, TEST_VALUE, Value, ZoneIndex
from rbl.model.keys import MAX_PREFIXLEN, ZoneKind
from rbl.policy.trapfilter import NO_TRAPS, TrapFilter
from rbl.zonedata.names import cidr_blocks, ip_text

LevelView = tuple[int, Sequence[int], Sequence[int]]
"""(prefix length, sorted networks, value ids) of one index level"""


@dataclass(frozen=True, slots=True)
class ZoneView:
    """One consistent view of a zone, taken at once; its records are generated later.

    The index arrays and domain dicts are copied (memory copies, milliseconds
    for a million entries); value ids stay valid because values are only ever
    appended. The follower may change the zone, and a reload its settings,
    while a transfer of this view is still being written. ``traps`` redacts
    every TXT text made from the view (the dump's: the store's trap list).
    """

    settings: ZoneSettings
    values: Sequence[Value | None]
    v4: list[LevelView]
    v6: list[LevelView]
    exact: dict[str, int]
    subtree: dict[str, int]
    traps: TrapFilter = NO_TRAPS

    @classmethod
    def of_index(
        cls, settings: ZoneSettings, index: ZoneIndex, traps: TrapFilter = NO_TRAPS
    ) -> ZoneView:
        if settings.kind is ZoneKind.IP:
            return cls(
                settings, index.values, index.v4.snapshot(), index.v6.snapshot(), {}, {}, traps
            )
        domains = index.domains
        return cls(
            settings,
            index.values,
            [],
            [],
            {name.decode("ascii"): vid for name, vid in domains.exact.items()},
            {name.decode("ascii"): vid for name, vid in domains.subtree.items()},
            traps,
        )

    @property
    def is_ip(self) -> bool:
        return self.settings.kind is ZoneKind.IP

    def value_id(self, value: Value) -> int | None:
        """The id of ``value`` in this view, if a listing uses it."""
        for vid, each in enumerate(self.values):
            if each == value:
                return vid
        return None

    def test_value_id(self) -> int:
        """The RFC 5782 test points' value (an index interns it first)."""
        found = self.value_id(TEST_VALUE)
        return EXCLUDED if found is None else found

    def ip_entries(self, family: int) -> Iterator[IpEntry]:
        """The entries of one family in address order, exclusions included."""
        return ip_entries(family, self.v4 if family == 4 else self.v6)

    def listed_blocks(self, family: int, unlisted: Iterable[int]) -> int:
        """How many CIDR blocks the listed entries of a family cover once the entries
        inside them are cut out, leaving out entries with ``unlisted`` value ids."""
        levels = self.v4 if family == 4 else self.v6
        skip = set(unlisted)
        total = sum(len(vals) - sum(vals.count(vid) for vid in skip) for _p, _k, vals in levels)
        for entry in ip_entries(family, nested_levels(family, levels)):
            if entry.children and entry.vid not in skip:
                total += sum(1 for _ in entry.pieces()) - 1
        return total

    def domain_entries(self) -> list[DomainEntry]:
        """Exact names and ``*.name`` subtrees, sorted (name, wildcard)."""
        entries = [DomainEntry(name, False, vid) for name, vid in self.exact.items()]
        entries += [DomainEntry(name, True, vid) for name, vid in self.subtree.items()]
        entries.sort()
        return entries


class IpEntry(NamedTuple):
    """A listed or excluded (``vid`` 0) network and the entries immediately inside it."""

    family: int
    network: int
    prefixlen: int
    vid: int
    children: tuple[tuple[int, int], ...]  # (network, prefix length), in address order
    key: str  # the network as text: 192.0.2.1, 192.0.2.0/24, 2001:db8::/32

    def pieces(self, holes: Iterable[tuple[int, int]] | None = None) -> Iterator[tuple[int, int]]:
        """The CIDR blocks of the entry outside ``holes`` (default: all its children)."""
        return cidr_pieces(
            self.network,
            self.prefixlen,
            self.children if holes is None else holes,
            MAX_PREFIXLEN[self.family],
        )


class DomainEntry(NamedTuple):
    name: str
    wildcard: bool
    vid: int

    @property
    def key(self) -> str:
        return f"*.{self.name}" if self.wildcard else self.name


def cidr_pieces(
    network: int, prefixlen: int, holes: Iterable[tuple[int, int]], bits: int
) -> Iterator[tuple[int, int]]:
    """The CIDR blocks of ``network/prefixlen`` outside its sorted, disjoint ``holes``."""
    start = network
    for hole, hole_len in holes:
        if hole > start:
            yield from cidr_blocks(start, hole - 1, bits)
        start = hole + (1 << (bits - hole_len))
    end = network | ((1 << (bits - prefixlen)) - 1)
    if start <= end:
        yield from cidr_blocks(start, end, bits)


def ip_entries(family: int, levels: Sequence[LevelView]) -> Iterator[IpEntry]:
    """Each entry once all entries inside it are known (a sweep with a stack).

    Entries arrive in nesting order (network, then prefix length) from a lazy
    merge of the levels; CIDRs nest or are disjoint, so the stack holds the
    chain of entries containing the current one. The entries of one outermost
    network are held until the sweep passes its last address, then given out
    in address order. Memory: the largest such network's entries, not the zone.
    """
    bits = MAX_PREFIXLEN[family]
    text = _v4_text if family == 4 else _v6_text
    v4 = family == 4
    merged = _nesting_order(levels, bits)
    held: list[tuple[int, int, int, list[tuple[int, int]]]] = []
    stack: list[tuple[int, list[tuple[int, int]]]] = []  # (last address, children)
    leaf: list[tuple[int, int]] = []  # the children of a single address: none, ever
    for network, prefixlen, vid in merged:
        while stack and stack[-1][0] < network:
            stack.pop()
        if stack:
            stack[-1][1].append((network, prefixlen))
        else:
            for n, p, v, kids in held:
                yield IpEntry(family, n, p, v, tuple(kids), text(n, p))
            held = []
            if prefixlen == bits:  # the common case: an address outside every network
                address = inet_ntoa(network.to_bytes(4, "big")) if v4 else text(network, bits)
                yield IpEntry(family, network, bits, vid, (), address)
                continue
        if prefixlen == bits:
            held.append((network, bits, vid, leaf))
            continue
        children: list[tuple[int, int]] = []
        stack.append((network | ((1 << (bits - prefixlen)) - 1), children))
        held.append((network, prefixlen, vid, children))
    for n, p, v, kids in held:
        yield IpEntry(family, n, p, v, tuple(kids), text(n, p))


def nested_levels(family: int, levels: Sequence[LevelView]) -> list[LevelView]:
    """Only the entries that are networks or lie inside one: where nesting can be."""
    bits = MAX_PREFIXLEN[family]
    ranges = [
        (network, network | ((1 << (bits - prefixlen)) - 1))
        for prefixlen, keys, _vals in levels
        if prefixlen < bits
        for network in keys
    ]
    nested: list[LevelView] = []
    for prefixlen, keys, vals in levels:
        if prefixlen < bits:
            nested.append((prefixlen, keys, vals))
            continue
        inside: set[int] = set()
        for low, high in ranges:
            inside.update(range(bisect_left(keys, low), bisect_right(keys, high)))
        chosen = sorted(inside)
        nested.append((prefixlen, [keys[i] for i in chosen], [vals[i] for i in chosen]))
    return nested


def _v4_text(network: int, prefixlen: int) -> str:
    text = inet_ntoa(network.to_bytes(4, "big"))
    return text if prefixlen == 32 else f"{text}/{prefixlen}"


def _v6_text(network: int, prefixlen: int) -> str:
    return ip_text(6, network, prefixlen)


def _level_entries(
    prefixlen: int, keys: Sequence[int], vals: Sequence[int]
) -> Iterator[tuple[int, int, int]]:
    return zip(keys, repeat(prefixlen, len(keys)), vals, strict=True)


def _nesting_order(levels: Sequence[LevelView], bits: int) -> Iterator[tuple[int, int, int]]:
    """(network, prefix length, value id) of every level, sorted by network then prefix.

    The single addresses (most of a trap zone) are given out in runs between
    the networks, each run one C-level ``zip``; only the networks go through
    ``heapq.merge``. Same order as merging every level: an address equal to a
    network's first address comes after it (a longer prefix).
    """
    hosts = [level for level in levels if level[0] == bits]
    networks = heapq.merge(*(_level_entries(*level) for level in levels if level[0] != bits))
    if not hosts:
        yield from networks
        return
    _bits, keys, vals = hosts[0]
    start = 0
    for network, prefixlen, vid in networks:
        stop = bisect_left(keys, network, start)
        if stop > start:
            yield from zip(
                keys[start:stop], repeat(bits, stop - start), vals[start:stop], strict=True
            )
            start = stop
        yield network, prefixlen, vid
    yield from zip(keys[start:], repeat(bits, len(keys) - start), vals[start:], strict=True)
