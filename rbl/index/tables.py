"""The in-memory DNS view of the list, built for lookups.

The DNS query path reads only this. It is fed by the service (initial load
from the store, then the change log), never by the store directly, so it
imports nothing from rbl.store, rbl.dnsserver or Twisted.

Layout, chosen for memory (1M IPv4 listings in about 5 MB) and speed:

* ``PrefixTable``: one level per prefix length in use, each a sorted
  ``array`` of network integers with a parallel array of value ids, searched
  with ``bisect``. Recent changes sit in a small dict overlay (with
  tombstones for deletions) that is merged into the arrays by slicing once it
  grows, so a change never costs a full re-sort. Lookups go from the longest
  prefix to the shortest: the most specific entry wins, as in rbldnsd.
* ``DomainTable`` (rbl.index.domains): dicts of exact names and of
  ``*.name`` subtrees, plus a reference count of every name that has
  listings below it, so empty non-terminals answer NOERROR instead of NXDOMAIN.
* Value id 0 is an exclusion (for example an allowlisted address inside a
  listed network): it stops the search and means "not listed".
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right, insort
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from rbl.index.domains import DomainTable
from rbl.index.ids import EXCLUDED as EXCLUDED  # re-exported: the tables' users import it here
from rbl.model.codes import DEFAULT_CODE
from rbl.model.keys import (
    TEST_LISTED_NAME,
    TEST_LISTED_V4,
    TEST_LISTED_V6,
    TEST_UNLISTED_NAME,
    TEST_UNLISTED_V4,
    TEST_UNLISTED_V6,
    IpKey,
    ListingKey,
    ZoneKind,
    test_point_conflict,
)

_TOMBSTONE: Final = -1
_MERGE_AT: Final = 4096
_INSERT_IN_PLACE: Final = 16  # overlays this small are inserted into the arrays in place
_DIRECTORY_AT: Final = 4096  # IPv4 levels at least this big get a /16 directory
_VALUE_TYPECODES: Final = (("B", 0xFF), ("H", 0xFFFF), ("I", 0xFFFFFFFF))


@dataclass(frozen=True, slots=True)
class Value:
    """What a listed key answers: its return codes and an optional own TXT template."""

    codes: tuple[str, ...]
    txt: str | None = None


TEST_VALUE: Final = Value((DEFAULT_CODE,), "RFC 5782 test point: {key} is listed for testing")


class Level:
    """All entries of one prefix length: sorted arrays plus a dict overlay of recent changes."""

    __slots__ = ("directory", "keys", "mask", "overlay", "overlay_keys", "prefixlen", "vals")

    def __init__(self, prefixlen: int, bits: int) -> None:
        self.prefixlen = prefixlen
        self.mask = ((1 << prefixlen) - 1) << (bits - prefixlen)
        # IPv4 networks fit an unsigned 32-bit array; IPv6 needs Python ints.
        self.keys: array[int] | list[int] = array("I") if bits == 32 else []
        self.vals: array[int] = array("B")
        self.overlay: dict[int, int] = {}
        self.overlay_keys: list[int] = []
        # For big IPv4 levels: where each /16 starts in ``keys``, so a lookup
        # bisects a bucket of a few entries instead of the whole array.
        self.directory: array[int] | None = None

    def _index_directory(self) -> None:
        keys = self.keys
        if not isinstance(keys, array) or len(keys) < _DIRECTORY_AT:
            self.directory = None
            return
        directory = array("I", bytes(4 * 65537))
        position = 0
        for top in range(65536):
            position = bisect_left(keys, top << 16, position)
            directory[top] = position
        directory[65536] = len(keys)
        self.directory = directory

    def get(self, network: int) -> int | None:
        if self.overlay:
            found = self.overlay.get(network)
            if found is not None:
                return None if found == _TOMBSTONE else found
        keys = self.keys
        i = bisect_left(keys, network)
        if i < len(keys) and keys[i] == network:
            return self.vals[i]
        return None

    def put(self, network: int, value: int) -> None:
        if network not in self.overlay:
            insort(self.overlay_keys, network)
        self.overlay[network] = value
        if len(self.overlay) >= _MERGE_AT:
            self.merge()

    def append_sorted(self, network: int, value: int) -> bool:
        """Bulk-load path: append if in order and new, else return False."""
        keys = self.keys
        if keys and keys[-1] >= network:
            return False
        if value > 0xFF:
            self._widen_for(value)
        keys.append(network)
        self.vals.append(value)
        return True

    def fill(self, keys: array[int] | list[int], value: int) -> None:
        """Bulk load of an empty level: ``keys`` (sorted, distinct) all with ``value``, as
        one array of ids (a million listings of one value: no Python object per row)."""
        self.vals = array("B")
        self._widen_for(value)
        self.vals = array(self.vals.typecode, [value]) * len(keys)
        self.keys = keys

    def _widen_for(self, value: int) -> None:
        vals = self.vals
        for typecode, limit in _VALUE_TYPECODES:
            if value <= limit:
                if vals.itemsize < array(typecode).itemsize:
                    self.vals = array(typecode, vals)
                return
        raise OverflowError(f"value id {value} does not fit an array")

    def merge(self) -> None:
        """Fold the overlay into the sorted arrays.

        A few entries are inserted in place (no second copy of a big array at
        start-up, when the test points are the only overlay); more are merged
        into new arrays by copying the runs between them as slices.
        """
        if not self.overlay:
            return
        if len(self.overlay) <= _INSERT_IN_PLACE:
            self._insert_in_place()
            return
        keys, vals = self.keys, self.vals
        for value in self.overlay.values():
            self._widen_for(max(value, 0))
        vals = self.vals
        new_keys: array[int] | list[int] = array("I") if isinstance(keys, array) else []
        new_vals: array[int] = array(vals.typecode)
        pos = 0
        for network in self.overlay_keys:
            value = self.overlay[network]
            i = bisect_left(keys, network, pos)
            new_keys.extend(keys[pos:i])
            new_vals.extend(vals[pos:i])
            if i < len(keys) and keys[i] == network:
                i += 1
            if value != _TOMBSTONE:
                new_keys.append(network)
                new_vals.append(value)
            pos = i
        new_keys.extend(keys[pos:])
        new_vals.extend(vals[pos:])
        self.keys, self.vals = new_keys, new_vals
        self.overlay = {}
        self.overlay_keys = []
        self._index_directory()

    def _insert_in_place(self) -> None:
        for value in self.overlay.values():
            self._widen_for(max(value, 0))
        keys, vals = self.keys, self.vals
        for network in self.overlay_keys:
            value = self.overlay[network]
            i = bisect_left(keys, network)
            present = i < len(keys) and keys[i] == network
            if value == _TOMBSTONE:
                if present:
                    del keys[i]
                    del vals[i]
            elif present:
                vals[i] = value
            else:
                keys.insert(i, network)
                vals.insert(i, value)
        self.overlay = {}
        self.overlay_keys = []
        self._index_directory()

    def any_listing_between(self, lo: int, hi: int) -> bool:
        """Is there a listing (not an exclusion, not deleted) whose network lies in [lo, hi]?"""
        overlay = self.overlay
        okeys = self.overlay_keys
        i = bisect_left(okeys, lo)
        while i < len(okeys) and okeys[i] <= hi:
            if overlay[okeys[i]] > EXCLUDED:  # neither a tombstone nor an exclusion
                return True
            i += 1
        keys, vals = self.keys, self.vals
        i = bisect_left(keys, lo)
        end = bisect_right(keys, hi, i)
        while i < end:
            if vals[i] != EXCLUDED and keys[i] not in overlay:  # overlaid keys were seen above
                return True
            i += 1
        return False

    def between(self, lo: int, hi: int) -> list[tuple[int, int]]:
        """(network, value id) of every entry (exclusions too) whose network lies in [lo, hi]."""
        overlay = self.overlay
        keys, vals = self.keys, self.vals
        i = bisect_left(keys, lo)
        found = [(keys[j], vals[j]) for j in range(i, bisect_right(keys, hi, i))]
        if overlay:
            found = [item for item in found if item[0] not in overlay]
            okeys = self.overlay_keys
            i = bisect_left(okeys, lo)
            while i < len(okeys) and okeys[i] <= hi:
                if overlay[okeys[i]] != _TOMBSTONE:
                    found.append((okeys[i], overlay[okeys[i]]))
                i += 1
        return found

    def __len__(self) -> int:
        live = len(self.keys)
        for network in self.overlay_keys:
            value = self.overlay[network]
            i = bisect_left(self.keys, network)
            in_base = i < len(self.keys) and self.keys[i] == network
            if value == _TOMBSTONE:
                live -= in_base
            else:
                live += not in_base
        return live

    def items(self) -> Iterator[tuple[int, int]]:
        self.merge()
        return zip(self.keys, self.vals, strict=True)


class PrefixTable:
    """Networks of one address family, longest-prefix match."""

    def __init__(self, bits: int) -> None:
        self.bits = bits
        self._by_len: dict[int, Level] = {}
        self._levels: tuple[Level, ...] = ()

    def level(self, prefixlen: int) -> Level:
        level = self._by_len.get(prefixlen)
        if level is None:
            level = self._by_len[prefixlen] = Level(prefixlen, self.bits)
            self._levels = tuple(sorted(self._by_len.values(), key=lambda lv: -lv.prefixlen))
        return level

    def set(self, network: int, prefixlen: int, value: int) -> None:
        self.level(prefixlen).put(network, value)

    def delete(self, network: int, prefixlen: int) -> None:
        level = self._by_len.get(prefixlen)
        if level is not None and level.get(network) is not None:
            level.put(network, _TOMBSTONE)

    def load(self, network: int, prefixlen: int, value: int) -> None:
        """Add during a bulk load; sorted input is appended, anything else overlaid."""
        level = self.level(prefixlen)
        if not level.append_sorted(network, value):
            level.put(network, value)

    def lookup(self, address: int) -> int | None:
        """The value id of the most specific entry covering ``address`` (0 = excluded)."""
        for level in self._levels:
            network = address & level.mask
            if level.overlay:
                found = level.overlay.get(network)
                if found is not None:
                    if found == _TOMBSTONE:
                        continue
                    return found
            keys = level.keys
            directory = level.directory
            if directory is None:
                i = bisect_left(keys, network)
            else:
                top = network >> 16
                i = bisect_left(keys, network, directory[top], directory[top + 1])
            if i < len(keys) and keys[i] == network:
                return level.vals[i]
        return None

    def get(self, network: int, prefixlen: int) -> int | None:
        """The value id of the entry at exactly ``network/prefixlen``, if there is one."""
        level = self._by_len.get(prefixlen)
        return None if level is None else level.get(network)

    def prefixlens(self) -> list[int]:
        """The prefix lengths that have (or had) entries, longest first."""
        return [level.prefixlen for level in self._levels]

    def entries_within(self, network: int, prefixlen: int) -> list[tuple[int, int, int]]:
        """(network, prefix length, value id) of every entry strictly inside
        ``network/prefixlen``, unsorted: an IXFR difference re-renders a network."""
        hi = network | ((1 << (self.bits - prefixlen)) - 1)
        found: list[tuple[int, int, int]] = []
        for level in self._levels:
            if level.prefixlen > prefixlen:
                length = level.prefixlen
                found += [(n, length, vid) for n, vid in level.between(network, hi)]
        return found

    def covering(self, network: int, prefixlen: int) -> int | None:
        """The value id of the most specific entry holding all of ``network/prefixlen``."""
        for level in self._levels:  # longest prefix first
            if level.prefixlen <= prefixlen:
                found = level.get(network & level.mask)
                if found is not None:
                    return found
        return None

    def has_listing_within(self, network: int, prefixlen: int) -> bool:
        """Does any listing (not an exclusion) overlap ``network/prefixlen``?

        Answers whether a partial reversed name such as ``0.0.127`` is an
        empty non-terminal (NOERROR) or does not exist (NXDOMAIN).
        """
        host_bits = self.bits - prefixlen
        hi = network | ((1 << host_bits) - 1)
        for level in self._levels:  # longest prefix first
            if level.prefixlen > prefixlen:
                if level.any_listing_between(network, hi):
                    return True
            else:
                # No listing more specific than the range: the most specific entry
                # covering the whole range (possibly the range itself) decides.
                found = level.get(network & level.mask)
                if found is not None:
                    return found != EXCLUDED
        return False

    def finish_load(self) -> None:
        for level in self._levels:
            level.merge()
            if level.directory is None:
                level._index_directory()

    def snapshot(self) -> list[tuple[int, Sequence[int], Sequence[int]]]:
        """(prefix length, networks, value ids) per level, copied: later changes don't show.

        Copying arrays is a memory copy (milliseconds for a million entries), so a
        zone transfer can take one consistent view on the reactor thread and
        walk it afterwards in small steps.
        """
        levels: list[tuple[int, Sequence[int], Sequence[int]]] = []
        for level in self._levels:
            level.merge()
            levels.append((level.prefixlen, level.keys[:], level.vals[:]))
        return levels

    def __len__(self) -> int:
        return sum(len(level) for level in self._levels)

    def items(self) -> Iterator[tuple[int, int, int]]:
        """(network, prefixlen, value id) for every entry, exclusions included."""
        for level in self._levels:
            for network, value in level.items():
                yield network, level.prefixlen, value


class ZoneIndex:
    """Everything one zone answers, keyed for the DNS path; RFC 5782 test points built in."""

    def __init__(self, kind: ZoneKind) -> None:
        self.kind = kind
        self.v4 = PrefixTable(32)
        self.v6 = PrefixTable(128)
        self.domains = DomainTable()
        self.values: list[Value | None] = [None]  # id 0 = EXCLUDED
        self._value_ids: dict[Value, int] = {}
        if kind is ZoneKind.IP:
            test = self.value_id(TEST_VALUE)
            self.v4.set(TEST_LISTED_V4, 32, test)
            self.v4.set(TEST_UNLISTED_V4, 32, EXCLUDED)
            self.v6.set(TEST_LISTED_V6, 128, test)
            self.v6.set(TEST_UNLISTED_V6, 128, EXCLUDED)
        else:
            self.domains.set(TEST_LISTED_NAME.encode(), False, self.value_id(TEST_VALUE))
            self.domains.set(TEST_UNLISTED_NAME.encode(), False, EXCLUDED)

    def value_id(self, value: Value) -> int:
        """Intern a value; listings share the few distinct (codes, txt) pairs."""
        found = self._value_ids.get(value)
        if found is None:
            found = self._value_ids[value] = len(self.values)
            self.values.append(value)
        return found

    def set(self, key: ListingKey, value: Value | None, *, bulk: bool = False) -> None:
        """List ``key`` with ``value``, or exclude it when ``value`` is None."""
        if test_point_conflict(key):
            return
        vid = EXCLUDED if value is None else self.value_id(value)
        if isinstance(key, IpKey):
            table = self.v4 if key.family == 4 else self.v6
            if bulk:
                table.load(key.network, key.prefixlen, vid)
            else:
                table.set(key.network, key.prefixlen, vid)
        else:
            self.domains.set(key.name.encode("ascii"), key.subdomains, vid)

    def delete(self, key: ListingKey) -> None:
        if test_point_conflict(key):
            return
        if isinstance(key, IpKey):
            table = self.v4 if key.family == 4 else self.v6
            table.delete(key.network, key.prefixlen)
        else:
            self.domains.delete(key.name.encode("ascii"), key.subdomains)

    def entry_id(self, key: ListingKey) -> int | None:
        """The value id stored at exactly ``key`` (0: an exclusion), or None."""
        if isinstance(key, IpKey):
            return (self.v4 if key.family == 4 else self.v6).get(key.network, key.prefixlen)
        domains = self.domains
        return (domains.subtree if key.subdomains else domains.exact).get(key.name.encode("ascii"))

    def finish_load(self) -> None:
        self.v4.finish_load()
        self.v6.finish_load()

    def lookup(self, key: ListingKey) -> Value | None:
        """The value a single address or name answers with (for tests and the CLI)."""
        if isinstance(key, IpKey):
            table = self.v4 if key.family == 4 else self.v6
            vid = table.lookup(key.network)
        else:
            vid = self.domains.lookup(key.name.encode("ascii"))
        return self.values[vid] if vid else None

    def __len__(self) -> int:
        """Entries, test points and exclusions included."""
        return len(self.v4) + len(self.v6) + len(self.domains)


def load_entries(index: ZoneIndex, entries: Iterable[tuple[ListingKey, Value | None]]) -> int:
    """Bulk-load entries (fastest when IP keys come sorted by prefix length, then network)."""
    count = 0
    for key, value in entries:
        index.set(key, value, bulk=True)
        count += 1
    index.finish_load()
    return count
