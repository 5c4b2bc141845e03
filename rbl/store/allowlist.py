"""Allowlist entries: never listed automatically; every change audited."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import Connection, delete, insert, or_, select

from rbl.errors import NotListedError
from rbl.model.changes import OP_EXCLUDE, OP_UNEXCLUDE
from rbl.model.keys import DomainKey, IpKey, ListingKey, parse_domain_key, parse_ip_key
from rbl.model.suffixes import check_not_public_suffix
from rbl.policy.allowlist import Allowlist
from rbl.store.audit import audit
from rbl.store.changelog import append_change, lock_change_log
from rbl.store.listings import remove_listing
from rbl.store.locate import in_network, key_columns
from rbl.store.schema import ACTIVE, allowlist, listings


def add_allowed(
    conn: Connection,
    key: ListingKey,
    *,
    reason: str,
    actor: str,
    now: datetime,
    zones: Sequence[str] = (),
) -> bool:
    """Allowlist ``key``; False if it already was.

    In ``zones`` (those that take this kind of key) active listings inside
    ``key`` are delisted, and an exclusion goes through the change log, so DNS
    stops answering for it within a second, even inside a wider listing.
    """
    check_not_public_suffix(key, "allowlist entry")
    if zones:
        lock_change_log(conn)
    if conn.execute(select(allowlist.c.id).where(allowlist.c.key == key.text)).first():
        return False
    conn.execute(
        insert(allowlist).values(**key_columns(key), reason=reason, actor=actor, created_at=now)
    )
    audit(conn, now=now, actor=actor, action="allow", zone=None, key=key.text, reason=reason)
    for zone in zones:
        for inside in _listings_inside(conn, zone, key):
            remove_listing(
                conn, zone, inside, reason=f"allowlisted: {reason}", actor=actor, now=now
            )
        append_change(conn, zone=zone, key=key.text, op=OP_EXCLUDE, created_at=now)
    return True


def _listings_inside(conn: Connection, zone: str, key: ListingKey) -> list[str]:
    """Active listing keys that ``key`` covers entirely (the allowlist wins over them)."""
    if isinstance(key, IpKey):
        query = select(listings.c.key).where(
            listings.c.zone == zone,
            listings.c.state == ACTIVE,
            listings.c.prefixlen >= key.prefixlen,
            in_network(listings, key),
        )
    else:
        name = key.name
        query = select(listings.c.key).where(
            listings.c.zone == zone,
            listings.c.state == ACTIVE,
            listings.c.family == 0,
            or_(
                listings.c.key == name,
                listings.c.key == f"*.{name}",
                listings.c.key.endswith(f".{name}", autoescape=True),
            ),
        )
    return [row.key for row in conn.execute(query)]


def remove_allowed(
    conn: Connection,
    key: ListingKey,
    *,
    zones: Sequence[str] = (),
    reason: str,
    actor: str,
    now: datetime,
) -> None:
    """Take ``key`` off the allowlist; in ``zones`` DNS stops excluding it (change log)."""
    if zones:
        lock_change_log(conn)
    if conn.execute(delete(allowlist).where(allowlist.c.key == key.text)).rowcount == 0:
        raise NotListedError(f"{key.text} is not on the allowlist")
    audit(conn, now=now, actor=actor, action="unallow", zone=None, key=key.text, reason=reason)
    for zone in zones:
        append_change(conn, zone=zone, key=key.text, op=OP_UNEXCLUDE, created_at=now)


def allowed_keys(conn: Connection) -> list[ListingKey]:
    keys: list[ListingKey] = []
    for family, prefixlen, network, text in conn.execute(
        select(allowlist.c.family, allowlist.c.prefixlen, allowlist.c.network, allowlist.c.key)
    ):
        if family:
            keys.append(IpKey(family, int.from_bytes(network, "big"), prefixlen))
        else:
            keys.append(DomainKey(text.removeprefix("*."), text.startswith("*.")))
    return keys


def load_allowlist(conn: Connection) -> Allowlist:
    return Allowlist(allowed_keys(conn))


def parse_allow_key(text: str) -> ListingKey:
    """An IP/CIDR or a domain, whichever the text is."""
    head = text.strip().split("/", 1)[0]
    if ":" in head or head.replace(".", "").isdigit():
        return parse_ip_key(text)
    return parse_domain_key(text)
