"""The records an IXFR deletes and adds: a condensed history as zone records. Pure.

Given the zone's index now and, per changed key, its state at the client's
serial and now (rbl.zonedata.history), the records of the zone then and now
are generated only where a change can show, with the generator every AXFR
and zone-file dump uses (rbl.zonedata.records), so the difference is exactly
what two AXFRs would differ by:

* IP zones: an entry's records depend on its value and the entries
  immediately inside it (cut out as holes). A changed key therefore re-renders
  itself and the nearest entry holding it, in either state. Cost: the
  changes, plus the entries inside those networks.
* domain zones: a name's records (and the wildcard repairs below a listed
  ``*.name``, rbl.zonedata.names.wildcard_shadows) depend only on the names at
  or below the outermost ``*.ancestor`` entry above it, so each change
  re-renders that subtree. When such a subtree holds more than the changed
  name, its names are found by one pass over the zone's names.

Imports nothing from rbl.store or rbl.dnsserver.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping

from rbl.config import ZoneSettings
from rbl.index.tables import EXCLUDED, PrefixTable, Value, ZoneIndex
from rbl.model.keys import MAX_PREFIXLEN, DomainKey, IpKey, ListingKey, ZoneKind
from rbl.zonedata.history import EXCLUSION, State
from rbl.zonedata.names import ip_text
from rbl.zonedata.records import Record, Records
from rbl.zonedata.view import IpEntry, ZoneView

Changes = Mapping[ListingKey, tuple[State, State]]
_THEN = 0  # index of the state at the client's serial in a change pair


def difference(
    settings: ZoneSettings, index: ZoneIndex, changes: Changes
) -> tuple[list[Record], list[Record]]:
    """(records to delete, records to add) taking the zone from then to now."""
    renderer = _Renderer(settings)
    then: list[Record] = []
    now: list[Record] = []
    if settings.kind is ZoneKind.IP:
        for family, table in ((4, index.v4), (6, index.v6)):
            mine = {k: pair for k, pair in changes.items() if isinstance(k, IpKey)}
            family_changes = {
                (k.network, k.prefixlen): pair for k, pair in mine.items() if k.family == family
            }
            if family_changes:
                states = _IpStates(family, table, index.values, family_changes)
                then += states.records(renderer, then=True)
                now += states.records(renderer, then=False)
    else:
        domain_changes = {k: pair for k, pair in changes.items() if isinstance(k, DomainKey)}
        if domain_changes:
            then, now = _domain_records(renderer, index, domain_changes)
    return _minus(then, now), _minus(now, then)


def _minus(these: Iterable[Record], those: Iterable[Record]) -> list[Record]:
    """Records of ``these`` whose (owner, type, value) is not in ``those``, in order."""
    seen = {record[:3] for record in those}
    out: list[Record] = []
    for record in these:
        if record[:3] not in seen:
            seen.add(record[:3])
            out.append(record)
    return out


class _Renderer:
    """Records of entries given as states, through one small view (values interned)."""

    def __init__(self, settings: ZoneSettings) -> None:
        self.values: list[Value | None] = [None]
        self._ids: dict[Value, int] = {}
        self.view = ZoneView(settings, self.values, [], [], {}, {})
        self.records = Records(self.view)

    def vid(self, state: State) -> int:
        if state is None or state == EXCLUSION:
            return EXCLUDED
        found = self._ids.get(state)
        if found is None:
            found = self._ids[state] = len(self.values)
            self.values.append(state)
        return found

    def domains(self, exact: dict[str, State], subtree: dict[str, State]) -> list[Record]:
        view = ZoneView(
            self.view.settings,
            self.values,
            [],
            [],
            {name: self.vid(state) for name, state in exact.items()},
            {name: self.vid(state) for name, state in subtree.items()},
        )
        records = Records(view)
        records.texts = self.records.texts  # formatted texts are shared between the views
        return list(records.all())


class _IpStates:
    """One family's entries then and now: the index, with the changed keys' old states."""

    def __init__(
        self,
        family: int,
        table: PrefixTable,
        values: list[Value | None],
        changes: dict[tuple[int, int], tuple[State, State]],
    ) -> None:
        self.family = family
        self.bits = MAX_PREFIXLEN[family]
        self.table = table
        self.values = values
        self.changes = changes
        self.sorted = sorted(changes)  # (network, prefix length), for range lookups
        self.prefixlens = sorted(set(table.prefixlens()) | {p for _n, p in changes}, reverse=True)

    def state(self, network: int, prefixlen: int, *, then: bool) -> State:
        if then:
            pair = self.changes.get((network, prefixlen))
            if pair is not None:
                return pair[_THEN]
        vid = self.table.get(network, prefixlen)
        if vid is None:
            return None
        return EXCLUSION if vid == EXCLUDED else self.values[vid]

    def parent(self, network: int, prefixlen: int, *, then: bool) -> tuple[int, int] | None:
        """The nearest entry holding ``network/prefixlen``."""
        bits = self.bits
        for length in self.prefixlens:
            if length < prefixlen:
                outer = network & (((1 << length) - 1) << (bits - length))
                if self.state(outer, length, then=then) is not None:
                    return outer, length
        return None

    def affected(self) -> set[tuple[int, int]]:
        """The changed keys and the entries holding them, then or now."""
        found = set(self.changes)
        for network, prefixlen in self.changes:
            for then in (True, False):
                outer = self.parent(network, prefixlen, then=then)
                if outer is not None:
                    found.add(outer)
        return found

    def children(self, network: int, prefixlen: int, *, then: bool) -> tuple[tuple[int, int], ...]:
        """The entries immediately inside ``network/prefixlen``, in address order."""
        inside = {(n, p) for n, p, _vid in self.table.entries_within(network, prefixlen)}
        if then:
            last = network | ((1 << (self.bits - prefixlen)) - 1)
            low = bisect_left(self.sorted, (network, 0))
            high = bisect_right(self.sorted, (last, self.bits))
            for key in self.sorted[low:high]:
                if key[1] <= prefixlen:
                    continue
                if self.changes[key][_THEN] is None:
                    inside.discard(key)
                else:
                    inside.add(key)
        outermost: list[tuple[int, int]] = []
        end = -1
        for n, p in sorted(inside):
            if n > end:
                outermost.append((n, p))
                end = n | ((1 << (self.bits - p)) - 1)
        return tuple(outermost)

    def records(self, renderer: _Renderer, *, then: bool) -> list[Record]:
        entries: list[IpEntry] = []
        for network, prefixlen in sorted(self.affected()):
            state = self.state(network, prefixlen, then=then)
            if state is None or state == EXCLUSION:
                continue
            entries.append(
                IpEntry(
                    self.family,
                    network,
                    prefixlen,
                    renderer.vid(state),
                    self.children(network, prefixlen, then=then),
                    ip_text(self.family, network, prefixlen),
                )
            )
        return renderer.records.of_entries(entries)


def _ancestors(name: str) -> list[str]:
    """The names strictly above ``name``, nearest first."""
    parts = name.split(".")
    return [".".join(parts[i:]) for i in range(1, len(parts))]


def _domain_records(
    renderer: _Renderer, index: ZoneIndex, changes: dict[DomainKey, tuple[State, State]]
) -> tuple[list[Record], list[Record]]:
    domains = index.domains
    values = index.values

    def current(table: dict[bytes, int], name: str) -> State:
        vid = table.get(name.encode("ascii"))
        if vid is None:
            return None
        return EXCLUSION if vid == EXCLUDED else values[vid]

    changed_wildcards = {key.name for key in changes if key.subdomains}

    def has_wildcard(name: str) -> bool:
        return name in changed_wildcards or name.encode("ascii") in domains.subtree

    # Each change re-renders the subtree of its outermost *.ancestor (or its own name).
    roots: set[str] = set()
    for key in changes:
        root = key.name
        for ancestor in _ancestors(key.name):
            if has_wildcard(ancestor):
                root = ancestor
        roots.add(root)
    roots = {r for r in roots if not any(a in roots for a in _ancestors(r))}

    def root_of(name: str) -> str | None:
        if name in roots:
            return name
        for ancestor in _ancestors(name):
            if ancestor in roots:
                return ancestor
        return None

    members: dict[str, list[DomainKey]] = {root: [] for root in roots}
    for key in changes:
        found = root_of(key.name)
        assert found is not None
        members[found].append(key)

    def listed(state: State) -> bool:
        return state is not None and state != EXCLUSION

    # A subtree holding no listing but (perhaps) its root's own name: just that name.
    scan: set[str] = set()
    for root, keys in members.items():
        below = domains.has_listing_below(root.encode("ascii"))
        others = any(listed(changes[k][_THEN]) for k in keys if k.subdomains or k.name != root)
        if below or others:
            scan.add(root)
    found_names: dict[str, set[DomainKey]] = {root: set() for root in roots}
    if scan:  # one pass over the zone's names for the subtrees that need it
        for table, wildcard in ((domains.exact, False), (domains.subtree, True)):
            for raw in table:
                name = raw.decode("ascii")
                holder = root_of(name)
                if holder is not None and holder in scan:
                    found_names[holder].add(DomainKey(name, wildcard))
    for root in roots:
        found_names[root].update(members[root])
        found_names[root].add(DomainKey(root, False))
        found_names[root].add(DomainKey(root, True))

    then_records: list[Record] = []
    now_records: list[Record] = []
    for root in sorted(roots):
        for then, out in ((True, then_records), (False, now_records)):
            exact: dict[str, State] = {}
            subtree: dict[str, State] = {}
            for key in found_names[root]:
                pair = changes.get(key)
                if then and pair is not None:
                    state = pair[_THEN]
                else:
                    state = current(domains.subtree if key.subdomains else domains.exact, key.name)
                if state is not None:
                    (subtree if key.subdomains else exact)[key.name] = state
            out += renderer.domains(exact, subtree)
    return then_records, now_records
