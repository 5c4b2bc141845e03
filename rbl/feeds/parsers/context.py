"""ParseContext: what a parser needs to know besides the line itself.

Log lines rarely say everything: traditional syslog stamps carry no year and
no zone, Exim's carry no zone unless ``log_timezone`` is set. The context
supplies the clock the year is inferred from and the zone stamps without one
are in, so parsing stays pure and testable. Imports only the standard library.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo


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

    def __post_init__(self) -> None:
        if self.now.tzinfo is None or self.now.utcoffset() is None:
            raise ValueError("ParseContext.now must be timezone-aware")
