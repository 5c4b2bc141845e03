"""A batch of read lines on its way to one transaction, and its halving.

A ``Batch`` gathers, as lines are read, those with hits (``Line``: kept until
the batch commits, since any of them may yet be set aside) and those set
aside at once. ``Pieces`` is what one transaction stores: consecutive lines
and the position after the last. Should the store refuse a batch for good
over the values of some line, ingest stores it in ``halves`` until that line
is found and stores it ``without_hits``; the position after each piece is
then that of its last line. ``Position`` is what a re-run would resume from,
for the messages.

The parsers' carried state (``ParseContext.carry``) is known at the end of a
batch only: a first half commits the state the batch started with, the last
piece the state at its end.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from rbl.feeds.report import Counted
from rbl.model.traphit import TrapHit
from rbl.store.quarantine import Quarantined
from rbl.store.sources import Advance


@dataclass(frozen=True, slots=True)
class Line:
    """A line with hits, kept with its batch until it commits: what may be set aside."""

    number: int
    start: int  # byte offset of its first byte
    end: int  # and after its last
    data: bytes
    hits: list[TrapHit]
    format: str  # the parser's: the chosen one, or with auto the one recognised
    counted: Counted  # the file's recognition through it


@dataclass
class Batch:
    with_hits: list[Line] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    malformed: list[int] = field(default_factory=list)  # line numbers
    lines: int = 0
    hits: int = 0


@dataclass(frozen=True, slots=True)
class Pieces:
    """Consecutive lines of a batch: those with hits, those set aside, and the position
    (byte offset, line count) after the last of them."""

    lines: list[Line]
    quarantined: list[Quarantined]
    malformed: list[int]  # line numbers the parser refused
    end: int
    end_line: int
    counted: Counted  # the file's recognition through end_line
    carried: str | None = None  # the parsers' held state at end_line (JSON)
    carried_before: str | None = None  # and before the batch: what a first half commits

    @classmethod
    def of(
        cls,
        batch: Batch,
        end: int,
        end_line: int,
        counted: Counted,
        carried: tuple[str | None, str | None] = (None, None),
    ) -> Pieces:
        """``carried``: the parsers' state before the batch and after it."""
        before, after = carried
        return cls(
            batch.with_hits,
            batch.quarantined,
            batch.malformed,
            end,
            end_line,
            counted,
            after,
            before,
        )

    def halves(self) -> tuple[Pieces, Pieces]:
        """Up to and with the middle line with hits, and the rest."""
        middle = self.lines[len(self.lines) // 2 - 1]
        cut = middle.number

        def until(numbers: list[int]) -> int:
            return sum(1 for n in numbers if n <= cut)

        set_aside = until([e.line_number or 0 for e in self.quarantined])
        malformed = until(self.malformed)
        first = Pieces(
            self.lines[: len(self.lines) // 2],
            self.quarantined[:set_aside],
            self.malformed[:malformed],
            middle.end,
            middle.number,
            middle.counted,
            self.carried_before,
            self.carried_before,
        )
        rest = Pieces(
            self.lines[len(self.lines) // 2 :],
            self.quarantined[set_aside:],
            self.malformed[malformed:],
            self.end,
            self.end_line,
            self.counted,
            self.carried,
            self.carried_before,
        )
        return first, rest

    def without_hits(self, entry: Quarantined) -> Pieces:
        """The same lines with the one line with hits set aside instead."""
        return replace(self, lines=[], quarantined=[*self.quarantined, entry])

    def hits(self) -> list[TrapHit]:
        return [hit for line in self.lines for hit in line.hits]

    def advance(self) -> Advance:
        """The file's position once these lines are committed."""
        return Advance(
            self.end,
            self.end_line,
            len(self.malformed),
            self.counted.first,
            self.counted.unrecognised,
            self.carried,
        )


@dataclass
class Position:
    """What a re-run would resume from, for the messages."""

    name: str
    offset: int = 0
    lines: int = 0

    def where(self) -> str:
        return f"{self.name}: committed through line {self.lines} (byte {self.offset})"
