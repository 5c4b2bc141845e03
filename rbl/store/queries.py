"""Read-side queries for people: a key's evidence (operator CLI now, public pages later),
the audit log, and how many listings are in a state (``rbl doctor``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Connection, func, or_, select

from rbl.model.keys import MAX_PREFIXLEN, IpKey, ListingKey
from rbl.store.locate import in_network
from rbl.store.rows import narrowed, record
from rbl.store.schema import audit_log, hits, listings


@dataclass(frozen=True, slots=True)
class HitRow:
    at: datetime
    client_ip: str
    client_name: str | None
    helo: str | None
    mail_from: str | None
    rcpt_to: str | None  # operator eyes only: public output shows trap_domain
    trap_domain: str | None
    feed: str
    action: str
    reason: str


def evidence_condition(key: ListingKey) -> ColumnElement[bool]:
    if isinstance(key, IpKey):
        if key.prefixlen == MAX_PREFIXLEN[key.family]:
            return hits.c.client_ip == key.text
        # A network's evidence is the hits of its addresses (hits.network, a range).
        return in_network(hits, key)
    name = key.name
    return or_(
        hits.c.sender_domain == name,
        func.lower(hits.c.helo) == name,
        hits.c.client_name == name,
        hits.c.client_name.endswith("." + name, autoescape=True),
    )


def evidence_for(conn: Connection, key: ListingKey, limit: int) -> tuple[int, list[HitRow]]:
    """(all matching hits, the newest ``limit`` of them)."""
    condition = evidence_condition(key)
    total = int(conn.execute(select(func.count()).select_from(hits).where(condition)).scalar_one())
    rows = conn.execute(
        select(
            hits.c.at,
            hits.c.client_ip,
            hits.c.client_name,
            hits.c.helo,
            hits.c.mail_from,
            hits.c.rcpt_to,
            hits.c.trap_domain,
            hits.c.feed,
            hits.c.action,
            hits.c.reason,
        )
        .where(condition)
        .order_by(hits.c.at.desc(), hits.c.id.desc())
        .limit(limit)
    )
    found = [record(HitRow, row) for row in rows]
    return total, found


@dataclass(frozen=True, slots=True)
class AuditRow:
    id: int
    at: datetime
    actor: str
    action: str
    zone: str | None
    key: str | None
    reason: str | None
    detail: str | None


def audit_entries(
    conn: Connection,
    *,
    key: str | None = None,
    actor: str | None = None,
    action: str | None = None,
    limit: int = 50,
) -> list[AuditRow]:
    """Newest first; ``key`` matches exactly."""
    query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    query = narrowed(query, audit_log, key=key, actor=actor, action=action)
    return [record(AuditRow, row) for row in conn.execute(query)]


def count_listings(conn: Connection, state: str) -> int:
    """How many listings, in every zone, are in ``state`` (``schema.ACTIVE``, ``HELD``...)."""
    query = select(func.count()).select_from(listings).where(listings.c.state == state)
    return int(conn.execute(query).scalar_one())
