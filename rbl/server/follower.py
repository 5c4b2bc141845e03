"""Keeps the DNS zones in step with the store: the start-up snapshot, then the change log.

Pure bookkeeping: the rows arrive from whoever read them (``load_index`` at
start, a thread-pool job of rbl.server.changes after), so this imports neither
SQLAlchemy nor Twisted. Every process
that follows the same change log converges on the same answers and serials.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from rbl.dnsserver.zone import Zone
from rbl.errors import KeyFormatError
from rbl.index.tables import Value, ZoneIndex
from rbl.model.changes import OP_DELETE, OP_EXCLUDE, OP_SET, OP_SETTINGS, OP_UNEXCLUDE
from rbl.model.keys import parse_key
from rbl.policy.trapfilter import NO_TRAPS, TrapFilter
from rbl.zonedata.history import key_state
from rbl.zonedata.snapshot import (
    AllowRow,
    IpLevel,
    LevelRows,
    RowValues,
    exclusion_keys,
    load_ip_levels,
    load_rows,
)

if TYPE_CHECKING:
    from rbl.config import Settings, ZoneSettings
    from rbl.store.reader import Change, DomainRow, IpRow, ListingReader

LISTING_OPS = (OP_SET, OP_DELETE, OP_EXCLUDE, OP_UNEXCLUDE)  # the ops the IXFR history follows


class IndexFollower:
    """Applies snapshot rows and change-log rows to the zones it serves."""

    def __init__(
        self, zones: Mapping[str, Zone], on_serial: Callable[[Zone], None] | None = None
    ) -> None:
        self.zones = dict(zones)
        self.on_serial = on_serial  # called after a zone's serial moved (NOTIFY)
        self.position = 0
        self.skipped = 0  # rows for unknown zones or with unparseable keys
        self._values = RowValues(NO_TRAPS)

    @property
    def traps(self) -> TrapFilter:
        """TXT templates are public: a trap named in one becomes [redacted]. Set from
        the store's trap list with each snapshot (load_index)."""
        return self._values.traps

    @traps.setter
    def traps(self, traps: TrapFilter) -> None:
        self._values.traps = traps

    def _value(self, codes: str | None, txt: str | None) -> Value:
        return self._values(codes, txt)

    def load_snapshot(
        self,
        ip_levels: Iterable[IpLevel],
        level_rows: LevelRows,
        domain_rows: Iterable[DomainRow],
        positions: Mapping[str, int],
        position: int,
        allow_rows: Iterable[AllowRow] = (),
    ) -> int:
        """Bulk-load active listings; ``positions`` must be read before the rows were.

        IP listings come as levels read whole, ``level_rows`` giving the rows of those
        that are not (``load_ip_levels``); the rest goes in through
        ``rbl.zonedata.snapshot.load_rows``, as ``rbl dump``'s do.
        """
        indexes = {name: zone.index for name, zone in self.zones.items()}
        loaded, skipped = load_ip_levels(indexes, ip_levels, level_rows, self._value)
        more, passed = load_rows(indexes, (), domain_rows, allow_rows, self._value)
        loaded, skipped = loaded + more, skipped + passed
        self.skipped += skipped
        for name, served in self.zones.items():
            served.values_changed()
            served.set_serial(positions.get(name, 0))
            served.history.reset(positions.get(name, 0), "rbl loaded a snapshot (start)")
        self.position = position
        return loaded

    def _exclude(self, zone: Zone, key_text: str, *, exclude: bool) -> None:
        """An allowlist entry: never answers as listed, nor anything below a domain."""
        keys = exclusion_keys(zone.settings.kind, key_text)
        for each in keys:
            if exclude:
                zone.index.set(each, None)
            else:
                zone.index.delete(each)

    def _settings_recorded(self, zone: Zone, change: Change) -> None:
        """A node recorded new served settings for the zone (rbl.store.settingslog): no
        listing changed, but what the zone serves did (TTL, SOA, NS, TXT...), here or on
        the nodes that reloaded. The serial moves to this row (``apply``), and the IXFR
        history starts again there; ``agrees`` tells whether this node serves those
        settings."""
        zone.recorded = change.key

    def apply(self, changes: Sequence[Change]) -> int:
        """Apply change-log rows in order; returns how many touched a served zone.

        Each key's state before and after goes into the zone's history (IXFR);
        a row of another kind starts the history again after it.
        """
        touched: dict[str, int] = {}
        restart: dict[str, str] = {}
        applied = 0
        for change in changes:
            self.position = max(self.position, change.id)
            zone = self.zones.get(change.zone)
            if zone is None:
                continue
            if change.op == OP_SETTINGS:  # the zone's content changed, no listing did
                self._settings_recorded(zone, change)
                restart[change.zone] = (
                    f"change-log row {change.id} is a {change.op!r}: new zone settings"
                )
                touched[change.zone] = change.id
                applied += 1
                continue
            try:
                key = parse_key(zone.settings.kind, change.key)
            except KeyFormatError:
                self.skipped += 1
                continue
            keys = [key]
            if change.op in (OP_EXCLUDE, OP_UNEXCLUDE):
                keys = exclusion_keys(zone.settings.kind, change.key)
            before = [key_state(zone.index, each) for each in keys]
            if change.op == OP_SET:
                zone.index.set(key, self._value(change.codes, change.txt))
            elif change.op in (OP_EXCLUDE, OP_UNEXCLUDE):
                self._exclude(zone, change.key, exclude=change.op == OP_EXCLUDE)
            else:
                zone.index.delete(key)
            if change.op in LISTING_OPS:
                for each, old in zip(keys, before, strict=True):
                    zone.history.record(change.id, each, old, key_state(zone.index, each))
            else:
                restart[change.zone] = f"change-log row {change.id} is a {change.op!r}"
            touched[change.zone] = change.id
            applied += 1
        for name, last in touched.items():
            zone = self.zones[name]
            zone.set_serial(last)
            if name in restart:
                zone.history.reset(last, restart[name])
            else:
                zone.history.reached(last)
            if self.on_serial is not None:
                self.on_serial(zone)
        return applied


@dataclass
class LoadReport:
    listings: int
    seconds: float
    position: int


def build_zones(settings: Settings) -> dict[str, Zone]:
    zones = {z.name: Zone(z, ZoneIndex(z.kind)) for z in settings.zones}
    for zone in zones.values():
        zone.history.resize(settings.transfer.ixfr_history)
    return zones


def load_index(reader: ListingReader, follower: IndexFollower) -> LoadReport:
    """Read the change-log position, then every active listing, into the follower's zones."""
    started = time.monotonic()
    follower.traps = reader.trap_filter()  # TXT texts are public: traps redacted
    zones = list(follower.zones)
    position, positions = reader.zone_positions(zones)  # before the rows: replayed after
    # After the positions: a settings row written in between is replayed after the snapshot.
    recorded = reader.settings_fingerprints()
    for name, zone in follower.zones.items():
        zone.recorded = recorded.get(name)
    levels = reader.ip_levels(zones)  # each level read whole; the rows of mixed ones below
    levels.reverse()

    def each_level() -> Iterator[IpLevel]:  # each level's bytes freed once loaded
        while levels:
            yield levels.pop()

    def level_rows(zone: str, family: int, prefixlen: int) -> Iterator[IpRow]:
        return reader.iter_ip_rows([zone], (family, prefixlen))

    count = follower.load_snapshot(
        each_level(),
        level_rows,
        reader.iter_domain_rows(zones),
        positions,
        position,
        reader.iter_allowlist(),
    )
    return LoadReport(count, time.monotonic() - started, position)


def check_zone_texts(traps: TrapFilter, zones: Iterable[ZoneSettings], where: str = "") -> None:
    """TrapTextError when a zone's own TXT or lookup URL names a trap: they go out unfiltered."""
    for zone in zones:
        for item, text in (("txt", zone.txt), ("lookup_url", zone.lookup_url)):
            traps.check(text, f"{where}zone {zone.name} {item}")
