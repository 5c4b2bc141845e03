"""Keeps the DNS zones in step with the store: the start-up snapshot, then the change log.

Pure bookkeeping: the rows arrive from whoever read them (a thread-pool job in
``rbl serve``), so this imports neither SQLAlchemy nor Twisted. Every process
that follows the same change log converges on the same answers and serials.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

from rbl.dnsserver.zone import Zone
from rbl.errors import KeyFormatError
from rbl.index import Value
from rbl.keys import DomainKey, IpKey, ListingKey, parse_key

if TYPE_CHECKING:
    from rbl.store.changes import Change, SnapshotRow

OP_SET = "set"


class IndexFollower:
    """Applies snapshot rows and change-log rows to the zones it serves."""

    def __init__(self, zones: Mapping[str, Zone]) -> None:
        self.zones = dict(zones)
        self.position = 0
        self.skipped = 0  # rows for unknown zones or with unparseable keys
        self._codes: dict[str, tuple[str, ...]] = {}

    def _value(self, codes: str | None, txt: str | None) -> Value:
        parsed = self._codes.get(codes or "")
        if parsed is None:
            parsed = self._codes[codes or ""] = tuple((codes or "127.0.0.2").split(","))
        return Value(parsed, txt)

    def load_snapshot(
        self, rows: Iterable[SnapshotRow], positions: Mapping[str, int], position: int
    ) -> int:
        """Bulk-load active listings; ``position`` must be read before the rows were."""
        loaded = 0
        values: dict[tuple[str, str | None], Value] = {}
        for zone_name, family, prefixlen, network, key_text, codes, txt in rows:
            zone = self.zones.get(zone_name)
            if zone is None:
                continue
            value = values.get((codes, txt))
            if value is None:
                value = values[(codes, txt)] = self._value(codes, txt)
            key: ListingKey
            if family and network is not None:
                key = IpKey(family, int.from_bytes(network, "big"), prefixlen)
            elif key_text.startswith("*."):
                key = DomainKey(key_text[2:], True)
            else:
                key = DomainKey(key_text, False)
            zone.index.set(key, value, bulk=True)
            loaded += 1
        for name, zone in self.zones.items():
            zone.index.finish_load()
            zone.values_changed()
            zone.set_serial(positions.get(name, 0))
        self.position = position
        return loaded

    def apply(self, changes: Sequence[Change]) -> int:
        """Apply change-log rows in order; returns how many touched a served zone."""
        touched: dict[str, int] = {}
        applied = 0
        for change in changes:
            self.position = max(self.position, change.id)
            zone = self.zones.get(change.zone)
            if zone is None:
                continue
            try:
                key = parse_key(zone.settings.kind, change.key)
            except KeyFormatError:
                self.skipped += 1
                continue
            if change.op == OP_SET:
                zone.index.set(key, self._value(change.codes, change.txt))
            else:
                zone.index.delete(key)
            touched[change.zone] = change.id
            applied += 1
        for name, last in touched.items():
            self.zones[name].set_serial(last)
        return applied
