"""Read-side queries for people: a key's evidence (operator CLI now, public pages later),
the audit log, and how many listings are in a state (``rbl doctor``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Connection, func, or_, select

from rbl.model.keys import MAX_PREFIXLEN, IpKey, ListingKey
from rbl.store.listings import in_network
from rbl.store.schema import audit_log, hits, listings
from rbl.store.timestamps import utc


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
    found = []
    for row in rows:
        at = utc(row.at)
        found.append(
            HitRow(
                at=at,
                client_ip=row.client_ip,
                client_name=row.client_name,
                helo=row.helo,
                mail_from=row.mail_from,
                rcpt_to=row.rcpt_to,
                trap_domain=row.trap_domain,
                feed=row.feed,
                action=row.action,
                reason=row.reason,
            )
        )
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
    if key is not None:
        query = query.where(audit_log.c.key == key)
    if actor is not None:
        query = query.where(audit_log.c.actor == actor)
    if action is not None:
        query = query.where(audit_log.c.action == action)
    rows = []
    for row in conn.execute(query):
        at = utc(row.at)
        rows.append(
            AuditRow(row.id, at, row.actor, row.action, row.zone, row.key, row.reason, row.detail)
        )
    return rows


def count_listings(conn: Connection, state: str) -> int:
    """How many listings, in every zone, are in ``state`` (``schema.ACTIVE``, ``HELD``...)."""
    query = select(func.count()).select_from(listings).where(listings.c.state == state)
    return int(conn.execute(query).scalar_one())
