"""The quarantine: lines and live-feed hits set aside because they could not be parsed or stored.

Nothing read is lost. A line its parser refuses, or whose hits the store
refuses for good, is kept here whole (the bytes as read, NUL and non-UTF-8
bytes too) with where it came from (file, byte offset of its start, line
number) and why; ingest writes it in the same transaction that moves the
file's committed position past it, so a re-run neither loses it nor sets it
aside twice. A live-feed hit has no line: it is kept as the request it came
in as, with the hit itself as JSON (the request alone has no time).
``rbl quarantine refeed`` parses a line again with the current parser and
stores its hits (``rbl.feeds.refeed``); ``drop`` gives up on it, audited.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row, and_, func, or_, select, update

from rbl.errors import StoreError
from rbl.model.traphit import TrapHit, hit_to_json
from rbl.store.audit import audit
from rbl.store.bulk import insert_many
from rbl.store.schema import DROPPED, QUARANTINED, REFED, SOURCE_POLICY, quarantine

STATES = (QUARANTINED, REFED, DROPPED)
MAX_REASON = 2000  # characters: an exception's text can quote a whole line


@dataclass(frozen=True, slots=True)
class Quarantined:
    """A line (or live-feed hit) to set aside, and why."""

    source: str  # file path as given, "<stdin>", or "policy"
    format: str
    line: bytes
    reason: str
    source_id: int | None = None  # ingest_sources.id of the file, when it has one
    offset: int | None = None  # byte offset of the line's start
    line_number: int | None = None
    feed: str | None = None
    tz: str | None = None
    hit: str | None = None  # hit_to_json of a live-feed hit


def policy_entry(hit: TrapHit, reason: str) -> Quarantined:
    """A live-feed hit set aside: the request as recorded, and the hit to store again."""
    return Quarantined(
        source=SOURCE_POLICY,
        format=SOURCE_POLICY,
        line=hit.raw.encode("utf-8", "backslashreplace"),
        reason=reason,
        feed=hit.feed,
        hit=hit_to_json(hit),
    )


def storable(text: str | None) -> str | None:
    """``text`` as any database holds it: NUL and lone surrogates written as escapes."""
    if text is None or (text.isascii() and "\x00" not in text):
        return text
    return text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")


def quarantine_lines(conn: Connection, entries: Sequence[Quarantined], *, now: datetime) -> int:
    """Set ``entries`` aside in the caller's transaction; returns how many were new.

    A line already kept from the same file at the same offset (a batch
    retried after its COMMIT's outcome was lost, standard input fed again)
    is not kept twice.
    """
    if not entries:
        return 0
    kept = _already_kept(conn, [e for e in entries if e.offset is not None])
    rows = []
    for entry in entries:
        if _place(entry.source_id, entry.source, entry.offset, entry.line) in kept:
            continue
        rows.append(
            {
                "at": now,
                "format": entry.format,
                "feed": _cut(entry.feed, "feed"),
                "tz": _cut(entry.tz, "tz"),
                "source": storable(entry.source),
                "source_id": entry.source_id,
                "offset": entry.offset,
                "line_number": entry.line_number,
                "line": entry.line,
                "hit": entry.hit,
                "reason": storable(entry.reason[:MAX_REASON]),
                "state": QUARANTINED,
                "refed_at": None,
            }
        )
    insert_many(conn, quarantine, rows)
    return len(rows)


def _cut(text: str | None, column: str) -> str | None:
    """Fitted to its column: PostgreSQL refuses a longer value (SQLite takes it)."""
    length = getattr(quarantine.c[column].type, "length", None)
    fitted = storable(text)
    return fitted if fitted is None or length is None else fitted[:length]


Place = tuple[int | None, str | None, int | None, bytes]


def _place(source_id: int | None, source: str, offset: int | None, line: bytes) -> Place:
    """Where a line was read: its file's id, or for standard input its name; the offset."""
    return source_id, None if source_id is not None else storable(source), offset, line


def _already_kept(conn: Connection, entries: Sequence[Quarantined]) -> set[Place]:
    q = quarantine.c
    places = [
        and_(
            q.source_id == e.source_id
            if e.source_id is not None
            else and_(q.source_id.is_(None), q.source == storable(e.source)),
            q.offset == e.offset,
        )
        for e in entries
    ]
    found: set[Place] = set()
    for start in range(0, len(places), 200):
        for row in conn.execute(
            select(q.source_id, q.source, q.offset, q.line).where(or_(*places[start : start + 200]))
        ):
            found.add(_place(row.source_id, row.source, row.offset, bytes(row.line)))
    return found


def list_quarantined(
    conn: Connection,
    *,
    state: str | None = QUARANTINED,
    source: str | None = None,
    limit: int = 100,
    after: int = 0,
) -> list[Row[Any]]:
    """Kept lines with ids above ``after``, oldest first; ``state`` None for every state."""
    query = select(quarantine).where(quarantine.c.id > after).order_by(quarantine.c.id)
    query = query.limit(limit)
    if state is not None:
        query = query.where(quarantine.c.state == state)
    if source is not None:
        query = query.where(quarantine.c.source == source)
    return list(conn.execute(query))


def get_quarantined(conn: Connection, ids: Sequence[int]) -> list[Row[Any]]:
    """The rows with these ids, in the order given; StoreError names any that is missing."""
    rows = {row.id: row for row in conn.execute(select(quarantine).where(quarantine.c.id.in_(ids)))}
    missing = [str(i) for i in ids if i not in rows]
    if missing:
        raise StoreError(f"no quarantined line with id {', '.join(missing)}")
    return [rows[i] for i in ids]


def count_by_state(conn: Connection) -> dict[str, int]:
    return {
        state: int(count)
        for state, count in conn.execute(
            select(quarantine.c.state, func.count()).group_by(quarantine.c.state)
        )
    }


def mark_refed(conn: Connection, row_id: int, *, now: datetime) -> bool:
    """The line's hits are stored: it leaves the quarantine (False if it already had)."""
    done = conn.execute(
        update(quarantine)
        .where(quarantine.c.id == row_id, quarantine.c.state == QUARANTINED)
        .values(state=REFED, refed_at=now)
    )
    return bool(done.rowcount)


def note_refusal(conn: Connection, row_id: int, reason: str) -> None:
    """A refeed failed again: the line stays, with the reason of this try."""
    conn.execute(
        update(quarantine)
        .where(quarantine.c.id == row_id)
        .values(reason=storable(reason[:MAX_REASON]))
    )


def drop_quarantined(
    conn: Connection, row: Row[Any], *, actor: str, reason: str, now: datetime
) -> bool:
    """Give up on a kept line (it stays, marked dropped); audited. False if not quarantined."""
    done = conn.execute(
        update(quarantine)
        .where(quarantine.c.id == row.id, quarantine.c.state == QUARANTINED)
        .values(state=DROPPED)
    )
    if not done.rowcount:
        return False
    audit(
        conn,
        now=now,
        actor=actor,
        action="quarantine-drop",
        zone=None,
        key=None,
        reason=reason,
        detail=storable(f"quarantine id={row.id} source={row.source} line={row.line_number}"),
    )
    return True
