"""What the public lookup page may show about a key: status and evidence, never trap addresses.

The selected columns are the whole of it: ``rcpt_to`` (the trap address) and
``raw`` (the log line, which contains it) are never read here, so no page
built on this module can reveal a trap.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import Connection, func, select

from rbl.keys import ListingKey
from rbl.store.listings import Listing, covering_listings, get_listing
from rbl.store.queries import evidence_condition
from rbl.store.schema import HELD, PENDING, hits, removal_requests
from rbl.store.timestamps import utc


@dataclass(frozen=True, slots=True)
class PublicHit:
    at: datetime
    trap_domain: str | None
    helo: str | None
    mail_from: str | None
    feed: str
    listed: bool  # did this hit count against the address


@dataclass(frozen=True, slots=True)
class PublicStatus:
    zone: str
    key: str  # what was looked up, canonical
    listing: Listing | None  # the active listing that makes it listed, if any
    last_listing: Listing | None  # the most recent one, for "was listed until ..."
    evidence_total: int
    evidence: list[PublicHit]
    daily_hits: list[tuple[date, int]]  # last ``days`` days, oldest first, zeros included
    pending_requests: int  # waiting for review; never which ones (their links are private)


def public_status(
    conn: Connection,
    zone: str,
    key: ListingKey,
    *,
    now: datetime,
    evidence_limit: int = 50,
    days: int = 90,
) -> PublicStatus:
    covering = covering_listings(conn, zone, key)
    active = covering[0] if covering else None
    last = active or get_listing(conn, zone, key)
    if last is not None and (last.state == HELD or last.times_listed == 0):
        last = None  # held for review, or a hold that ended: never published
    condition = evidence_condition(key)
    total = int(conn.execute(select(func.count()).select_from(hits).where(condition)).scalar_one())
    rows = conn.execute(
        select(
            hits.c.at,
            hits.c.trap_domain,
            hits.c.helo,
            hits.c.mail_from,
            hits.c.feed,
            hits.c.counted,
        )
        .where(condition)
        .order_by(hits.c.at.desc(), hits.c.id.desc())
        .limit(evidence_limit)
    )
    evidence = [
        PublicHit(
            at=utc(at),
            trap_domain=trap_domain,
            helo=helo,
            mail_from=mail_from,
            feed=feed,
            listed=bool(counted),
        )
        for at, trap_domain, helo, mail_from, feed, counted in rows
    ]
    start = (now - timedelta(days=days - 1)).date()
    per_day: dict[date, int] = {}
    for (moment,) in conn.execute(
        select(hits.c.at).where(
            condition, hits.c.at >= datetime.combine(start, datetime.min.time(), tzinfo=UTC)
        )
    ):
        day = utc(moment).date()
        per_day[day] = per_day.get(day, 0) + 1
    daily = [
        (start + timedelta(days=i), per_day.get(start + timedelta(days=i), 0)) for i in range(days)
    ]
    pending = 0
    if last is not None:  # a count only: each request's token is its requester's alone
        pending = int(
            conn.execute(
                select(func.count())
                .select_from(removal_requests)
                .where(
                    removal_requests.c.zone == zone,
                    removal_requests.c.key == last.key,
                    removal_requests.c.state == PENDING,
                )
            ).scalar_one()
        )
    return PublicStatus(
        zone=zone,
        key=key.text,
        listing=active,
        last_listing=last,
        evidence_total=total,
        evidence=evidence,
        daily_hits=daily,
        pending_requests=pending,
    )
