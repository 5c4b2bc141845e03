"""Bulk and follow-mode ingestion of MTA logs into the store: the batch loop.

Lines are parsed into TrapHits and stored in batches; each batch is one
transaction that also records how far into the file it got (``rbl.store.sources``:
device, inode and a hash of the first line identify the file). A run killed
at any point and started again resumes after the last committed batch, so
every line counts exactly once; what the parsers held there (messages whose
client line was read, their delivery not yet) is committed with it and taken
up again (``ParseContext.carry``), so a message in flight across two runs still
joins. ``follow`` keeps reading as the log grows and
moves on to the new file when it is rotated or truncated.

Here: the loop from lines to committed batches. Elsewhere: reading and
following the file (``rbl.feeds.logfile``), a batch and its halving
(``rbl.feeds.batch``), what the run reports (``rbl.feeds.report``), waiting out
database errors (``rbl.feeds.retry``), and the transactions themselves, SQL and
all (``rbl.store.feedwriter``). Nothing here imports SQLAlchemy.

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
is rolled back and tried again with a doubling delay (``Retrier``); the
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

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime, tzinfo
from functools import partial
from typing import BinaryIO, NamedTuple

from rbl.errors import StoreError
from rbl.feeds.batch import Batch, Line, Pieces, Position
from rbl.feeds.logfile import file_identity, read_lines, wait_for_first_line
from rbl.feeds.parsers import PARSERS, LineParser, ParseContext, get_parser
from rbl.feeds.parsers.recognise import AUTO, is_blank, recognise
from rbl.feeds.report import IngestReport, Resumed, Tally, Unrecognised
from rbl.feeds.retry import IngestGaveUp, Retrier, RetryPolicy, describe_error
from rbl.model.traphit import ParseError, TrapHit
from rbl.store.evidence import BatchResult, refusal
from rbl.store.faults import is_data_error
from rbl.store.feedwriter import HitWriter
from rbl.store.quarantine import Quarantined

DEFAULT_BATCH = 5000


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


class Ingestor:
    """Feeds one log format (or ``auto``: each line's own) into the store with the
    configured policy."""

    def __init__(
        self,
        writer: HitWriter,
        format_name: str,
        *,
        batch_size: int = DEFAULT_BATCH,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        tz: tzinfo = UTC,
        feed: str | None = None,
        retrier: Retrier | None = None,
        on_unrecognised: Callable[[Unrecognised], None] | None = None,
    ) -> None:
        """``writer`` stores with the configured policy (``HitWriter(engine, settings)``);
        ``on_unrecognised`` is told at once when a followed file holds no line of the
        format (a one-shot run finds it in its report)."""
        self.writer = writer
        self.on_unrecognised = on_unrecognised
        self.retrier = retrier or Retrier(RetryPolicy(give_up_after=0), lambda _line: None)
        self.format = format_name
        self.parse: LineParser | None = None if format_name == AUTO else get_parser(format_name)
        self.batch_size = batch_size
        self.clock = clock
        self.tz = tz
        self.feed = feed

    def _source(self, name: str, identity: str | None, from_start: bool) -> _Source:
        """The file's row for this format (none for a pipe): its id, committed position
        and the recognition kept with it."""
        if identity is None:
            return _Source(None, 0, 0, Tally(), None)
        row = self.writer.source(
            identity, self.format, name, from_start=from_start, now=self.clock()
        )
        tally = Tally(row.recognised_at, row.unrecognised)
        return _Source(row.id, row.offset, row.lines, tally, row.carried)

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
        handoff: str | None = None,
    ) -> str | None:
        """Ingest ``handle`` to its end (following: until rotated, truncated or stopped);
        returns what the parsers hold there (``ParseContext.carry``).

        ``handoff`` is what they held at the end of the file this one replaced (a
        follower's rotated log): a file read from its start takes it up, so a session
        whose first lines went to the rotated file still joins.

        ``from_start`` reads a file from its first line even if this format's position
        in it is further on. A file in which no line of the format has been seen is
        added to ``report.unrecognised``: at its end, or when following, the first
        time the reader catches up with the writer (and told to ``on_unrecognised``
        then, since a follower does not end).
        """
        if follow:
            wait_for_first_line(handle, keep_going, poll)
        identity = file_identity(handle)
        position = Position(name)
        source = self.retrier.call(
            lambda: self._source(name, identity, from_start), position.where, keep_going
        )
        source_id, offset, line_number, tally, carried = source
        position.offset, position.lines = offset, line_number
        ctx = ParseContext(now=self.clock(), tz=self.tz, feed=self.feed)
        if offset:
            handle.seek(offset)
            report.resumed.append(Resumed(name, line_number, offset))
        elif carried is None:
            carried = handoff
        # The messages in flight where the last run (or file) stopped: their later lines join.
        for problem in ctx.resume(carried):
            report.problems.append(f"carried: {name}: {problem}")
        report.files += 1
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
                before, carried = carried, ctx.carry()
                pieces = Pieces.of(batch, end, lines, tally.counted(), (before, carried))
                report.absorb(self._commit(pieces, source_id, position, report, keep_going))
                if progress is not None:
                    progress(end)
            if caught_up and not judged:
                judged = self._judge(name, tally, report, follow)
        return carried

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
        pieces: Pieces,
        source_id: int | None,
        position: Position,
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

    def _store(self, piece: Pieces, source_id: int | None) -> BatchResult:
        """Lines, the lines set aside among them, and the position after them: one transaction."""
        return self.writer.store_batch(
            piece.hits(),
            piece.quarantined,
            source_id=source_id,
            to=piece.advance(),
            now=self.clock(),
        )

    def _entry(self, line: Line, name: str, source_id: int | None, reason: str) -> Quarantined:
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
    ) -> Iterator[tuple[Batch, int, int, bool]]:
        """Yield batches of parsed lines with the byte offset and line count they end at,
        and whether the reader has caught up with the file's end (then the batch may be
        empty). Lines are read as ``read_lines`` gives them."""
        batch = Batch()
        for line in read_lines(handle, follow=follow, keep_going=keep_going, poll=poll):
            if line is None:
                yield batch, offset, line_number, True
                batch = Batch()
                # A log followed for days: infer syslog years from today, not the start.
                ctx = replace(ctx, now=self.clock())
                continue
            line_number += 1
            self._parse(line, line_number, offset, name, source_id, ctx, report, tally, batch)
            offset += len(line)
            if batch.lines >= self.batch_size:
                yield batch, offset, line_number, False
                batch = Batch()
                ctx = replace(ctx, now=self.clock())

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
        batch: Batch,
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
        kept = Line(number, start, start + len(line), line, found, fmt, counted)
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


class _Source(NamedTuple):
    id: int | None
    offset: int
    lines: int
    tally: Tally
    carried: str | None  # what the parsers held at ``offset`` (ParseContext.carry)
