"""ParseContext: what a parser needs to know besides the line itself.

Log lines rarely say everything: traditional syslog stamps carry no year and
no zone, Exim's carry no zone unless ``log_timezone`` is set. The context
supplies the clock the year is inferred from and the zone stamps without one
are in, so parsing stays pure and testable. Some MTAs spread one attempt over
several lines (a queue id's client on one line, its recipient on another); a
parser keeps what it must remember between them in ``held``, which lives as
long as the context (one file, one run), so no parser holds state of its own.
Imports only the standard library.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any, TypeVar

T = TypeVar("T")


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
