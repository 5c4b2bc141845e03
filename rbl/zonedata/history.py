"""What changed in a zone since a serial: the in-memory history IXFR answers from. Pure.

The change follower (rbl.server.follower) records, for every index key a
change-log row changes, the key's state before and after, against that row's
id; the zone's serial is the id of the last row it applied (Zone.set_serial).
``since(serial)`` condenses everything after a serial the zone had into one
(state then, state now) pair per key, so many changes to one key cost one
deletion and one addition (nothing when they cancel out). rbl.zonedata.difference
turns those pairs into records.

Only changed keys are held, at most ``limit`` of them (``[transfer]
ixfr_history``): the oldest are forgotten first and the horizon moves up. A
snapshot load (start, a reload after a change-log prune) or a row that is no
listing change starts the history again at the zone's serial, so a secondary
older than that gets a full transfer. Imports nothing from rbl.store or
rbl.dnsserver.
"""

from __future__ import annotations

from collections import deque
from typing import Final, NamedTuple

from rbl.index.tables import EXCLUDED, Value, ZoneIndex
from rbl.model.keys import ListingKey

DEFAULT_LIMIT: Final = 100_000
EXCLUSION: Final = Value(())  # an exclusion (allowlisted key): no listing has no codes
State = Value | None
"""A key's entry: its value, ``EXCLUSION``, or None for no entry at that key."""

_SERIAL_SPACE: Final = 1 << 32
NOT_IN_HISTORY: Final = "history"  # older than the history, or a serial the zone never had
AHEAD: Final = "ahead"  # a serial after the zone's
IXFR_OFF: Final = "off"  # [transfer] ixfr_history = 0


class NoDifference(NamedTuple):
    """Why an IXFR gets the whole zone: ``cause`` (a metric label) and ``text`` (the log)."""

    cause: str
    text: str


def serial_of(position: int) -> int:
    """The SOA serial of a change-log position, as Zone.set_serial makes it."""
    return position % _SERIAL_SPACE or 1


class ZoneHistory:
    """The changed keys of one zone since ``horizon``, oldest first, at most ``limit``."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self.limit = limit
        self.horizon = 0  # the change-log position the history answers from
        self.why_reset = "rbl started"  # why nothing older is known, for the transfer log
        self._changes: deque[tuple[int, ListingKey, State, State]] = deque()
        self._reached: dict[int, int] = {}  # serial -> position, for the serials since horizon
        self._order: deque[int] = deque()  # those positions, in order

    def __len__(self) -> int:
        return len(self._changes)

    def reset(self, position: int, why: str) -> None:
        """Forget everything: from now on the zone at ``position`` is the oldest known."""
        self._changes.clear()
        self._reached.clear()
        self._order.clear()
        self.horizon = position
        self.why_reset = why
        self.reached(position)

    def restart(self, why: str) -> None:
        """Forget everything before the zone's current serial."""
        self.reset(self._order[-1] if self._order else self.horizon, why)

    def resize(self, limit: int) -> None:
        """A new ``[transfer] ixfr_history`` (reload); 0 forgets everything."""
        self.limit = limit
        self._trim()

    def record(self, position: int, key: ListingKey, old: State, new: State) -> None:
        """The row at ``position`` changed ``key`` from ``old`` to ``new``."""
        if old == new or self.limit <= 0:
            return
        self._changes.append((position, key, old, new))
        if len(self._changes) > self.limit:
            self._trim()

    def reached(self, position: int) -> None:
        """The zone's serial moved to ``position`` (the last row of a batch)."""
        if self.limit <= 0:
            return
        serial = serial_of(position)
        if serial not in self._reached:
            self._order.append(position)
        self._reached[serial] = position

    def _trim(self) -> None:
        changes = self._changes
        if self.limit <= 0:
            changes.clear()
            self._reached.clear()
            self._order.clear()
            self.why_reset = "IXFR is off ([transfer] ixfr_history = 0)"
            return
        if len(changes) <= self.limit:
            return
        while len(changes) > self.limit:
            self.horizon = max(self.horizon, changes.popleft()[0])
        self.why_reset = f"more than {self.limit} changes since ([transfer] ixfr_history)"
        order, reached = self._order, self._reached
        while order and order[0] < self.horizon:
            reached.pop(serial_of(order.popleft()), None)

    def position_of(self, serial: int) -> int | None:
        """The position the zone had at ``serial``, if the history reaches back to it."""
        return self._reached.get(serial)

    def since(self, serial: int) -> dict[ListingKey, tuple[State, State]] | NoDifference:
        """Each key changed after ``serial``: (its state at ``serial``, its state now),
        only where they differ; or why the history cannot say."""
        if self.limit <= 0:
            return NoDifference(IXFR_OFF, "IXFR is off ([transfer] ixfr_history = 0)")
        position = self._reached.get(serial)
        if position is None:
            return NoDifference(
                NOT_IN_HISTORY,
                f"serial {serial} is not in the history (it starts at serial "
                f"{serial_of(self.horizon)}: {self.why_reset})",
            )
        condensed: dict[ListingKey, tuple[State, State]] = {}
        for at, key, old, new in reversed(self._changes):
            if at <= position:
                break
            later = condensed.get(key)
            condensed[key] = (old, new if later is None else later[1])
        return {key: pair for key, pair in condensed.items() if pair[0] != pair[1]}


def key_state(index: ZoneIndex, key: ListingKey) -> State:
    """What ``index`` holds at exactly ``key`` now, as a history state."""
    vid = index.entry_id(key)
    if vid is None:
        return None
    return EXCLUSION if vid == EXCLUDED else index.values[vid]
