"""Listings: add, remove, find, bulk import, review of held ones.

Each change writes the audit log, and the change log when DNS must follow it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Connection, Row, and_, func, insert, or_, select, update

from rbl.errors import KeyFormatError, NotListedError, StoreError
from rbl.model.changes import OP_DELETE, OP_SET
from rbl.model.codes import check_count
from rbl.model.keys import IpKey, ListingKey, test_point_conflict
from rbl.model.suffixes import check_not_public_suffix
from rbl.store.audit import audit
from rbl.store.changelog import append_change, lock_change_log
from rbl.store.importer import ImportRow, import_rows
from rbl.store.locate import in_network, key_columns, prefixlen_of, wider
from rbl.store.rows import narrowed, record
from rbl.store.schema import ACTIVE, HELD, REMOVED, allowlist, listings
from rbl.store.timestamps import utc

MANUAL = "manual"


@dataclass(frozen=True, slots=True)
class Listing:
    zone: str
    key: str
    codes: tuple[str, ...]
    txt: str | None
    reason: str | None
    source: str
    state: str
    created_at: datetime
    updated_at: datetime
    expires_at: datetime | None
    first_seen: datetime | None = None
    last_seen: datetime | None = None
    hit_count: int = 0
    times_listed: int = 1
    delisted_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ListingEntry:
    """One line of a bulk import: a parsed key, its codes and optional TXT template."""

    key: ListingKey
    codes: tuple[str, ...]
    txt: str | None = None


def _listing(row: Row[tuple[object, ...]]) -> Listing:
    return record(Listing, row, codes=tuple(row.codes.split(",")))


def _check_listable(key: ListingKey) -> None:
    conflict = test_point_conflict(key)
    if conflict:
        raise KeyFormatError(conflict)
    check_not_public_suffix(key)


def add_listing(
    conn: Connection,
    zone: str,
    key: ListingKey,
    codes: tuple[str, ...],
    *,
    txt: str | None = None,
    reason: str | None = None,
    actor: str,
    now: datetime,
    source: str = MANUAL,
    expires_at: datetime | None = None,
) -> Listing:
    """List ``key`` in ``zone`` (or update an existing listing's codes and text)."""
    _check_listable(key)
    codes_text = ",".join(codes)
    check_count(codes, codes_text)  # whoever calls: a BIND secondary would refuse the zone
    lock_change_log(conn)
    existing = conn.execute(
        select(listings).where(listings.c.zone == zone, listings.c.key == key.text)
    ).first()
    values = {
        "codes": codes_text,
        "txt": txt,
        "reason": reason,
        "source": source,
        "state": ACTIVE,
        "updated_at": now,
        "expires_at": expires_at,
    }
    if existing is None:
        conn.execute(
            insert(listings).values(zone=zone, created_at=now, **key_columns(key), **values)
        )
    else:
        conn.execute(update(listings).where(listings.c.id == existing.id).values(**values))
    dns_changed = (
        existing is None
        or existing.state != ACTIVE
        or existing.codes != codes_text
        or existing.txt != txt
    )
    if dns_changed:
        append_change(
            conn, zone=zone, key=key.text, op=OP_SET, codes=codes_text, txt=txt, created_at=now
        )
    audit(
        conn,
        now=now,
        actor=actor,
        action="list",
        zone=zone,
        key=key.text,
        reason=reason,
        detail=f"codes={codes_text}" + (f" txt={txt!r}" if txt else ""),
    )
    found = get_listing(conn, zone, key)
    assert found is not None
    return found


def remove_listing(
    conn: Connection,
    zone: str,
    key: ListingKey | str,
    *,
    reason: str,
    actor: str,
    now: datetime,
) -> Listing:
    """End an active listing; raise NotListedError if there is none for exactly this key.

    ``key`` may be the stored key text (a removal request or the allowlist names it so).
    """
    text = key if isinstance(key, str) else key.text
    lock_change_log(conn)
    result = conn.execute(
        update(listings)
        .where(listings.c.zone == zone, listings.c.key == text, listings.c.state == ACTIVE)
        .values(state=REMOVED, updated_at=now, reason=reason, delisted_at=now)
    )
    if result.rowcount == 0:
        raise NotListedError(f"{text} has no active listing in {zone}")
    append_change(conn, zone=zone, key=text, op=OP_DELETE, created_at=now)
    audit(conn, now=now, actor=actor, action="unlist", zone=zone, key=text, reason=reason)
    found = get_listing(conn, zone, text)
    assert found is not None
    return found


def get_listing(conn: Connection, zone: str, key: ListingKey | str) -> Listing | None:
    """The listing row for exactly this key, active or not."""
    text = key if isinstance(key, str) else key.text
    row = conn.execute(
        select(listings).where(listings.c.zone == zone, listings.c.key == text)
    ).first()
    return None if row is None else _listing(row)


def covering_listings(conn: Connection, zone: str, key: ListingKey) -> list[Listing]:
    """Active listings that make ``key`` listed: the key itself or a wider network/subtree.

    The narrowest first. An allowlist entry holding ``key`` as narrowly as a
    listing or more is an exclusion in DNS (the most specific entry wins, as in
    rbl.index.tables): the listings it overrides make nothing listed and are left out,
    so an allowlisted address inside a listed /64 is not listed here either.
    """
    if isinstance(key, IpKey):
        condition = and_(listings.c.family == key.family, or_(*wider(listings, key)))
    else:
        parts = key.name.split(".")
        keys = [] if key.subdomains else [key.name]
        keys += ["*." + ".".join(parts[i:]) for i in range(0 if key.subdomains else 1, len(parts))]
        condition = listings.c.key.in_(keys)
    rows = conn.execute(
        select(listings)
        .where(listings.c.zone == zone, listings.c.state == ACTIVE, condition)
        .order_by(listings.c.prefixlen.desc(), func.length(listings.c.key).desc())
    )
    found = [_listing(row) for row in rows]
    if found and isinstance(key, IpKey):
        excluded = conn.execute(
            select(func.max(allowlist.c.prefixlen)).where(
                allowlist.c.family == key.family, or_(*wider(allowlist, key))
            )
        ).scalar_one()
        if excluded is not None:
            found = [listing for listing in found if prefixlen_of(listing.key) > excluded]
    return found


def listings_inside(conn: Connection, zone: str, key: IpKey) -> list[Listing]:
    """Active listings strictly inside network ``key``: what an escalated listing stands on."""
    rows = conn.execute(
        select(listings)
        .where(
            listings.c.zone == zone,
            listings.c.state == ACTIVE,
            listings.c.prefixlen > key.prefixlen,
            in_network(listings, key),
        )
        .order_by(listings.c.network, listings.c.prefixlen)
    )
    return [_listing(row) for row in rows]


def list_listings(
    conn: Connection,
    zone: str | None = None,
    *,
    include_removed: bool = False,
    limit: int = 100,
    search: str | None = None,
    source: str | None = None,
    state: str | None = None,
) -> list[Listing]:
    """Most recently changed listings first; ``search`` matches part of the key.

    Active ones only, unless ``include_removed`` (every state) or ``state`` names one.
    """
    query = select(listings).order_by(listings.c.updated_at.desc(), listings.c.id.desc())
    if search:
        query = query.where(listings.c.key.contains(search.strip().lower(), autoescape=True))
    if state is None and not include_removed:
        state = ACTIVE
    query = narrowed(query, listings, source=source, zone=zone, state=state)
    return [_listing(row) for row in conn.execute(query.limit(limit))]


def _held(conn: Connection, zone: str, text: str) -> Row[tuple[object, ...]]:
    row = conn.execute(
        select(listings).where(
            listings.c.zone == zone, listings.c.key == text, listings.c.state == HELD
        )
    ).first()
    if row is None:
        raise NotListedError(f"{text} has no listing held for review in {zone}")
    return row


def release_hold(
    conn: Connection, zone: str, key: ListingKey | str, *, reason: str, actor: str, now: datetime
) -> Listing:
    """List a held key for real: it goes to DNS now, as a listing episode of its own.

    A hold whose time has passed is refused rather than listed for a moment:
    its evidence is too old to list on (``rbl list add`` can still list it).
    """
    text = key if isinstance(key, str) else key.text
    lock_change_log(conn)
    row = _held(conn, zone, text)
    expires = utc(row.expires_at)
    if expires is not None and expires <= now:
        raise StoreError(
            f"the hold of {text} in {zone} lapsed at {expires:%Y-%m-%d %H:%M:%S}Z; "
            "list it with 'rbl list add' if it should still be listed"
        )
    append_change(
        conn, zone=zone, key=text, op=OP_SET, codes=row.codes, txt=row.txt, created_at=now
    )
    values = {"state": ACTIVE, "times_listed": row.times_listed + 1}
    return _settle_hold(conn, row, "release", values, reason=reason, actor=actor, now=now)


def reject_hold(
    conn: Connection, zone: str, key: ListingKey | str, *, reason: str, actor: str, now: datetime
) -> Listing:
    """Drop a hold: nothing reaches DNS, and only evidence newer than now can hold it again."""
    text = key if isinstance(key, str) else key.text
    lock_change_log(conn)
    row = _held(conn, zone, text)
    values = {"state": REMOVED, "delisted_at": now}
    return _settle_hold(conn, row, "reject", values, reason=reason, actor=actor, now=now)


def _settle_hold(
    conn: Connection,
    row: Row[tuple[object, ...]],
    action: str,
    values: dict[str, object],
    *,
    reason: str,
    actor: str,
    now: datetime,
) -> Listing:
    """End a hold with the operator's decision, audited with what it was held for."""
    conn.execute(
        update(listings)
        .where(listings.c.id == row.id, listings.c.state == HELD)
        .values(updated_at=now, reason=reason, **values)
    )
    audit(
        conn,
        now=now,
        actor=actor,
        action=action,
        zone=row.zone,
        key=row.key,
        reason=reason,
        detail=f"codes={row.codes} held for: {row.reason or ''}",
    )
    found = get_listing(conn, row.zone, row.key)
    assert found is not None
    return found


def import_listings(
    conn: Connection,
    zone: str,
    entries: Iterable[ListingEntry],
    *,
    reason: str | None,
    actor: str,
    now: datetime,
    source: str = MANUAL,
    what: str = "import",
) -> tuple[int, int]:
    """Bulk add or update; returns (added, changed). One audit row for the whole import.

    ``rbl list import`` builds its rows itself (rbl.store.importer); this is the same
    write for parsed entries.
    """
    return import_rows(
        conn,
        zone,
        [import_row(entry.key, ",".join(entry.codes), entry.txt) for entry in entries],
        reason=reason,
        actor=actor,
        now=now,
        source=source,
        what=what,
    )


def import_row(key: ListingKey, codes: str, txt: str | None) -> ImportRow:
    """The row ``import_rows`` takes for one parsed key."""
    if isinstance(key, IpKey):
        return (key.text, key.family, key.prefixlen, key.packed, codes, txt)
    return (key.text, 0, 0, None, codes, txt)


def now_utc() -> datetime:
    return datetime.now(UTC)
