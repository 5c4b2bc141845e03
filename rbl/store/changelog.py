"""Appending to the change log, the one ordered stream every DNS node follows.

Followers read ``id > last`` and never look back, so ids must become visible
in id order. SQLite has one writer at a time, so they do. On PostgreSQL the
sequence hands out ids at insert time while transactions commit in any order:
a follower could read id 12 before id 11 commits and skip 11 for good. Every
transaction that writes change rows therefore first takes one transaction-level
advisory lock; change-log writers then run one after another from the lock to
their commit, so ids commit in order.

Store functions that may write change rows take the lock at their start, before
they read or write any listing: a writer that held the lock while waiting for a
row another writer had locked, itself waiting for the lock, would deadlock, and
the read-decide-write of a batch of hits must not interleave with another
writer's anyway. ``append_changes`` takes it too, so no change row is ever
written without it.

Old rows are pruned (``prune_changes``); a follower that was behind the
pruned rows learns so from ``change_log_pruned`` and reloads its snapshot.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, insert, select, text, update

from rbl.model.changes import CHANGE_LOG_LOCK, OP_SETTINGS
from rbl.store.bulk import insert_many
from rbl.store.schema import change_log, change_log_pruned
from rbl.store.timestamps import utc

_LOCKED = "rbl_change_log_locked_in"  # connection info: the transaction holding the lock


def lock_change_log(conn: Connection) -> None:
    """Serialise this transaction's change-log writes (PostgreSQL; a no-op elsewhere).

    The lock is released at commit or rollback; taking it again in the same
    transaction is free.
    """
    if conn.dialect.name != "postgresql":
        return
    transaction = conn.get_transaction()
    if transaction is not None and conn.info.get(_LOCKED) is transaction:
        return  # held until this transaction ends
    conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": CHANGE_LOG_LOCK})
    conn.info[_LOCKED] = conn.get_transaction()


def append_changes(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert change-log rows (``zone``, ``key``, ``op``, ``codes``, ``txt``, ``created_at``)."""
    if not rows:
        return
    lock_change_log(conn)
    insert_many(conn, change_log, [dict(row) for row in rows])  # SQLite: the driver fast path


def append_change(
    conn: Connection,
    *,
    zone: str,
    key: str,
    op: str,
    created_at: Any,
    codes: str | None = None,
    txt: str | None = None,
) -> None:
    """Insert one change-log row (see ``append_changes``)."""
    append_changes(
        conn,
        [
            {
                "zone": zone,
                "key": key,
                "op": op,
                "codes": codes,
                "txt": txt,
                "created_at": created_at,
            }
        ],
    )


PRUNE_BATCH = 10_000  # rows deleted per transaction: a writer waits at most one batch


def prune_changes(engine: Engine, before: datetime, batch: int = PRUNE_BATCH) -> int:
    """Delete change-log rows created before ``before``; the number deleted.

    Each zone's newest row stays whatever its age: the SOA serial is the id of
    the zone's last row, and a serial must never go back. So does its newest
    settings row: it is the fingerprint a starting node compares its own with
    (rbl.store.settingslog); lost, every node would record it again. Every transaction
    also raises ``change_log_pruned.through`` to the highest id it deleted, so
    a follower still behind that id knows it may have missed rows and loads a
    fresh snapshot (rbl.server.changes). Short transactions: ingest and the live feed
    wait for at most one batch.
    """
    deleted = 0
    while True:
        with engine.begin() as conn:
            newest = select(func.max(change_log.c.id)).group_by(change_log.c.zone)
            settings = (
                select(func.max(change_log.c.id))
                .where(change_log.c.op == OP_SETTINGS)
                .group_by(change_log.c.zone)
            )
            ids = list(
                conn.execute(
                    select(change_log.c.id)
                    .where(
                        change_log.c.created_at < before,
                        change_log.c.id.not_in(newest),
                        change_log.c.id.not_in(settings),
                    )
                    .order_by(change_log.c.id)
                    .limit(batch)
                ).scalars()
            )
            if not ids:
                return deleted
            conn.execute(delete(change_log).where(change_log.c.id.in_(ids)))
            _raise_horizon(conn, max(ids), datetime.now(UTC))
            deleted += len(ids)
        if len(ids) < batch:
            return deleted


def _raise_horizon(conn: Connection, through: int, at: datetime) -> None:
    found = conn.execute(
        select(change_log_pruned.c.through).where(change_log_pruned.c.id == 1)
    ).scalar()
    if found is None:
        conn.execute(insert(change_log_pruned).values(id=1, through=through, pruned_at=at))
    elif through > found:
        conn.execute(
            update(change_log_pruned)
            .where(change_log_pruned.c.id == 1)
            .values(through=through, pruned_at=at)
        )


@dataclass(frozen=True, slots=True)
class Behind:
    """How far a secondary at some serial is behind a zone (``behind``)."""

    position: int  # the zone's newest change-log id: what rbl's serial comes from
    changes: int  # change rows of the zone after the secondary's (kept ones)
    since: datetime | None  # when the first of them was written (None: not behind)
    pruned: bool  # rows after the secondary's serial were pruned: behind for longer still


def behind(conn: Connection, zone: str, serial: int) -> Behind:
    """What a secondary serving ``zone`` at ``serial`` has not got yet, and since when.

    The serial is the id of the zone's last change-log row, mod 2**32 (0 read
    as 1: rbl.dnsserver.zone), so the secondary's row id is found back from
    the zone's newest id. A secondary at or ahead of rbl's serial is not behind.
    """
    position = conn.execute(
        select(func.max(change_log.c.id)).where(change_log.c.zone == zone)
    ).scalar()
    position = int(position or 0)
    ours = position % (1 << 32) or 1
    lag = (ours - serial) % (1 << 32)
    if lag == 0 or lag >= 1 << 31:
        return Behind(position, 0, None, False)
    theirs = position - lag
    first, count = conn.execute(
        select(func.min(change_log.c.created_at), func.count()).where(
            change_log.c.zone == zone, change_log.c.id > theirs
        )
    ).one()
    through = conn.execute(
        select(change_log_pruned.c.through).where(change_log_pruned.c.id == 1)
    ).scalar()
    return Behind(position, int(count), utc(first), through is not None and through > theirs)
