"""rbl.index.tables: the in-memory lookup structures the DNS path reads.

PrefixTable and DomainTable are checked against plain reference models under
random sequences of changes; ``rbl.index.tables._MERGE_AT`` is lowered so the dict
overlay is folded into the sorted arrays many times per run.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)

import rbl.index.tables
from rbl.index.domains import DomainTable
from rbl.index.tables import (
    EXCLUDED,
    TEST_VALUE,
    PrefixTable,
    Value,
    ZoneIndex,
    load_entries,
)
from rbl.model.keys import ZoneKind, parse_domain_key, parse_ip_key

# -- reference model --------------------------------------------------------------------

Entry = tuple[int, int]  # (network, prefixlen)


def last_of(bits: int, network: int, prefixlen: int) -> int:
    return network | ((1 << (bits - prefixlen)) - 1)


def mask(bits: int, address: int, prefixlen: int) -> int:
    return address >> (bits - prefixlen) << (bits - prefixlen)


class RefPrefixTable:
    """Longest-prefix match done the slow, obvious way."""

    def __init__(self, bits: int) -> None:
        self.bits = bits
        self.entries: dict[Entry, int] = {}

    def lookup(self, address: int) -> int | None:
        best: tuple[int, int] | None = None
        for (network, prefixlen), value in self.entries.items():
            if network <= address <= last_of(self.bits, network, prefixlen) and (
                best is None or prefixlen > best[0]
            ):
                best = (prefixlen, value)
        return None if best is None else best[1]

    def listed_address_within(self, network: int, prefixlen: int) -> bool:
        """Does some address in the range look up as listed (the DNS meaning of 'exists')?"""
        lo, hi = network, last_of(self.bits, network, prefixlen)
        # The lookup result only changes at entry boundaries: probe each one in range.
        probes = {lo}
        for (start, length), _ in self.entries.items():
            end = last_of(self.bits, start, length)
            if start <= hi and end >= lo:
                probes.add(max(start, lo))
                if end < hi:
                    probes.add(end + 1)
        return any(self.lookup(probe) for probe in probes)

    def documented_within(self, network: int, prefixlen: int) -> bool:
        """The upper bound has_listing_within keeps to: a listing (not an exclusion) whose
        network lies inside the range, else the most specific strictly shorter entry
        covering the range decides. (It does not see that more specific exclusions,
        or one of exactly the queried length, may hide all of such a listing.)"""
        lo, hi = network, last_of(self.bits, network, prefixlen)
        covering: tuple[int, int] | None = None
        for (start, length), value in self.entries.items():
            if length >= prefixlen:
                if lo <= start <= hi and value != EXCLUDED:
                    return True
            elif start <= lo <= last_of(self.bits, start, length) and (
                covering is None or length > covering[0]
            ):
                covering = (length, value)
        return covering is not None and covering[1] != EXCLUDED


# -- strategies: a small universe of addresses so that entries overlap -------------------

V4_PREFIXES = [8, 9, 15, 16, 17, 23, 24, 25, 30, 31, 32]
V6_PREFIXES = [16, 17, 31, 32, 48, 63, 64, 65, 96, 120, 127, 128]
VALUES = [EXCLUDED, 1, 2, 3, 300, 70000]


@st.composite
def v4_addresses(draw: st.DrawFn) -> int:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.integers(0, 2**32 - 1))
    first = draw(st.sampled_from([10, 11, 255]))
    rest = [draw(st.sampled_from([0, 1, 2, 0x7F, 0x80, 0xFF])) for _ in range(3)]
    return first << 24 | rest[0] << 16 | rest[1] << 8 | rest[2]


@st.composite
def v6_addresses(draw: st.DrawFn) -> int:
    if draw(st.integers(0, 9)) == 0:
        return draw(st.integers(0, 2**128 - 1))
    top = draw(st.sampled_from([0x2001, 0x2002, 0xFFFF]))
    mid = draw(st.sampled_from([0, 1, 0x0DB8_0000_0000, 0x8000_0000_0000, 2**48 - 1]))
    low = draw(st.sampled_from([0, 1, 2, 0xFF, 1 << 63, 2**64 - 1]))
    return top << 112 | mid << 64 | low


def addresses(bits: int) -> st.SearchStrategy[int]:
    return v4_addresses() if bits == 32 else v6_addresses()


@st.composite
def networks(draw: st.DrawFn, bits: int, prefixes: list[int] | None = None) -> Entry:
    prefixlen = draw(st.sampled_from(prefixes or (V4_PREFIXES if bits == 32 else V6_PREFIXES)))
    return mask(bits, draw(addresses(bits)), prefixlen), prefixlen


@st.composite
def any_aligned_range(draw: st.DrawFn, bits: int) -> Entry:
    prefixlen = draw(st.integers(1, bits))
    return mask(bits, draw(addresses(bits)), prefixlen), prefixlen


# -- PrefixTable under random changes ----------------------------------------------------


class PrefixTableMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tables = {32: PrefixTable(32), 128: PrefixTable(128)}
        self.models = {32: RefPrefixTable(32), 128: RefPrefixTable(128)}

    def _set(self, bits: int, entry: Entry, value: int) -> None:
        self.tables[bits].set(entry[0], entry[1], value)
        self.models[bits].entries[entry] = value

    def _delete(self, bits: int, entry: Entry) -> None:
        self.tables[bits].delete(*entry)
        self.models[bits].entries.pop(entry, None)

    @rule(entry=networks(32), value=st.sampled_from(VALUES[1:]))
    def list_v4(self, entry: Entry, value: int) -> None:
        self._set(32, entry, value)

    @rule(entry=networks(128), value=st.sampled_from(VALUES[1:]))
    def list_v6(self, entry: Entry, value: int) -> None:
        self._set(128, entry, value)

    @rule(entry=networks(32))
    def exclude_v4(self, entry: Entry) -> None:
        self._set(32, entry, EXCLUDED)

    @rule(entry=networks(128))
    def exclude_v6(self, entry: Entry) -> None:
        self._set(128, entry, EXCLUDED)

    @rule(bits=st.sampled_from([32, 128]), data=st.data())
    def delete_existing(self, bits: int, data: st.DataObject) -> None:
        entries = sorted(self.models[bits].entries)
        if entries:
            self._delete(bits, data.draw(st.sampled_from(entries)))

    @rule(entry=networks(32))
    def delete_any_v4(self, entry: Entry) -> None:
        self._delete(32, entry)

    @rule(entry=networks(128))
    def delete_any_v6(self, entry: Entry) -> None:
        self._delete(128, entry)

    @rule()
    def merge_everything(self) -> None:
        for table in self.tables.values():
            table.finish_load()

    @rule(address=v4_addresses())
    def lookup_v4(self, address: int) -> None:
        assert self.tables[32].lookup(address) == self.models[32].lookup(address)

    @rule(address=v6_addresses())
    def lookup_v6(self, address: int) -> None:
        assert self.tables[128].lookup(address) == self.models[128].lookup(address)

    def _check_within(self, bits: int, query: Entry) -> None:
        got = self.tables[bits].has_listing_within(*query)
        model = self.models[bits]
        exists = model.listed_address_within(*query)
        # Never NXDOMAIN for a name that has an existing (listed) name below it, and
        # never NOERROR beyond the bound. Between the two, a listing whose addresses
        # are all excluded may still count: a NODATA where NXDOMAIN would be exact.
        assert exists <= got <= model.documented_within(*query)
        # Without exclusions the bounds meet, so the answer is exact.
        if EXCLUDED not in model.entries.values():
            assert got == exists

    @rule(query=any_aligned_range(32))
    def within_v4(self, query: Entry) -> None:
        self._check_within(32, query)

    @rule(query=any_aligned_range(128))
    def within_v6(self, query: Entry) -> None:
        self._check_within(128, query)

    @rule(data=st.data())
    def within_around_an_entry(self, data: st.DataObject) -> None:
        """Query ranges just above, at and below an existing entry."""
        bits = data.draw(st.sampled_from([32, 128]))
        entries = sorted(self.models[bits].entries)
        if not entries:
            return
        network, prefixlen = data.draw(st.sampled_from(entries))
        query_len = data.draw(st.integers(1, bits))
        address = network + data.draw(st.sampled_from([0, 1])) * (
            last_of(bits, network, prefixlen) - network
        )
        self._check_within(bits, (mask(bits, address, query_len), query_len))

    @rule()
    def items_match(self) -> None:
        for bits, table in self.tables.items():
            assert sorted((n, p) for n, p, _ in table.items()) == sorted(self.models[bits].entries)
            assert {(n, p): v for n, p, v in table.items()} == self.models[bits].entries

    @invariant()
    def lengths_match(self) -> None:
        for bits, table in self.tables.items():
            assert len(table) == len(self.models[bits].entries)

    @invariant()
    def every_entry_looks_up_at_its_first_and_last_address(self) -> None:
        for bits, table in self.tables.items():
            model = self.models[bits]
            for network, prefixlen in model.entries:
                for address in (network, last_of(bits, network, prefixlen)):
                    assert table.lookup(address) == model.lookup(address)


@pytest.mark.parametrize(("merge_at", "directory_at"), [(3, 2), (3, 4096), (4096, 4096)])
def test_prefix_table_matches_reference(
    monkeypatch: pytest.MonkeyPatch, merge_at: int, directory_at: int
) -> None:
    monkeypatch.setattr(rbl.index.tables, "_MERGE_AT", merge_at)
    monkeypatch.setattr(rbl.index.tables, "_DIRECTORY_AT", directory_at)
    run_state_machine_as_test(
        PrefixTableMachine,
        settings=settings(
            max_examples=150,
            stateful_step_count=40,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )


# -- PrefixTable examples ---------------------------------------------------------------


def v4(text: str) -> tuple[int, int]:
    key = parse_ip_key(text)
    return key.network, key.prefixlen


def a4(text: str) -> int:
    return int(ipaddress.IPv4Address(text))


def v6(text: str) -> tuple[int, int]:
    key = parse_ip_key(text)
    assert key.family == 6
    return key.network, key.prefixlen


def test_longest_prefix_wins_and_exclusion_stops_the_search() -> None:
    table = PrefixTable(32)
    table.set(*v4("10.0.0.0/8"), 1)
    table.set(*v4("10.1.0.0/16"), EXCLUDED)
    table.set(*v4("10.1.2.0/24"), 2)
    table.set(*v4("10.1.2.3/32"), EXCLUDED)
    assert table.lookup(a4("10.9.9.9")) == 1
    assert table.lookup(a4("10.1.9.9")) == EXCLUDED
    assert table.lookup(a4("10.1.2.4")) == 2
    assert table.lookup(a4("10.1.2.3")) == EXCLUDED
    assert table.lookup(a4("11.0.0.0")) is None
    assert table.lookup(a4("9.255.255.255")) is None
    table.delete(*v4("10.1.2.0/24"))
    assert table.lookup(a4("10.1.2.4")) == EXCLUDED
    table.delete(*v4("10.1.0.0/16"))
    assert table.lookup(a4("10.1.2.4")) == 1
    assert len(table) == 2


def test_ipv6_nesting_of_a_48_a_64_and_excluded_addresses() -> None:
    """Trap listings by prefix: a /64 inside an escalated /48, an allowlisted /128 inside
    the /64, an allowlisted /64 inside the /48; delisting the /64 leaves the /48."""
    index = ZoneIndex(ZoneKind.IP)
    wide, narrow = Value(("127.0.0.2",), "wide"), Value(("127.0.0.2",), "narrow")
    index.set(parse_ip_key("2a01:4f8:1::/48"), wide)
    index.set(parse_ip_key("2a01:4f8:1:1::/64"), narrow)
    index.set(parse_ip_key("2a01:4f8:1:1::25"), None)  # allowlisted address
    index.set(parse_ip_key("2a01:4f8:1:7::/64"), None)  # allowlisted customer /64

    def answer(text: str) -> Value | None:
        return index.lookup(parse_ip_key(text))

    assert answer("2a01:4f8:1:1::5") == narrow
    assert answer("2a01:4f8:1:1::25") is None
    assert answer("2a01:4f8:1:1::26") == narrow
    assert answer("2a01:4f8:1:2::1") == wide
    assert answer("2a01:4f8:1:7::1") is None
    assert answer("2a01:4f8:2::1") is None
    assert index.v6.has_listing_within(*v6("2a01:4f8:1:7::/64")) is False
    index.delete(parse_ip_key("2a01:4f8:1:1::/64"))
    assert answer("2a01:4f8:1:1::5") == wide
    assert answer("2a01:4f8:1:1::25") is None  # the exclusion outlives the /64
    index.delete(parse_ip_key("2a01:4f8:1::/48"))
    assert answer("2a01:4f8:1:1::5") is None
    assert index.v6.covering(*v6("2a01:4f8:1:7::/64")) == EXCLUDED
    assert index.v6.covering(*v6("2a01:4f8:1::/48")) is None


def test_delete_of_absent_entry_is_a_no_op() -> None:
    table = PrefixTable(32)
    table.delete(*v4("192.0.2.0/24"))
    table.set(*v4("192.0.2.0/24"), 1)
    table.delete(*v4("192.0.2.0/25"))
    table.delete(*v4("192.0.3.0/24"))
    assert len(table) == 1
    assert table.lookup(a4("192.0.2.200")) == 1


def test_set_overrides_after_merge(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rbl.index.tables, "_MERGE_AT", 2)
    table = PrefixTable(32)
    for i in range(10):
        table.set(a4("192.0.2.0") + i, 32, i + 1)
    table.set(a4("192.0.2.5"), 32, 99)
    table.delete(a4("192.0.2.6"), 32)
    table.finish_load()
    assert [table.lookup(a4("192.0.2.0") + i) for i in range(11)] == [
        1, 2, 3, 4, 5, 99, None, 8, 9, 10, None,
    ]  # fmt: skip
    assert len(table) == 9


def test_value_ids_beyond_one_byte_survive_merges(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rbl.index.tables, "_MERGE_AT", 3)
    table = PrefixTable(32)
    values = [5, 255, 256, 65535, 65536, 2**32 - 1, 7]
    for i, value in enumerate(values):
        table.set(i << 8, 24, value)
    table.finish_load()
    assert [table.lookup((i << 8) + 1) for i in range(len(values))] == values


def test_has_listing_within_examples() -> None:
    table = PrefixTable(32)
    table.set(*v4("192.0.2.128/25"), 1)
    table.set(*v4("10.0.0.0/8"), 2)
    assert table.has_listing_within(*v4("192.0.0.0/16"))
    assert table.has_listing_within(*v4("192.0.2.0/24"))
    assert table.has_listing_within(*v4("192.0.2.128/25"))
    assert not table.has_listing_within(*v4("192.0.2.0/25"))
    assert not table.has_listing_within(*v4("192.0.3.0/24"))
    assert not table.has_listing_within(*v4("193.0.0.0/8"))
    # A covering listing makes every range inside it exist.
    assert table.has_listing_within(*v4("10.20.30.0/24"))
    assert table.has_listing_within(*v4("10.0.0.0/8"))
    table.delete(*v4("10.0.0.0/8"))
    assert not table.has_listing_within(*v4("10.20.30.0/24"))


def test_has_listing_within_ignores_lone_exclusions() -> None:
    table = PrefixTable(32)
    table.set(*v4("192.0.2.5/32"), EXCLUDED)
    assert not table.has_listing_within(*v4("192.0.2.0/24"))


def test_has_listing_within_respects_a_covering_exclusion() -> None:
    table = PrefixTable(32)
    table.set(*v4("10.0.0.0/8"), 1)
    table.set(*v4("10.1.0.0/16"), EXCLUDED)
    assert table.lookup(a4("10.1.2.3")) == EXCLUDED  # nothing in 10.1/16 is listed
    assert not table.has_listing_within(*v4("10.1.2.0/24"))
    assert table.has_listing_within(*v4("10.0.0.0/8"))
    assert table.has_listing_within(*v4("10.2.0.0/16"))
    table.set(*v4("10.1.2.128/25"), 2)  # a listing back inside the exclusion
    assert table.has_listing_within(*v4("10.1.0.0/16"))
    assert table.has_listing_within(*v4("10.1.2.0/24"))
    assert not table.has_listing_within(*v4("10.1.2.0/25"))


def test_has_listing_within_exclusion_of_the_queried_prefix() -> None:
    table = PrefixTable(32)
    table.set(*v4("10.0.0.0/8"), 1)
    table.set(*v4("10.1.0.0/16"), EXCLUDED)
    assert not table.has_listing_within(*v4("10.1.0.0/16"))


@pytest.mark.parametrize("merge", [False, True])
def test_has_listing_within_range_ends(merge: bool) -> None:
    table = PrefixTable(32)
    table.set(*v4("192.0.2.255/32"), 1)
    table.set(*v4("192.0.4.0/32"), 1)
    table.set(*v4("10.255.255.255/32"), 1)
    if merge:
        table.finish_load()
    assert table.has_listing_within(*v4("192.0.2.0/24"))  # the entry at the range's end
    assert table.has_listing_within(*v4("192.0.4.0/24"))  # and at its start
    assert table.has_listing_within(*v4("10.0.0.0/8"))
    assert not table.has_listing_within(*v4("192.0.3.0/24"))
    assert not table.has_listing_within(*v4("192.0.2.0/25"))
    assert not table.has_listing_within(*v4("11.0.0.0/8"))
    table6 = PrefixTable(128)
    last = int(ipaddress.IPv6Address("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"))
    table6.set(last, 128, 1)
    if merge:
        table6.finish_load()
    assert table6.has_listing_within(int(ipaddress.IPv6Address("2001:db8::")), 32)
    assert not table6.has_listing_within(int(ipaddress.IPv6Address("2001:db9::")), 32)


# -- bulk loading ------------------------------------------------------------------------


@st.composite
def bulk_entries(draw: st.DrawFn, bits: int) -> list[tuple[int, int, int]]:
    items = draw(
        st.lists(st.tuples(networks(bits), st.sampled_from(VALUES)), min_size=0, max_size=40)
    )
    return [(network, prefixlen, value) for (network, prefixlen), value in items]


def expected_after(entries: Iterable[tuple[int, int, int]]) -> dict[Entry, int]:
    model: dict[Entry, int] = {}
    for network, prefixlen, value in entries:
        model[network, prefixlen] = value  # the last one wins
    return model


@pytest.mark.parametrize("bits", [32, 128])
@pytest.mark.parametrize(("merge_at", "directory_at"), [(3, 2), (4096, 4096)])
@settings(max_examples=150, deadline=None)
@given(data=st.data(), presort=st.booleans())
def test_bulk_load(
    bits: int, merge_at: int, directory_at: int, data: st.DataObject, presort: bool
) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rbl.index.tables, "_MERGE_AT", merge_at)
        patch.setattr(rbl.index.tables, "_DIRECTORY_AT", directory_at)
        entries = data.draw(bulk_entries(bits))
        if presort:
            entries.sort(key=lambda entry: (entry[1], entry[0]))  # stable: duplicates keep order
        table = PrefixTable(bits)
        for entry in entries:
            table.load(*entry)
        table.finish_load()
        model = RefPrefixTable(bits)
        model.entries = expected_after(entries)
        assert {(n, p): v for n, p, v in table.items()} == model.entries
        assert len(table) == len(model.entries)
        for address in data.draw(st.lists(addresses(bits), max_size=20)) + [
            n for n, _ in model.entries
        ]:
            assert table.lookup(address) == model.lookup(address)
        # Changes after the load still apply on top of the loaded arrays.
        for (network, prefixlen), value in data.draw(
            st.lists(st.tuples(networks(bits), st.sampled_from(VALUES)), max_size=10)
        ):
            table.set(network, prefixlen, value)
            model.entries[network, prefixlen] = value
        for network, prefixlen in list(model.entries)[::3]:
            table.delete(network, prefixlen)
            del model.entries[network, prefixlen]
        for address in [n for n, _ in model.entries] + [
            last_of(bits, n, p) + 1 for n, p in model.entries if last_of(bits, n, p) + 1 < 2**bits
        ]:
            assert table.lookup(address) == model.lookup(address)
        assert len(table) == len(model.entries)


# -- DomainTable -------------------------------------------------------------------------


def test_exact_and_subtree_matching() -> None:
    table = DomainTable()
    table.set(b"example.com", False, 1)
    table.set(b"example.net", True, 2)
    assert table.lookup(b"example.com") == 1
    assert table.lookup(b"www.example.com") is None
    assert table.lookup(b"example.net") is None  # *.name does not cover name itself
    assert table.lookup(b"www.example.net") == 2
    assert table.lookup(b"a.b.c.example.net") == 2
    assert table.lookup(b"xexample.net") is None
    assert table.lookup(b"net") is None


def test_most_specific_wins() -> None:
    table = DomainTable()
    table.set(b"example.com", True, 1)
    table.set(b"sub.example.com", True, 2)
    table.set(b"host.sub.example.com", False, 3)
    assert table.lookup(b"sub.example.com") == 1
    assert table.lookup(b"a.sub.example.com") == 2
    assert table.lookup(b"b.a.sub.example.com") == 2
    assert table.lookup(b"host.sub.example.com") == 3
    assert table.lookup(b"x.host.sub.example.com") == 2


def test_domain_exclusions() -> None:
    table = DomainTable()
    table.set(b"example.com", True, 1)
    table.set(b"good.example.com", False, EXCLUDED)
    table.set(b"safe.example.com", True, EXCLUDED)
    assert table.lookup(b"good.example.com") == EXCLUDED
    assert table.lookup(b"x.good.example.com") == 1  # an exact exclusion is only that name
    assert table.lookup(b"safe.example.com") == 1
    assert table.lookup(b"x.safe.example.com") == EXCLUDED
    assert table.lookup(b"y.x.safe.example.com") == EXCLUDED
    assert not table.has_listing_below(b"safe.example.com")
    assert table.has_listing_below(b"example.com")


def test_has_listing_below_and_refcounts() -> None:
    table = DomainTable()
    table.set(b"a.b.example.com", False, 1)
    table.set(b"c.b.example.com", False, 2)
    table.set(b"x.example.org", True, 3)
    for name in (b"b.example.com", b"example.com", b"com", b"x.example.org", b"org"):
        assert table.has_listing_below(name), name
    for name in (b"a.b.example.com", b"example.net", b"y.x.example.org", b"b"):
        assert not table.has_listing_below(name), name
    # Relisting with another value does not count twice.
    table.set(b"a.b.example.com", False, 5)
    table.delete(b"c.b.example.com", False)
    assert table.has_listing_below(b"b.example.com")
    table.delete(b"a.b.example.com", False)
    assert not table.has_listing_below(b"b.example.com")
    assert not table.has_listing_below(b"com")
    # Excluding a listed name takes it out of the counts; deleting the exclusion is a no-op.
    table.set(b"x.example.org", True, EXCLUDED)
    assert not table.has_listing_below(b"x.example.org")
    assert not table.has_listing_below(b"org")
    table.delete(b"x.example.org", True)
    table.delete(b"never.example", False)
    assert len(table) == 0
    assert table._below == {}  # every reference count went back to zero


class DomainTableMachine(RuleBasedStateMachine):
    NAMES = (
        b"com",
        b"example.com",
        b"a.example.com",
        b"b.example.com",
        b"x.a.example.com",
        b"y.x.a.example.com",
        b"example.net",
        b"a.example.net",
    )

    def __init__(self) -> None:
        super().__init__()
        self.table = DomainTable()
        self.model: dict[tuple[bytes, bool], int] = {}

    @rule(name=st.sampled_from(NAMES), subdomains=st.booleans(), value=st.sampled_from(VALUES))
    def set(self, name: bytes, subdomains: bool, value: int) -> None:
        self.table.set(name, subdomains, value)
        self.model[name, subdomains] = value

    @rule(name=st.sampled_from(NAMES), subdomains=st.booleans())
    def delete(self, name: bytes, subdomains: bool) -> None:
        self.table.delete(name, subdomains)
        self.model.pop((name, subdomains), None)

    def ref_lookup(self, name: bytes) -> int | None:
        if (name, False) in self.model:
            return self.model[name, False]
        labels = name.split(b".")
        for i in range(1, len(labels)):
            found = self.model.get((b".".join(labels[i:]), True))
            if found is not None:
                return found
        return None

    def ref_below(self, name: bytes) -> bool:
        for (entry, subdomains), value in self.model.items():
            if value == EXCLUDED:
                continue
            if subdomains and (entry == name or entry.endswith(b"." + name)):
                return True
            if not subdomains and entry.endswith(b"." + name):
                return True
        return False

    @invariant()
    def matches_reference(self) -> None:
        for name in (*self.NAMES, b"z.y.x.a.example.com", b"q.example.com", b"org"):
            assert self.table.lookup(name) == self.ref_lookup(name), name
            assert self.table.has_listing_below(name) == self.ref_below(name), name
        assert len(self.table) == len(self.model)
        if not any(value != EXCLUDED for value in self.model.values()):
            assert self.table._below == {}


TestDomainTable = DomainTableMachine.TestCase
TestDomainTable.settings = settings(max_examples=150, stateful_step_count=30, deadline=None)


# -- ZoneIndex ---------------------------------------------------------------------------

LISTED = Value(("127.0.0.2", "127.0.0.4"), "own {key}")


def test_fresh_ip_index_has_the_rfc5782_test_points() -> None:
    index = ZoneIndex(ZoneKind.IP)
    assert index.lookup(parse_ip_key("127.0.0.2")) == TEST_VALUE
    assert index.lookup(parse_ip_key("127.0.0.1")) is None
    assert index.v4.lookup(a4("127.0.0.1")) == EXCLUDED
    assert index.lookup(parse_ip_key("::ffff:7f00:2")) == TEST_VALUE
    assert index.lookup(parse_ip_key("::ffff:7f00:1")) is None
    assert index.lookup(parse_ip_key("127.0.0.3")) is None
    assert TEST_VALUE.codes == ("127.0.0.2",)
    assert len(index) == 4


def test_fresh_domain_index_has_the_rfc5782_test_names() -> None:
    index = ZoneIndex(ZoneKind.DOMAIN)
    assert index.lookup(parse_domain_key("test")) == TEST_VALUE
    assert index.lookup(parse_domain_key("invalid")) is None
    assert index.domains.lookup(b"invalid") == EXCLUDED
    assert index.lookup(parse_domain_key("example.com")) is None
    assert len(index) == 2


@pytest.mark.parametrize("bulk", [False, True])
@pytest.mark.parametrize(
    "text", ["127.0.0.2", "127.0.0.1", "127.0.0.0/24", "127.0.0.0/8", "::ffff:7f00:0/120"]
)
def test_ip_test_points_cannot_be_changed(text: str, bulk: bool) -> None:
    index = ZoneIndex(ZoneKind.IP)
    key = parse_ip_key(text)
    index.set(key, LISTED, bulk=bulk)
    index.set(key, None, bulk=bulk)
    index.finish_load()
    index.delete(key)
    assert index.lookup(parse_ip_key("127.0.0.2")) == TEST_VALUE
    assert index.lookup(parse_ip_key("127.0.0.1")) is None
    assert index.lookup(parse_ip_key("127.0.0.3")) is None
    assert index.lookup(parse_ip_key("::ffff:7f00:2")) == TEST_VALUE
    assert index.lookup(parse_ip_key("::ffff:7f00:1")) is None
    assert len(index) == 4


@pytest.mark.parametrize("text", ["test", "invalid"])
def test_domain_test_points_cannot_be_changed(text: str) -> None:
    index = ZoneIndex(ZoneKind.DOMAIN)
    key = parse_domain_key(text)
    index.set(key, LISTED)
    index.set(key, None)
    index.delete(key)
    assert index.lookup(parse_domain_key("test")) == TEST_VALUE
    assert index.lookup(parse_domain_key("invalid")) is None
    # Subdomains of the test names are ordinary keys.
    index.set(parse_domain_key("*.invalid"), LISTED)
    assert index.lookup(parse_domain_key("x.invalid")) == LISTED
    assert index.lookup(parse_domain_key("invalid")) is None


def test_zone_index_set_lookup_delete_and_interning() -> None:
    index = ZoneIndex(ZoneKind.IP)
    index.set(parse_ip_key("192.0.2.0/24"), LISTED)
    index.set(parse_ip_key("2001:db8::/64"), Value(("127.0.0.2", "127.0.0.4"), "own {key}"))
    index.set(parse_ip_key("192.0.2.7"), None)
    assert index.lookup(parse_ip_key("192.0.2.1")) == LISTED
    assert index.lookup(parse_ip_key("192.0.2.7")) is None
    assert index.lookup(parse_ip_key("2001:db8::ffff")) == LISTED
    assert index.lookup(parse_ip_key("2001:db8:0:1::")) is None
    assert index.values.count(LISTED) == 1  # equal values share one id
    assert index.values[0] is None
    assert len(index) == 4 + 3
    index.delete(parse_ip_key("192.0.2.0/24"))
    assert index.lookup(parse_ip_key("192.0.2.1")) is None
    assert len(index) == 4 + 2


def test_load_entries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(rbl.index.tables, "_MERGE_AT", 3)
    other = Value(("127.0.0.3",))
    entries: list[tuple[Any, Value | None]] = [
        (parse_ip_key("198.51.100.0/24"), LISTED),
        (parse_ip_key("192.0.2.0/24"), other),  # out of order
        (parse_ip_key("127.0.0.2"), None),  # a test point: ignored
        (parse_ip_key("192.0.2.9"), None),
        (parse_ip_key("2001:db8::/32"), other),
        (parse_ip_key("10.0.0.0/8"), LISTED),
        (parse_ip_key("10.0.0.1"), LISTED),
    ]
    index = ZoneIndex(ZoneKind.IP)
    assert load_entries(index, entries) == len(entries)
    assert index.lookup(parse_ip_key("198.51.100.1")) == LISTED
    assert index.lookup(parse_ip_key("192.0.2.1")) == other
    assert index.lookup(parse_ip_key("192.0.2.9")) is None
    assert index.lookup(parse_ip_key("10.0.0.1")) == LISTED
    assert index.lookup(parse_ip_key("2001:db8:1::1")) == other
    assert index.lookup(parse_ip_key("127.0.0.2")) == TEST_VALUE
    assert index.lookup(parse_ip_key("127.0.0.1")) is None
    assert len(index) == 4 + 6


def test_load_entries_domains() -> None:
    index = ZoneIndex(ZoneKind.DOMAIN)
    count = load_entries(
        index,
        [
            (parse_domain_key("*.example.com"), LISTED),
            (parse_domain_key("ok.example.com"), None),
            (parse_domain_key("test"), None),
        ],
    )
    assert count == 3
    assert index.lookup(parse_domain_key("a.example.com")) == LISTED
    assert index.lookup(parse_domain_key("ok.example.com")) is None
    assert index.lookup(parse_domain_key("test")) == TEST_VALUE
    assert index.domains.has_listing_below(b"example.com")
