"""What a batch of hits decided, written: listing rows, change-log rows and audit rows.

One executemany per statement shape (bulk ingest writes thousands a batch).
A new listing episode writes a change-log row DNS follows; a new hold only an
audit row, as it reaches no DNS until the operator releases it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, update

from rbl.config import ZoneSettings
from rbl.model.changes import OP_SET
from rbl.store.audit import POLICY_ACTOR
from rbl.store.bulk import insert_many
from rbl.store.changelog import append_changes
from rbl.store.history import ListingState
from rbl.store.locate import key_columns
from rbl.store.schema import SOURCE_TRAP, audit_log, listings

# What the batch changes in a listing row (ListingState's attributes of the same names).
_CHANGED = ("state", "expires_at", "first_seen", "last_seen", "hit_count", "times_listed")


def write_listings(
    conn: Connection, zone: ZoneSettings, rows: Iterable[ListingState], now: datetime
) -> bool:
    """Write the batch's listing changes with one executemany per statement shape.

    True if it wrote change-log rows (what DNS answers changed)."""
    codes = ",".join(zone.default_codes)
    inserts: list[dict[str, Any]] = []
    relisted: list[dict[str, Any]] = []
    extended: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    audits: list[dict[str, Any]] = []
    for row in rows:
        if not row.dirty:
            continue
        values = {name: getattr(row, name) for name in _CHANGED}
        values.update(updated_at=now, reason=row.reason)
        if row.id is None:
            inserts.append(
                {
                    "zone": zone.name,
                    "codes": codes,
                    "txt": None,
                    "source": SOURCE_TRAP,
                    "created_at": now,
                    **key_columns(row.key, row.text),
                    **values,
                }
            )
        elif row.new_episode or row.new_hold:
            relisted.append({"b_id": row.id, **values})
        else:
            extended.append({"b_id": row.id, **values})
        for action, happened in (("hold", row.new_hold), ("list", row.new_episode)):
            if happened:
                audits.append(
                    {
                        "at": now,
                        "actor": POLICY_ACTOR,
                        "action": action,
                        "zone": zone.name,
                        "key": row.text,
                        "reason": row.reason,
                        "detail": f"codes={codes}",
                    }
                )
        if row.new_episode:
            changes.append(
                {
                    "zone": zone.name,
                    "key": row.text,
                    "op": OP_SET,
                    "codes": codes,
                    "txt": None,
                    "created_at": now,
                }
            )
    bound: dict[str, Any] = {name: bindparam(name) for name in (*_CHANGED, "updated_at", "reason")}
    by_id = listings.c.id == bindparam("b_id")
    insert_many(conn, listings, inserts)
    if relisted:
        conn.execute(
            update(listings)
            .where(by_id)
            .values(codes=codes, txt=None, source=SOURCE_TRAP, **bound),
            relisted,
        )
    if extended:
        conn.execute(update(listings).where(by_id).values(**bound), extended)
    append_changes(conn, changes)
    insert_many(conn, audit_log, audits)
    return bool(changes)
