"""Reading what DNS needs: the active listings at start-up, then the change log after an id.

A reader takes the change-log position *before* the snapshot and replays
every change after it: changes the snapshot already contains are replayed
idempotently (each row carries the full value), so no isolation level beyond
read-committed is needed.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from sqlalchemy import Connection, func, select

from rbl.store.schema import ACTIVE, change_log, listings


@dataclass(frozen=True, slots=True)
class Change:
    id: int
    zone: str
    key: str
    op: str  # schema.OP_SET or schema.OP_DELETE
    codes: str | None
    txt: str | None


SnapshotRow = tuple[str, int, int, bytes | None, str, str, str | None]
"""zone, family, prefixlen, network, key, codes, txt"""


def change_positions(conn: Connection) -> dict[str, int]:
    """The last change-log id per zone (zones never changed are absent)."""
    rows = conn.execute(
        select(change_log.c.zone, func.max(change_log.c.id)).group_by(change_log.c.zone)
    )
    return {zone: int(last) for zone, last in rows}


def last_change_id(conn: Connection) -> int:
    return int(conn.execute(select(func.coalesce(func.max(change_log.c.id), 0))).scalar_one())


def iter_active(conn: Connection, zones: Sequence[str]) -> Iterator[SnapshotRow]:
    """Active listings of ``zones``, IP keys ordered so the index can append without sorting."""
    query = (
        select(
            listings.c.zone,
            listings.c.family,
            listings.c.prefixlen,
            listings.c.network,
            listings.c.key,
            listings.c.codes,
            listings.c.txt,
        )
        .where(listings.c.state == ACTIVE, listings.c.zone.in_(list(zones)))
        .order_by(listings.c.zone, listings.c.family, listings.c.prefixlen, listings.c.network)
    )
    result = conn.execution_options(yield_per=20_000).execute(query)
    for partition in result.partitions():
        yield from partition


def read_changes(conn: Connection, after: int, limit: int) -> list[Change]:
    rows = conn.execute(
        select(
            change_log.c.id,
            change_log.c.zone,
            change_log.c.key,
            change_log.c.op,
            change_log.c.codes,
            change_log.c.txt,
        )
        .where(change_log.c.id > after)
        .order_by(change_log.c.id)
        .limit(limit)
    )
    return [Change(*row) for row in rows]
