"""Store rows into zone indexes: the one loading path of DNS and of the dumps. Pure.

``rbl serve`` (rbl.server.follower) and ``rbl dump`` (rbl.dumps.writer) both
turn the store's snapshot rows (rbl.store.reader: active listings, the
allowlist) into ``rbl.index.tables.ZoneIndex`` objects here, so a zone
transfer and a zone-file dump describe the same zone: RFC 5782 test points
are never overwritten by a listing, and an allowlist entry excludes its
key, a plain name also everything below it (``*.name``). The change log is
applied by the follower with the same expansion (``exclusion_keys``).
"""

from __future__ import annotations

import sys
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Mapping
from itertools import islice
from operator import lt
from typing import Final

from rbl.errors import KeyFormatError
from rbl.index.tables import Level, Value, ZoneIndex
from rbl.model.codes import DEFAULT_CODE
from rbl.model.keys import (
    TEST_ADDRESSES,
    DomainKey,
    IpKey,
    ListingKey,
    ZoneKind,
    parse_key,
    test_point_conflict,
)
from rbl.policy.trapfilter import TrapFilter

_V4_TEST_NET: Final = 127

# The row shapes of rbl.store.reader.ListingReader (which this layer may not import).
IpRow = tuple[str, int, int, bytes, str, str | None]
"""zone, family, prefixlen, network (big-endian), codes, txt"""
DomainRow = tuple[str, str, str, str | None]
"""zone, key, codes, txt"""
IpLevel = tuple[str, int, int, int, str, str | None, bytes | None]
"""zone, family, prefixlen, rows, codes, txt, networks (big-endian, in order; None when
the rows do not all have these codes and TXT)"""
LevelRows = Callable[[str, int, int], Iterable["IpRow"]]
"""The rows of one (zone, family, prefix length) level, in network order"""
AllowRow = tuple[str, int, int, bytes | None]
"""key text, family (0 for a domain), prefix length, network (big-endian) or None"""

IpCounts = dict[tuple[str, int, int], dict[int, int]]
"""(zone, family, prefix length): {value id: IP rows loaded}"""

ValueOf = Callable[[str | None, str | None], Value]


def is_test_point(family: int, network: int, prefixlen: int) -> bool:
    """Would this network touch an RFC 5782 test address? (Cheap test first.)"""
    if family == 4 and network >> 24 != _V4_TEST_NET and prefixlen >= 8:
        return False
    return test_point_conflict(IpKey(family, network, prefixlen)) is not None


def domain_key(key_text: str) -> DomainKey:
    """A stored domain key: ``*.name`` is the subtree below ``name``."""
    if key_text.startswith("*."):
        return DomainKey(key_text[2:], True)
    return DomainKey(key_text, False)


def exclusion_keys(kind: ZoneKind, key_text: str) -> list[ListingKey]:
    """The index keys an allowlist entry excludes in a zone of ``kind`` (none if the
    entry is of the other kind): the key itself, and for a plain name its subtree."""
    try:
        key = parse_key(kind, key_text)
    except KeyFormatError:
        return []
    keys: list[ListingKey] = [key]
    if isinstance(key, DomainKey) and not key.subdomains:
        keys.append(DomainKey(key.name, True))
    return keys


class RowValues:
    """A row's (codes, TXT) as an index ``Value``: codes parsed once, TXT trap-redacted
    (TXT texts are public)."""

    def __init__(self, traps: TrapFilter) -> None:
        self.traps = traps
        self._codes: dict[str, tuple[str, ...]] = {}

    def __call__(self, codes: str | None, txt: str | None) -> Value:
        parsed = self._codes.get(codes or "")
        if parsed is None:
            parsed = self._codes[codes or ""] = tuple((codes or DEFAULT_CODE).split(","))
        return Value(parsed, None if txt is None else self.traps.redact(txt))


def load_rows(
    indexes: Mapping[str, ZoneIndex],
    ip_rows: Iterable[IpRow],
    domain_rows: Iterable[DomainRow],
    allow_rows: Iterable[AllowRow],
    value_of: ValueOf,
    counts: IpCounts | None = None,
    *,
    finish: bool = True,
) -> tuple[int, int]:
    """Bulk-load snapshot rows into the indexes of their zones; (loaded, skipped).

    IP rows arrive sorted (zone, family, prefix length, network), so each
    goes straight onto the end of its level's arrays: about 1.5 us a row.
    Rows of zones not in ``indexes`` are ignored; rows touching a test point
    are skipped. Ends with ``finish_load`` on every index. ``counts``, if
    given, gets the IP rows loaded per level and value id (the dump's
    summary: one dict update a row, where a counting pass cost a generator
    step and a tuple a row). ``finish=False``: more rows follow (load_ip_levels).
    """
    loaded = skipped = 0
    vids: dict[tuple[str, str, str | None], int] = {}
    current: tuple[str, int, int] | None = None
    level: Level | None = None
    index: ZoneIndex | None = None
    counted: dict[int, int] = {}
    for zone_name, family, prefixlen, network_bytes, codes, txt in ip_rows:
        if current != (zone_name, family, prefixlen):
            current = (zone_name, family, prefixlen)
            index = indexes.get(zone_name)
            if index is not None:
                level = (index.v4 if family == 4 else index.v6).level(prefixlen)
            counted = {} if counts is None else counts.setdefault(current, {})
        if index is None or level is None:
            continue
        vid = vids.get((zone_name, codes, txt))
        if vid is None:
            vid = vids[(zone_name, codes, txt)] = index.value_id(value_of(codes, txt))
        network = int.from_bytes(network_bytes, "big")
        if is_test_point(family, network, prefixlen):
            skipped += 1
            continue
        if not level.append_sorted(network, vid):
            level.put(network, vid)
        loaded += 1
        counted[vid] = counted.get(vid, 0) + 1
    for zone_name, key_text, codes, txt in domain_rows:
        index = indexes.get(zone_name)
        if index is not None:
            index.set(domain_key(key_text), value_of(codes, txt))
            loaded += 1
    for key_text, family, *_ in allow_rows:
        for index in indexes.values():
            if (index.kind is ZoneKind.IP) == bool(family):  # IP entries for IP zones
                for key in exclusion_keys(index.kind, key_text):
                    index.set(key, None)
    if finish:
        for index in indexes.values():
            index.finish_load()
    return loaded, skipped


_WIDTH: Final = {4: 4, 6: 16}


def load_ip_levels(
    indexes: Mapping[str, ZoneIndex],
    levels: Iterable[IpLevel],
    level_rows: LevelRows,
    value_of: ValueOf,
) -> tuple[int, int]:
    """Bulk-load IP levels read whole (``ListingReader.ip_levels``); (loaded, skipped).

    A level whose rows share one value and came as one run of networks becomes its
    arrays at once (``array.frombytes``: no Python object per row) when the level is
    still empty and the run is in strict order; any other level is loaded from its
    rows (``level_rows(zone, family, prefixlen)``) as ``load_rows`` loads them. Call
    ``load_rows`` after (domains, allowlist, ``finish_load``).
    """
    loaded = skipped = 0
    vids: dict[tuple[str, str, str | None], int] = {}
    for zone_name, family, prefixlen, count, codes, txt, networks in levels:
        index = indexes.get(zone_name)
        if index is None:
            continue
        table = index.v4 if family == 4 else index.v6
        level = table.level(prefixlen)
        keys = _run_of(family, networks, count) if len(level.keys) == 0 else None
        networks = None  # the bytes go now: a 10M level's are 40 MB
        if keys is None:
            rows = level_rows(zone_name, family, prefixlen)
            done, passed = load_rows(indexes, rows, (), (), value_of, finish=False)
            loaded, skipped = loaded + done, skipped + passed
            continue
        for point in TEST_ADDRESSES[family]:  # never overwritten by a listing (load_rows)
            network = point & level.mask
            i = bisect_left(keys, network)
            if i < len(keys) and keys[i] == network:
                del keys[i]
                skipped += 1
        vid = vids.get((zone_name, codes, txt))
        if vid is None:
            vid = vids[(zone_name, codes, txt)] = index.value_id(value_of(codes, txt))
        level.fill(keys, vid)
        loaded += len(keys)
    return loaded, skipped


def _run_of(family: int, networks: bytes | None, count: int) -> array[int] | list[int] | None:
    """The networks of a level as its ``keys``, or None if they are not one strictly
    ascending run of ``count`` (then the level is loaded row by row)."""
    if networks is None or len(networks) != count * _WIDTH[family]:
        return None
    keys: array[int] | list[int]
    if family == 4:
        keys = array("I")
        if keys.itemsize != 4:  # pragma: no cover - 'I' is 4 bytes where CPython runs
            return None
        keys.frombytes(networks)
        if sys.byteorder == "little":
            keys.byteswap()
    else:
        view = memoryview(networks)
        keys = [int.from_bytes(view[i : i + 16], "big") for i in range(0, len(view), 16)]
    if not all(map(lt, keys, islice(keys, 1, None))):
        return None
    return keys
