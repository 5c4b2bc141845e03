"""What an ingest run found: its counts, the lines it set aside, and the files it
resumed or could not recognise.

``IngestReport`` is what the CLI prints and the exit code is judged by. ``Tally``
follows one file's recognition (has a line of the format been seen, and how
many non-blank lines before it); its ``counted()`` is kept with the file's
position, so that a file in which no line of the format was ever seen is
reported as ``Unrecognised`` however many runs it took to read it.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

from rbl.store.evidence import BatchResult

MAX_REPORTED = 20
# Lines of a file none of which is the format's: fewer is a note, this many a failure
# (a log just rotated may hold a few lines of other daemons before the MTA's first).
MIN_UNRECOGNISED = 10
EXAMPLES = 3


@dataclass
class IngestReport:
    lines: int = 0
    hits: int = 0
    malformed: int = 0  # lines the parser refused (all of them quarantined)
    quarantined: int = 0  # lines set aside: malformed, failed or refused by the store
    # "malformed: name:line: message" or "quarantined: name:line: reason", the first few
    problems: list[str] = field(default_factory=list)
    actions: Counter[str] = field(default_factory=Counter)
    listed: list[str] = field(default_factory=list)
    resumed: list[Resumed] = field(default_factory=list)
    unrecognised: list[Unrecognised] = field(default_factory=list)
    files: int = 0

    @property
    def failed_recognition(self) -> bool:
        """Was a file read in which no line was the format's (``Unrecognised.conclusive``)?"""
        return any(u.conclusive for u in self.unrecognised)

    def absorb(self, result: BatchResult) -> None:
        self.actions.update(result.actions)
        self.listed.extend(result.listed)

    def note_quarantined(self, problem: str, *, malformed: bool = False) -> None:
        self.quarantined += 1
        self.malformed += malformed
        if len(self.problems) < MAX_REPORTED:
            self.problems.append(f"{'malformed' if malformed else 'quarantined'}: {problem}")


class Resumed(NamedTuple):
    """A file read from its committed position rather than its start."""

    name: str
    line: int
    offset: int


@dataclass
class Tally:
    """The line number of a file's first line of the format's log (None: none yet) and
    the non-blank lines before it, over every run that read it; the examples and
    formats seen are this run's."""

    first: int | None = None
    unrecognised: int = 0
    seen: Counter[str] = field(default_factory=Counter)  # "sendmail", "unknown"...
    examples: list[str] = field(default_factory=list)

    def counted(self) -> Counted:
        """What is kept with the position: the first line of the format, and the lines before."""
        return Counted(self.first, self.unrecognised)

    def count(self, number: int, text: str, ours: bool, found: str | None) -> None:
        if ours:
            self.first = number
            return
        self.unrecognised += 1
        self.seen[found or "unknown"] += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(text[:200])


@dataclass(frozen=True, slots=True)
class Unrecognised:
    """A file in which no line of the format was seen: what it holds instead."""

    name: str
    format: str
    lines: int  # non-blank lines read, over every run
    seen: dict[str, int]  # formats recognised instead (``unknown``: none), this run
    examples: list[str]  # the first few of them, as read (unescaped)

    @property
    def conclusive(self) -> bool:
        """Enough lines to be sure; fewer is a note (a log just rotated)."""
        return self.lines >= MIN_UNRECOGNISED

    def looks_like(self) -> str:
        """ "sendmail (24), unknown (2)": what the lines are, most first."""
        ordered = sorted(self.seen.items(), key=lambda item: (-item[1], item[0]))
        return ", ".join(f"{name} ({count})" for name, count in ordered) or "not known"


class Counted(NamedTuple):
    """A file's recognition as of some line: the first of the format's (or None) and
    the non-blank lines before it."""

    first: int | None
    unrecognised: int
