"""The audit log written: one row for every change an operator or the policy makes.

Every store function that changes a listing, the allowlist, traps, requests or
the quarantine says who did it and why through ``audit``; the rows are read back
by rbl.store.queries (``audit_entries``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert

from rbl.store.schema import audit_log

POLICY_ACTOR = "policy"  # the actor of what trap evidence decided (rbl.policy.listing)


def audit(
    conn: Connection,
    *,
    now: datetime,
    actor: str,
    action: str,
    zone: str | None,
    key: str | None,
    reason: str | None,
    detail: str | None = None,
) -> None:
    row = {"at": now, "actor": actor, "action": action, "zone": zone, "key": key}
    conn.execute(insert(audit_log).values(reason=reason, detail=detail, **row))
