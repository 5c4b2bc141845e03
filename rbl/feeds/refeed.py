"""Feeding quarantined lines again, once what refused them is fixed.

A kept line is parsed again with today's parser for its format (or another
format the operator names), as of when it was set aside (a syslog time
without a year is read as it was then), and its hits go through the same
checks and the same store as ingest; the hits and the line's leaving the
quarantine are one transaction, so a line is stored once or stays. A live
feed hit is stored from the hit kept with it. A line that still fails stays
quarantined with the reason of this try. Transient database errors are
waited out as in ingest, never blamed on the line.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from rbl.errors import StoreError
from rbl.feeds.ingest import LineRead, read_line
from rbl.feeds.parsers import PARSERS, ParseContext, get_parser
from rbl.feeds.parsers.recognise import AUTO, recognise
from rbl.feeds.retry import IngestGaveUp, Retrier, describe_error
from rbl.model.traphit import hit_from_json
from rbl.store.evidence import BatchResult, refusal
from rbl.store.faults import is_data_error
from rbl.store.feedwriter import HitWriter
from rbl.store.timestamps import utc


class Refeeder:
    """Stores quarantined lines' hits; one instance for a whole ``refeed`` command."""

    def __init__(
        self,
        writer: HitWriter,
        retrier: Retrier,
        *,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """``writer`` stores with the configured policy (``HitWriter(engine, settings)``)."""
        self.writer = writer
        self.retrier = retrier
        self.clock = clock

    def refeed(self, row: Any, format_name: str | None = None) -> tuple[BatchResult, str | None]:
        """Store the row's hits and mark it refed; (what the hits did, None) or, when it
        still fails, (nothing, the new reason, kept with the row)."""
        found, reason, _malformed = self._read(row, format_name)
        where = f"quarantined line {row.id}"
        if reason is None:
            try:
                result = self.retrier.call(lambda: self._store(row, found), lambda: where)
                return result, None
            except IngestGaveUp:
                raise
            except StoreError as exc:
                if not is_data_error(exc):
                    raise
                reason = f"the store refused it: {describe_error(exc)}"
        self.retrier.call(lambda: self.writer.keep_refusal(row.id, reason), lambda: where)
        return BatchResult(), reason

    def _read(self, row: Any, format_name: str | None) -> LineRead:
        at = utc(row.at)
        if row.hit is not None and format_name is None:
            hit = hit_from_json(row.hit)
            why = refusal(hit, self.clock())
            return LineRead([hit], None if why is None else f"refused: {why}")
        ctx = ParseContext(now=at, tz=_zone(row.tz), feed=row.feed)
        text = bytes(row.line).decode("utf-8", "replace").rstrip("\r\n")
        name = format_name or row.format
        if name == AUTO:  # the format the line is recognised as, as ingest --format auto
            seen = recognise(text)
            if seen is None or seen not in PARSERS:
                return LineRead([], f"not a line of any format rbl reads (recognised: {seen})")
            name = seen
        parse = get_parser(name)
        read = read_line(parse, text, ctx)
        if read.reason is not None:
            return read
        for hit in read.hits:  # as of now, not as of when the line was read
            why = refusal(hit, self.clock())
            if why is not None:
                return LineRead(read.hits, f"refused: {why}")
        return read

    def _store(self, row: Any, hits: list[Any]) -> BatchResult:
        return self.writer.refeed(row.id, hits, source_id=row.source_id, now=self.clock())


def _zone(name: str | None) -> tzinfo:
    if not name:
        return UTC
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC
