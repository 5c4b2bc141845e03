"""Allowlist entries: never listed automatically; every change audited."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, delete, insert, select

from rbl.allowlist import Allowlist
from rbl.errors import NotListedError
from rbl.keys import DomainKey, IpKey, ListingKey, parse_domain_key, parse_ip_key
from rbl.store.listings import audit, key_columns
from rbl.store.schema import allowlist


def add_allowed(
    conn: Connection, key: ListingKey, *, reason: str, actor: str, now: datetime
) -> bool:
    """Allowlist ``key``; False if it already was."""
    if conn.execute(select(allowlist.c.id).where(allowlist.c.key == key.text)).first():
        return False
    conn.execute(
        insert(allowlist).values(**key_columns(key), reason=reason, actor=actor, created_at=now)
    )
    audit(conn, now=now, actor=actor, action="allow", zone=None, key=key.text, reason=reason)
    return True


def remove_allowed(
    conn: Connection, key: ListingKey, *, reason: str, actor: str, now: datetime
) -> None:
    if conn.execute(delete(allowlist).where(allowlist.c.key == key.text)).rowcount == 0:
        raise NotListedError(f"{key.text} is not on the allowlist")
    audit(conn, now=now, actor=actor, action="unallow", zone=None, key=key.text, reason=reason)


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
