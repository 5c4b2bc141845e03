"""Bulk and follow-mode ingestion of MTA logs into the store.

Lines are parsed into TrapHits and stored in batches; each batch is one
transaction that also records how far into the file it got (``ingest_sources``:
device, inode and a hash of the first line identify the file). A run killed
at any point and started again resumes after the last committed batch, so
every line counts exactly once. ``follow`` keeps reading as the log grows and
moves on to the new file when it is rotated or truncated.

The position is kept per file and format: one syslog holding Postfix and
spamd lines is read by one run (or service) per format, each with its own
position, and a file read with the wrong format is read again from the start
with the right one. ``--format auto`` (``AUTO``) sends each line to the parser
of the format it is recognised as (``rbl.feeds.parsers.recognise``) and keeps
a position of its own. The feed name is no part of the position: it labels
what is read, and the same lines read again under another name would be the
same attempts, merged by the store. ``from_start`` re-reads a file on purpose;
attempts already stored are merged then too, so nothing counts twice.

Until a file shows its first line of the format's log (a hit, or any line
the recogniser gives to the format), its other non-blank lines are counted,
with the position, so that a file in which no line of the format was ever
seen is reported (``Unrecognised``) however many runs it took to read it.
After that first line nothing more is recognised for an explicit format: the
file is settled, and reading costs what it did.

A batch whose transaction meets a transient database error (``rbl.store.faults``)
is rolled back and tried again with a doubling delay (``RetryPolicy``); the
file is the queue, so reading waits meanwhile and memory holds one batch. A
one-shot run gives up after ``give_up_after`` seconds with ``IngestGaveUp``,
naming the file and the committed position (nothing committed is lost; a
re-run resumes there); following retries for ever. Should a commit succeed
on the server but its acknowledgement be lost, the retry stores nothing
twice: the same attempts are found already stored and counted as duplicates.

No line stops a run. A line its parser refuses (or fails on with any
exception) is quarantined (``rbl.store.quarantine``) and skipped; so is a line
whose hits the store refuses for good (``refusal``: a time far in the future,
text no database holds; or an error ``is_data_error`` blames on the values):
the failed batch is stored again in halves until the line to blame is found,
and the rest commits. A quarantined line is written in the transaction that
moves the position past it, so it is kept exactly once. An error that blames
the store (a missing table) still ends the run, since every line would fail.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from functools import partial
from stat import S_ISREG
from typing import BinaryIO, NamedTuple, TypeVar

from sqlalchemy import Connection, Engine, insert, select, update

from rbl.config import Settings
from rbl.errors import StoreError
from rbl.feeds.parsers import PARSERS, LineParser, ParseContext, get_parser
from rbl.feeds.parsers.recognise import AUTO, is_blank, recognise
from rbl.model.traphit import ParseError, TrapHit
from rbl.model.traps import TrapMatcher
from rbl.policy.allowlist import Allowlist
from rbl.policy.listing import Rules
from rbl.store.allowlist import load_allowlist
from rbl.store.evidence import BatchResult, record_hits, refusal
from rbl.store.faults import is_data_error, is_transient
from rbl.store.quarantine import Quarantined, quarantine_lines
from rbl.store.schema import ingest_sources
from rbl.store.traps import active_traps

DEFAULT_BATCH = 5000
MAX_REPORTED = 20
DEFAULT_RETRY_FOR = 300.0
_REFRESH_SECONDS = 10.0
_SLEEP_SLICE = 0.2  # seconds: how soon a stop request ends a backoff wait
# Lines of a file none of which is the format's: fewer is a note, this many a failure
# (a log just rotated may hold a few lines of other daemons before the MTA's first).
MIN_UNRECOGNISED = 10
EXAMPLES = 3

T = TypeVar("T")


class IngestGaveUp(StoreError):
    """The database stayed unavailable for longer than the ingest may wait."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How long and how often to try a transaction again after a transient error."""

    give_up_after: float | None = DEFAULT_RETRY_FOR  # seconds; None: never; 0: at once
    first_delay: float = 0.5
    max_delay: float = 30.0


def describe_error(exc: BaseException) -> str:
    """The driver's one-line message, without SQLAlchemy's statement and parameters."""
    if isinstance(exc, StoreError) and exc.__cause__ is not None:
        exc = exc.__cause__
    orig = getattr(exc, "orig", None)
    if isinstance(orig, BaseException):
        exc = orig
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0] if lines else 'no message'}"


class Retrier:
    """Runs a unit of work until it succeeds, waiting out transient database errors.

    ``where`` names what is being done and how far it got, for the messages;
    ``notify`` gets one line when an outage starts and one when it ends.
    """

    def __init__(
        self,
        policy: RetryPolicy,
        notify: Callable[[str], None],
        *,
        sleep: Callable[[float], None] = time.sleep,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = policy
        self.notify = notify
        self.sleep = sleep
        self.monotonic = monotonic
        self.outages = 0

    def call(
        self,
        work: Callable[[], T],
        where: Callable[[], str],
        keep_going: Callable[[], bool] = lambda: True,
    ) -> T:
        started: float | None = None
        delay = self.policy.first_delay
        while True:
            try:
                result = work()
            except Exception as exc:
                if not is_transient(exc):
                    raise StoreError(f"{where()}: {describe_error(exc)}") from exc
                now = self.monotonic()
                if started is None:
                    started = now
                    self.outages += 1
                    limit = self.policy.give_up_after
                    patience = "until it is back" if limit is None else f"for up to {limit:g}s"
                    self.notify(
                        f"{where()}: database unavailable ({describe_error(exc)}); "
                        f"retrying {patience}"
                    )
                waited = now - started
                limit = self.policy.give_up_after
                if limit is not None and waited >= limit:
                    raise IngestGaveUp(
                        f"{where()}: gave up after {waited:.1f}s of database errors "
                        f"(--retry-for {limit:g}); a re-run resumes there. "
                        f"Last error: {describe_error(exc)}"
                    ) from exc
                pause = delay if limit is None else min(delay, limit - waited)
                self._pause(pause, keep_going, where, exc)
                delay = min(delay * 2, self.policy.max_delay)
                continue
            if started is not None:
                self.notify(f"{where()}: database back after {self.monotonic() - started:.1f}s")
            return result

    def _pause(
        self,
        seconds: float,
        keep_going: Callable[[], bool],
        where: Callable[[], str],
        exc: BaseException,
    ) -> None:
        end = self.monotonic() + seconds
        while True:
            if not keep_going():
                raise IngestGaveUp(
                    f"{where()}: stopped while the database was unavailable; a re-run "
                    f"resumes there. Last error: {describe_error(exc)}"
                ) from exc
            left = end - self.monotonic()
            if left <= 0:
                return
            self.sleep(min(left, _SLEEP_SLICE))


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


class LineRead(NamedTuple):
    hits: list[TrapHit]
    reason: str | None  # why the line is set aside; None: store its hits
    malformed: bool = False  # the parser refused it (ParseError)


def read_line(parse: LineParser, text: str, ctx: ParseContext) -> LineRead:
    """The line's hits, or why it is set aside: the parser's refusal, its failure, or the
    store's refusal of a hit (``refusal``), checked before the batch is written."""
    try:
        found = parse(text, ctx)
    except ParseError as exc:
        return LineRead([], str(exc), malformed=True)
    except Exception as exc:  # a parser bug on hostile input: the line waits for the fix
        return LineRead([], f"the parser failed: {describe_error(exc)}")
    for hit in found:
        why = refusal(hit, ctx.now)
        if why is not None:
            return LineRead(found, f"refused: {why}")
    return LineRead(found, None)


@dataclass(frozen=True, slots=True)
class _Line:
    """A line with hits, kept with its batch until it commits: what may be set aside."""

    number: int
    start: int  # byte offset of its first byte
    end: int  # and after its last
    data: bytes
    hits: list[TrapHit]
    format: str  # the parser's: the chosen one, or with auto the one recognised
    counted: Counted  # the file's recognition through it


@dataclass
class _Batch:
    with_hits: list[_Line] = field(default_factory=list)
    quarantined: list[Quarantined] = field(default_factory=list)
    malformed: list[int] = field(default_factory=list)  # line numbers
    lines: int = 0
    hits: int = 0


IDENTITY_BYTES = 4096  # of the first line, hashed into a file's identity


def file_identity(handle: BinaryIO) -> str | None:
    """device:inode:hash-of-first-line of a regular file; None for pipes (no resuming)."""
    stat = os.fstat(handle.fileno())
    if not S_ISREG(stat.st_mode):
        return None
    position = handle.tell()
    handle.seek(0)
    first = handle.readline(IDENTITY_BYTES)
    handle.seek(position)
    return f"{stat.st_dev}:{stat.st_ino}:{hashlib.sha256(first).hexdigest()[:16]}"


class HitWriter:
    """Stores hits with the configured policy, trap list and allowlist (ingest and refeed).

    Trap and allowlist changes made while a long run goes on take effect
    within ``_REFRESH_SECONDS``.
    """

    def __init__(self, engine: Engine, settings: Settings) -> None:
        self.engine = engine
        self.rules = Rules.from_settings(settings.listing)
        self.ip_zone = settings.trap_ip_zone()
        self.domain_zone = settings.trap_domain_zone()
        self._refreshed = -_REFRESH_SECONDS
        self._matcher = TrapMatcher()
        self._allow = Allowlist()

    def refresh(self) -> None:
        if time.monotonic() - self._refreshed < _REFRESH_SECONDS:
            return
        with self.engine.connect() as conn:
            self._matcher = TrapMatcher(active_traps(conn))
            self._allow = load_allowlist(conn)
        self._refreshed = time.monotonic()

    def record(
        self, conn: Connection, hits: list[TrapHit], *, now: datetime, source_id: int | None
    ) -> BatchResult:
        return record_hits(
            conn,
            hits,
            matcher=self._matcher,
            allow=self._allow,
            rules=self.rules,
            ip_zone=self.ip_zone,
            domain_zone=self.domain_zone,
            now=now,
            source_id=source_id,
        )


class Ingestor:
    """Feeds one log format (or ``auto``: each line's own) into the store with the
    configured policy."""

    def __init__(
        self,
        engine: Engine,
        settings: Settings,
        format_name: str,
        *,
        batch_size: int = DEFAULT_BATCH,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        tz: tzinfo = UTC,
        feed: str | None = None,
        retrier: Retrier | None = None,
        on_unrecognised: Callable[[Unrecognised], None] | None = None,
    ) -> None:
        """``on_unrecognised`` is told at once when a followed file holds no line of
        the format (a one-shot run finds it in its report)."""
        self.engine = engine
        self.on_unrecognised = on_unrecognised
        self.retrier = retrier or Retrier(RetryPolicy(give_up_after=0), lambda _line: None)
        self.format = format_name
        self.parse: LineParser | None = None if format_name == AUTO else get_parser(format_name)
        self.batch_size = batch_size
        self.clock = clock
        self.tz = tz
        self.feed = feed
        self.writer = HitWriter(engine, settings)

    def _source(self, name: str, identity: str | None, from_start: bool) -> _Source:
        """The file's row for this format, created at its start if new (or reset to it
        for ``from_start``): its id, committed position and line counts."""
        if identity is None:
            return _Source(None, 0, 0, Tally())
        s = ingest_sources.c
        with self.engine.begin() as conn:
            row = conn.execute(
                select(s.id, s.offset, s.lines, s.recognised_at, s.unrecognised).where(
                    s.identity == identity, s.format == self.format
                )
            ).first()
            # A file's start: nothing read, nothing told about its format yet.
            start = {
                "name": name,
                "offset": 0,
                "lines": 0,
                "malformed": 0,
                "recognised_at": None,
                "unrecognised": 0,
                "updated_at": self.clock(),
            }
            if row is not None and from_start:
                conn.execute(update(ingest_sources).where(s.id == row.id).values(**start))
                return _Source(row.id, 0, 0, Tally())
            if row is not None:
                return _Source(
                    row.id, row.offset, row.lines, Tally(row.recognised_at, row.unrecognised)
                )
            result = conn.execute(
                insert(ingest_sources).values(identity=identity, format=self.format, **start)
            )
            return _Source(int(result.inserted_primary_key[0]), 0, 0, Tally())  # type: ignore[index]

    def ingest(
        self,
        handle: BinaryIO,
        name: str,
        report: IngestReport,
        *,
        follow: bool = False,
        progress: Callable[[int], None] | None = None,
        keep_going: Callable[[], bool] = lambda: True,
        poll: float = 1.0,
        from_start: bool = False,
    ) -> None:
        """Ingest ``handle`` to its end (following: until rotated, truncated or stopped).

        ``from_start`` reads a file from its first line even if this format's position
        in it is further on. A file in which no line of the format has been seen is
        added to ``report.unrecognised``: at its end, or when following, the first
        time the reader catches up with the writer (and told to ``on_unrecognised``
        then, since a follower does not end).
        """
        if follow and S_ISREG(os.fstat(handle.fileno()).st_mode):
            # A file is known by its first line: wait until there is one (a log just
            # rotated is empty), or a restart would not recognise it and read it again.
            while not _first_line_whole(handle) and keep_going() and not _replaced(handle):
                time.sleep(poll)
        identity = file_identity(handle)
        position = _Position(name)
        source = self.retrier.call(
            lambda: self._source(name, identity, from_start), position.where, keep_going
        )
        source_id, offset, line_number, tally = source
        position.offset, position.lines = offset, line_number
        if offset:
            handle.seek(offset)
            report.resumed.append(Resumed(name, line_number, offset))
        report.files += 1
        ctx = ParseContext(now=self.clock(), tz=self.tz, feed=self.feed)
        judged = False
        for batch, end, lines, caught_up in self._batches(
            handle,
            offset,
            line_number,
            name,
            source_id,
            ctx,
            report,
            tally,
            follow,
            keep_going,
            poll,
        ):
            # The generator waits here while the batch is retried: reading stops too.
            if batch.lines:
                pieces = _Pieces.of(batch, end, lines, tally.counted())
                report.absorb(self._commit(pieces, source_id, position, report, keep_going))
                if progress is not None:
                    progress(end)
            if caught_up and not judged:
                judged = self._judge(name, tally, report, follow)

    def _judge(self, name: str, tally: Tally, report: IngestReport, follow: bool) -> bool:
        """Note the file if none of its lines is the format's; True once it is judged
        (a follower waits until it has read enough lines to be sure)."""
        if tally.first is not None:
            return True
        found = Unrecognised(
            name, self.format, tally.unrecognised, dict(tally.seen), tally.examples
        )
        if follow and not found.conclusive:
            return False
        if found.lines:
            report.unrecognised.append(found)
        if follow and self.on_unrecognised is not None:
            self.on_unrecognised(found)
        return True

    def _commit(
        self,
        pieces: _Pieces,
        source_id: int | None,
        position: _Position,
        report: IngestReport,
        keep_going: Callable[[], bool],
    ) -> BatchResult:
        """Store a batch; should the store refuse it for good over the values of some line,
        store it in halves until that line is found, set it aside, and go on."""
        result = BatchResult()
        todo = [pieces]
        while todo:
            piece = todo.pop()
            try:
                done = self.retrier.call(
                    partial(self._store, piece, source_id), position.where, keep_going
                )
            except IngestGaveUp:
                raise
            except StoreError as exc:
                if not is_data_error(exc) or not piece.lines:
                    raise  # the store itself, not a line: every line would fail
                if len(piece.lines) > 1:
                    todo.extend(reversed(piece.halves()))  # the first half first
                    continue
                line = piece.lines[0]
                reason = f"the store refused it: {describe_error(exc)}"
                piece = piece.without_hits(self._entry(line, position.name, source_id, reason))
                report.note_quarantined(f"{position.name}:{line.number}: {reason}")
                done = self.retrier.call(
                    partial(self._store, piece, source_id), position.where, keep_going
                )
            result.add(done)
            position.offset, position.lines = piece.end, piece.end_line
        return result

    def _store(self, piece: _Pieces, source_id: int | None) -> BatchResult:
        """Lines, the lines set aside among them, and the position after them: one transaction."""
        self.writer.refresh()
        now = self.clock()
        with self.engine.begin() as conn:
            result = self.writer.record(
                conn,
                [hit for line in piece.lines for hit in line.hits],
                now=now,
                source_id=source_id,
            )
            quarantine_lines(conn, piece.quarantined, now=now)
            if source_id is not None:
                conn.execute(
                    update(ingest_sources)
                    .where(ingest_sources.c.id == source_id)
                    .values(
                        offset=piece.end,
                        lines=piece.end_line,
                        updated_at=now,
                        malformed=ingest_sources.c.malformed + len(piece.malformed),
                        recognised_at=piece.counted.first,
                        unrecognised=piece.counted.unrecognised,
                    )
                )
        return result

    def _entry(self, line: _Line, name: str, source_id: int | None, reason: str) -> Quarantined:
        return Quarantined(
            source=name,
            format=line.format,  # with auto, the one recognised: refeed parses it so again
            line=line.data,
            reason=reason,
            source_id=source_id,
            offset=line.start,
            line_number=line.number,
            feed=self.feed,
            tz=getattr(self.tz, "key", None) or str(self.tz),
        )

    def _batches(
        self,
        handle: BinaryIO,
        offset: int,
        line_number: int,
        name: str,
        source_id: int | None,
        ctx: ParseContext,
        report: IngestReport,
        tally: Tally,
        follow: bool,
        keep_going: Callable[[], bool],
        poll: float,
    ) -> Iterator[tuple[_Batch, int, int, bool]]:
        """Yield batches of parsed lines with the byte offset and line count they end at,
        and whether the reader has caught up with the file's end (then the batch may be
        empty).

        Only whole lines are consumed while following; a partial last line is
        left for the next read (or the next run). Without following, or once
        the file has been rotated away, the last line counts even without "\n".
        """
        batch = _Batch()
        pending = b""
        draining = False
        while True:
            chunk = handle.readline()
            if chunk.endswith(b"\n"):
                line, pending = pending + chunk, b""
                line_number += 1
                self._parse(line, line_number, offset, name, source_id, ctx, report, tally, batch)
                offset += len(line)
                if batch.lines >= self.batch_size:
                    yield batch, offset, line_number, False
                    batch = _Batch()
                    ctx = replace(ctx, now=self.clock())
                continue
            pending += chunk
            if not follow or draining:
                if pending:
                    line_number += 1
                    self._parse(
                        pending, line_number, offset, name, source_id, ctx, report, tally, batch
                    )
                    offset += len(pending)
                yield batch, offset, line_number, True
                return
            yield batch, offset, line_number, True
            batch = _Batch()
            # A log followed for days: infer syslog years from today, not the start.
            ctx = replace(ctx, now=self.clock())
            if not keep_going():
                return
            time.sleep(poll)
            draining = _replaced(handle)

    def _parse(
        self,
        line: bytes,
        number: int,
        start: int,
        name: str,
        source_id: int | None,
        ctx: ParseContext,
        report: IngestReport,
        tally: Tally,
        batch: _Batch,
    ) -> None:
        report.lines += 1
        batch.lines += 1
        text = line.decode("utf-8", "replace").rstrip("\r\n")
        settled = tally.first is not None
        parse: LineParser | None
        if self.parse is not None:
            fmt, parse = self.format, self.parse
            seen = None if settled else recognise(text)
        else:
            fmt, parse, seen = self._dispatch(text)
        found, reason, malformed = (
            read_line(parse, text, ctx) if parse is not None else LineRead([], None)
        )
        if not settled and not is_blank(text):
            # A line with hits is the parser's whatever the recogniser says.
            tally.count(number, text, seen == fmt or bool(found), seen)
        report.hits += len(found)
        if reason is None and not found:
            return  # most lines: nothing to keep
        counted = tally.counted()
        kept = _Line(number, start, start + len(line), line, found, fmt, counted)
        if reason is not None:
            batch.quarantined.append(self._entry(kept, name, source_id, reason))
            batch.malformed.extend([number] if malformed else [])
            report.note_quarantined(f"{name}:{number}: {reason}", malformed=malformed)
        else:
            batch.with_hits.append(kept)

    @staticmethod
    def _dispatch(text: str) -> tuple[str, LineParser | None, str | None]:
        """With auto: the format the line is parsed as, its parser (None: it is not
        parsed) and the format it is recognised as."""
        seen = recognise(text)
        if seen is not None and seen in PARSERS:
            return seen, PARSERS[seen], seen
        return AUTO, None, None if seen is None else f"{seen} (no parser)"


class Counted(NamedTuple):
    """A file's recognition as of some line: the first of the format's (or None) and
    the non-blank lines before it."""

    first: int | None
    unrecognised: int


class _Source(NamedTuple):
    id: int | None
    offset: int
    lines: int
    tally: Tally


@dataclass
class _Position:
    """What a re-run would resume from, for the messages."""

    name: str
    offset: int = 0
    lines: int = 0

    def where(self) -> str:
        return f"{self.name}: committed through line {self.lines} (byte {self.offset})"


@dataclass(frozen=True, slots=True)
class _Pieces:
    """Consecutive lines of a batch: those with hits, those set aside, and the position
    (byte offset, line count) after the last of them."""

    lines: list[_Line]
    quarantined: list[Quarantined]
    malformed: list[int]  # line numbers the parser refused
    end: int
    end_line: int
    counted: Counted  # the file's recognition through end_line

    @classmethod
    def of(cls, batch: _Batch, end: int, end_line: int, counted: Counted) -> _Pieces:
        return cls(batch.with_hits, batch.quarantined, batch.malformed, end, end_line, counted)

    def halves(self) -> tuple[_Pieces, _Pieces]:
        """Up to and with the middle line with hits, and the rest."""
        middle = self.lines[len(self.lines) // 2 - 1]
        cut = middle.number

        def until(numbers: list[int]) -> int:
            return sum(1 for n in numbers if n <= cut)

        set_aside = until([e.line_number or 0 for e in self.quarantined])
        malformed = until(self.malformed)
        first = _Pieces(
            self.lines[: len(self.lines) // 2],
            self.quarantined[:set_aside],
            self.malformed[:malformed],
            middle.end,
            middle.number,
            middle.counted,
        )
        rest = _Pieces(
            self.lines[len(self.lines) // 2 :],
            self.quarantined[set_aside:],
            self.malformed[malformed:],
            self.end,
            self.end_line,
            self.counted,
        )
        return first, rest

    def without_hits(self, entry: Quarantined) -> _Pieces:
        """The same lines with the one line with hits set aside instead."""
        return replace(self, lines=[], quarantined=[*self.quarantined, entry])


def _first_line_whole(handle: BinaryIO) -> bool:
    """Does the file hold its whole first line (what ``file_identity`` hashes)?"""
    position = handle.tell()
    handle.seek(0)
    first = handle.readline(IDENTITY_BYTES)
    handle.seek(position)
    return first.endswith(b"\n") or len(first) >= IDENTITY_BYTES


def _replaced(handle: BinaryIO) -> bool:
    """Has the path been rotated away or truncated under the open file?"""
    try:
        current = os.stat(handle.name)
    except (OSError, TypeError):
        return True
    opened = os.fstat(handle.fileno())
    return (current.st_dev, current.st_ino) != (opened.st_dev, opened.st_ino) or (
        current.st_size < handle.tell()
    )
