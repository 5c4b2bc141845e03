"""ParseContext: what a parser needs to know besides the line itself.

Log lines rarely say everything: traditional syslog stamps carry no year and
no zone, Exim's carry no zone unless ``log_timezone`` is set. The context
supplies the clock the year is inferred from and the zone stamps without one
are in, so parsing stays pure and testable. Some MTAs spread one attempt over
several lines (a queue id's client on one line, its recipient on another); a
parser keeps what it must remember between them in ``held``, which lives as
long as the context (one file, one run), so no parser holds state of its own.

A run that stops (a one-shot ``rbl ingest`` at the end of the file, a follower
killed) would forget the messages still in flight, and the next run, resuming
after their first lines, would find their deliveries without a client: no hit.
So what is held is *carried*: ``carry`` writes the held states as JSON, which
ingest commits with the position, and ``resume`` reads them back into the
next run's context. A state is carried when its parser registered it
(``carried_state``): a loader from JSON, and the state's ``to_json``.
Imports only the standard library.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, Final, Protocol, TypeVar

T = TypeVar("T")


class Carried(Protocol):
    """A held state that outlives its run: its JSON form, None when nothing is held."""

    def to_json(self) -> object: ...


# State name -> the loader that makes the state from its JSON form (ValueError if bad).
_LOADERS: dict[str, Callable[[Any], Any]] = {}
# What one state may write per commit: the newest entries that fit. The parsers' own
# bounds allow far more (a sender can fill sendmail's 4096 ids with 256 refusals each),
# and the state is written with every batch.
CARRIED_ITEMS: Final = 10_000
CARRIED_BYTES: Final = 2 * 1024 * 1024


def newest(items: list[T], size: Callable[[T], int]) -> list[T]:
    """The newest of ``items`` (oldest first) within CARRIED_ITEMS and CARRIED_BYTES."""
    kept: list[T] = []
    budget = CARRIED_BYTES
    for item in reversed(items[-CARRIED_ITEMS:]):
        budget -= size(item)
        if budget < 0:
            break
        kept.append(item)
    kept.reverse()
    return kept


def carried_state(name: str, load: Callable[[Any], Carried]) -> None:
    """Register state ``name`` as carried from run to run, made by ``load``."""
    _LOADERS[name] = load


@dataclass(frozen=True, slots=True)
class ParseContext:
    """The clock, the zone of unzoned stamps and an optional feed name override.

    ``now`` must be timezone-aware; it only anchors year inference (a syslog
    stamp gets the latest year that puts it at most one day after ``now``).
    ``tz`` is the zone of stamps that carry none. ``feed``, when set, replaces
    the parser's own name in ``TrapHit.feed``.
    """

    now: datetime
    tz: tzinfo = UTC
    feed: str | None = None
    # Per-format state carried from line to line (``held``); ``replace(ctx, now=...)``
    # keeps the same dict, so a new clock reading does not forget a pending join.
    states: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.now.tzinfo is None or self.now.utcoffset() is None:
            raise ValueError("ParseContext.now must be timezone-aware")

    def held(self, name: str, make: Callable[[], T]) -> T:
        """The state ``name`` kept across this context's lines, made by ``make`` at first use."""
        state = self.states.get(name)
        if state is None:
            state = self.states[name] = make()
        return state

    def carry(self) -> str | None:
        """The carried states as JSON text (ASCII), or None when nothing is held."""
        found = {}
        for name, state in self.states.items():
            if name in _LOADERS:
                data = state.to_json()
                if data is not None:
                    found[name] = data
        return json.dumps(found, sort_keys=True, separators=(",", ":")) if found else None

    def resume(self, carried: str | None) -> list[str]:
        """Take the states an earlier run carried; returns what could not be taken, each
        as a sentence (a bad state is dropped, the others are kept)."""
        if not carried:
            return []
        try:
            found = json.loads(carried)
        except ValueError as exc:
            return [f"the carried state is not JSON ({exc}): dropped"]
        if not isinstance(found, dict):
            return ["the carried state is not a JSON object: dropped"]
        problems = []
        for name, data in found.items():
            load = _LOADERS.get(name)
            if load is None:
                problems.append(f"carried state {name!r} belongs to no parser of this run")
                continue
            try:
                self.states[name] = load(data)
            except (ValueError, TypeError, KeyError, IndexError) as exc:
                problems.append(f"carried state {name!r} is malformed ({exc}): dropped")
        return problems
