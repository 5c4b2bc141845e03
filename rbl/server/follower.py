"""Keeps the DNS zones in step with the store: the start-up snapshot, then the change log.

Pure bookkeeping: the rows arrive from whoever read them (a thread-pool job in
``rbl serve``), so this imports neither SQLAlchemy nor Twisted. Every process
that follows the same change log converges on the same answers and serials.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from rbl.dnsserver.zone import Zone
from rbl.errors import KeyFormatError
from rbl.index.tables import Value
from rbl.model.changes import OP_EXCLUDE, OP_SET, OP_UNEXCLUDE
from rbl.model.keys import DomainKey, IpKey, ListingKey, parse_key, test_point_conflict
from rbl.policy.trapfilter import NO_TRAPS, TrapFilter

if TYPE_CHECKING:
    from rbl.store.reader import Change, DomainRow, IpRow

_V4_TEST_NET = 127


def is_test_point(family: int, network: int, prefixlen: int) -> bool:
    """Would this network touch an RFC 5782 test address? (Cheap test first.)"""
    if family == 4 and network >> 24 != _V4_TEST_NET and prefixlen >= 8:
        return False
    return test_point_conflict(IpKey(family, network, prefixlen)) is not None


class IndexFollower:
    """Applies snapshot rows and change-log rows to the zones it serves."""

    def __init__(
        self, zones: Mapping[str, Zone], on_serial: Callable[[Zone], None] | None = None
    ) -> None:
        self.zones = dict(zones)
        self.on_serial = on_serial  # called after a zone's serial moved (NOTIFY)
        self.position = 0
        self.skipped = 0  # rows for unknown zones or with unparseable keys
        self._codes: dict[str, tuple[str, ...]] = {}
        # TXT templates are public: a trap named in one becomes [redacted]. Set from
        # the store's trap list with each snapshot (rbl.server.service.load_index).
        self.traps: TrapFilter = NO_TRAPS

    def _value(self, codes: str | None, txt: str | None) -> Value:
        parsed = self._codes.get(codes or "")
        if parsed is None:
            parsed = self._codes[codes or ""] = tuple((codes or "127.0.0.2").split(","))
        return Value(parsed, None if txt is None else self.traps.redact(txt))

    def load_snapshot(
        self,
        ip_rows: Iterable[IpRow],
        domain_rows: Iterable[DomainRow],
        positions: Mapping[str, int],
        position: int,
        allow_rows: Iterable[tuple[str, int, int, bytes | None]] = (),
    ) -> int:
        """Bulk-load active listings; ``positions`` must be read before the rows were.

        IP rows arrive sorted (zone, family, prefix length, network), so each
        goes straight onto the end of its level's arrays: about 1.5 us a row.
        """
        loaded = 0
        vids: dict[tuple[str, str, str | None], int] = {}
        current: tuple[str, int, int] | None = None
        level: Any = None
        zone: Zone | None = None
        for zone_name, family, prefixlen, network_bytes, codes, txt in ip_rows:
            if current != (zone_name, family, prefixlen):
                current = (zone_name, family, prefixlen)
                zone = self.zones.get(zone_name)
                if zone is not None:
                    table = zone.index.v4 if family == 4 else zone.index.v6
                    level = table.level(prefixlen)
            if zone is None:
                continue
            vid = vids.get((zone_name, codes, txt))
            if vid is None:
                vid = vids[(zone_name, codes, txt)] = zone.index.value_id(self._value(codes, txt))
            network = int.from_bytes(network_bytes, "big")
            if is_test_point(family, network, prefixlen):
                self.skipped += 1
                continue
            if not level.append_sorted(network, vid):
                level.put(network, vid)
            loaded += 1
        for zone_name, key_text, codes, txt in domain_rows:
            zone = self.zones.get(zone_name)
            if zone is None:
                continue
            key = (
                DomainKey(key_text[2:], True)
                if key_text.startswith("*.")
                else DomainKey(key_text, False)
            )
            zone.index.set(key, self._value(codes, txt))
            loaded += 1
        for key_text, family, *_ in allow_rows:
            for zone in self.zones.values():
                if zone.is_ip == bool(family):  # IP entries for IP zones, domains for RHSBLs
                    self._exclude(zone, key_text, exclude=True)
        for name, served in self.zones.items():
            served.index.finish_load()
            served.values_changed()
            served.set_serial(positions.get(name, 0))
        self.position = position
        return loaded

    def _exclude(self, zone: Zone, key_text: str, *, exclude: bool) -> None:
        """An allowlist entry: never answers as listed, nor anything below a domain."""
        try:
            key = parse_key(zone.settings.kind, key_text)
        except KeyFormatError:
            return  # an entry of the other kind (IP vs domain): not for this zone
        keys: list[ListingKey] = [key]
        if isinstance(key, DomainKey) and not key.subdomains:
            keys.append(DomainKey(key.name, True))
        for each in keys:
            if exclude:
                zone.index.set(each, None)
            else:
                zone.index.delete(each)

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
            elif change.op in (OP_EXCLUDE, OP_UNEXCLUDE):
                self._exclude(zone, change.key, exclude=change.op == OP_EXCLUDE)
            else:
                zone.index.delete(key)
            touched[change.zone] = change.id
            applied += 1
        for name, last in touched.items():
            zone = self.zones[name]
            zone.set_serial(last)
            if self.on_serial is not None:
                self.on_serial(zone)
        return applied
