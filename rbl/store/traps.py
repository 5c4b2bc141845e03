"""Trap definitions: add, remove, list, import; every change audited."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from rbl.errors import NotListedError
from rbl.model.traps import TrapSpec
from rbl.policy.trapfilter import TrapFilter
from rbl.store.audit import audit
from rbl.store.schema import traps


def add_trap(
    conn: Connection, trap: TrapSpec, *, note: str | None, actor: str, now: datetime
) -> bool:
    """Define (or re-activate) a trap; False if it was already active."""
    row = conn.execute(
        select(traps.c.id, traps.c.active).where(
            traps.c.kind == trap.kind, traps.c.value == trap.value
        )
    ).first()
    if row is not None and row.active:
        return False
    if row is None:
        conn.execute(
            insert(traps).values(
                kind=trap.kind,
                value=trap.value,
                note=note,
                active=True,
                created_at=now,
                updated_at=now,
            )
        )
    else:
        conn.execute(
            update(traps).where(traps.c.id == row.id).values(active=True, note=note, updated_at=now)
        )
    audit(conn, now=now, actor=actor, action="trap-add", zone=None, key=trap.text, reason=note)
    return True


def remove_trap(
    conn: Connection, trap: TrapSpec, *, reason: str, actor: str, now: datetime
) -> None:
    result = conn.execute(
        update(traps)
        .where(traps.c.kind == trap.kind, traps.c.value == trap.value, traps.c.active)
        .values(active=False, updated_at=now)
    )
    if result.rowcount == 0:
        raise NotListedError(f"{trap.text} is not an active trap")
    audit(conn, now=now, actor=actor, action="trap-remove", zone=None, key=trap.text, reason=reason)


def active_traps(conn: Connection) -> list[TrapSpec]:
    rows = conn.execute(
        select(traps.c.kind, traps.c.value)
        .where(traps.c.active)
        .order_by(traps.c.kind, traps.c.value)
    )
    return [TrapSpec(kind, value) for kind, value in rows]


def trap_rows(conn: Connection) -> list[tuple[TrapSpec, bool, str | None, datetime]]:
    rows = conn.execute(
        select(
            traps.c.kind, traps.c.value, traps.c.active, traps.c.note, traps.c.created_at
        ).order_by(traps.c.kind, traps.c.value)
    )
    return [(TrapSpec(k, v), bool(a), n, c) for k, v, a, n, c in rows]


def import_traps(
    conn: Connection, specs: Iterable[TrapSpec], *, note: str | None, actor: str, now: datetime
) -> tuple[int, int]:
    """Add many traps in one transaction; returns (added, already active)."""
    added = present = 0
    for spec in specs:
        if add_trap(conn, spec, note=note, actor=actor, now=now):
            added += 1
        else:
            present += 1
    return added, present


def trap_filter(conn: Connection) -> TrapFilter:
    """The filter for public outputs: every trap ever defined, active or retired."""
    rows = conn.execute(select(traps.c.kind, traps.c.value))
    return TrapFilter.of_rows((kind, value) for kind, value in rows)
