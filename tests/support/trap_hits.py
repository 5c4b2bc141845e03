"""Trap hits as the store tests make them, and one call that records a batch in a store.

``trap_hit`` is a RCPT to trap@example.org from 45.1.2.3 at ``NOW`` unless a
test changes a field; ``store_hits`` runs ``record_hits`` on a batch in one
transaction, as ingest and the policy feed do.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine

from rbl.config import ZoneSettings
from rbl.model.traphit import TrapHit
from rbl.model.traps import TrapMatcher
from rbl.policy.allowlist import Allowlist
from rbl.policy.listing import Rules
from rbl.store.evidence import BatchResult, record_hits

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def trap_hit(**changes: object) -> TrapHit:
    """A hit on trap@example.org from 45.1.2.3 at ``NOW``, with ``changes`` to its fields."""
    base: dict[str, object] = {
        "at": NOW,
        "client_ip": "45.1.2.3",
        "rcpt_to": "trap@example.org",
        "mail_from": "seller@spam.example",
        "helo": "spam.example",
        "feed": "test",
        "raw": "raw line",
    }
    base.update(changes)
    return TrapHit(**base)  # type: ignore[arg-type]


def store_hits(
    engine: Engine,
    batch: list[TrapHit],
    *,
    matcher: TrapMatcher,
    rules: Rules,
    ip_zone: ZoneSettings,
    domain_zone: ZoneSettings | None = None,
    allow: Allowlist | None = None,
    now: datetime = NOW,
) -> BatchResult:
    """``record_hits`` on ``batch`` in one transaction of ``engine``."""
    with engine.begin() as conn:
        return record_hits(
            conn,
            batch,
            matcher=matcher,
            allow=allow or Allowlist(),
            rules=rules,
            ip_zone=ip_zone,
            domain_zone=domain_zone,
            now=now,
        )
