"""Ingest sources: a log file's row per format, and the position committed in it.

A file is known by its identity (device, inode and a hash of its first line,
made by ``rbl.feeds.logfile``), never by its name, so a rotated log is a new
source and a renamed one is not. The position (bytes and lines committed,
lines the parser refused, and how far the file's format has been recognised)
moves in the transaction that stores the lines before it, so a run killed at
any point resumes after the last committed batch, with what the parsers held
there (``carried``: messages in flight, ``rbl.feeds.parsers.context``). Only ingest writes here.
"""

from __future__ import annotations

from datetime import datetime
from typing import NamedTuple

from sqlalchemy import Connection, insert, select, update

from rbl.store.schema import ingest_sources


class Source(NamedTuple):
    """A file's row for one format: its id and committed position."""

    id: int
    offset: int  # bytes committed
    lines: int  # lines committed
    recognised_at: int | None  # the first line of the format (None: none yet)
    unrecognised: int  # non-blank lines before it
    carried: str | None = None  # the parsers' held state at the position (JSON)


class Advance(NamedTuple):
    """Where a committed batch leaves the file: what the row is set to."""

    offset: int
    lines: int
    malformed: int  # lines of the batch the parser refused (added to the row's count)
    recognised_at: int | None
    unrecognised: int
    carried: str | None = None  # the parsers' held state at ``offset``


def open_source(
    conn: Connection,
    identity: str,
    format_name: str,
    name: str,
    *,
    from_start: bool,
    now: datetime,
) -> Source:
    """The file's row for ``format_name``, created at its start if new (or reset to it
    for ``from_start``)."""
    s = ingest_sources.c
    row = conn.execute(
        select(s.id, s.offset, s.lines, s.recognised_at, s.unrecognised, s.carried).where(
            s.identity == identity, s.format == format_name
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
        "carried": None,
        "updated_at": now,
    }
    if row is not None and from_start:
        conn.execute(update(ingest_sources).where(s.id == row.id).values(**start))
        return Source(row.id, 0, 0, None, 0)
    if row is not None:
        return Source(
            row.id, row.offset, row.lines, row.recognised_at, row.unrecognised, row.carried
        )
    result = conn.execute(
        insert(ingest_sources).values(identity=identity, format=format_name, **start)
    )
    return Source(int(result.inserted_primary_key[0]), 0, 0, None, 0)  # type: ignore[index]


def advance_source(conn: Connection, source_id: int, to: Advance, *, now: datetime) -> None:
    """Move the file's committed position to ``to``."""
    conn.execute(
        update(ingest_sources)
        .where(ingest_sources.c.id == source_id)
        .values(
            offset=to.offset,
            lines=to.lines,
            updated_at=now,
            malformed=ingest_sources.c.malformed + to.malformed,
            recognised_at=to.recognised_at,
            unrecognised=to.unrecognised,
            carried=to.carried,
        )
    )
