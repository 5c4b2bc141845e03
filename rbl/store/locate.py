"""Where a listing key's rows are: the columns that locate it, and the networks around it.

An IP key is stored as family, prefix length and its network as big-endian
bytes, which sort like the integer: a network's rows (hits or listings inside
it) are then a range of one column, and the networks holding a key a handful
of equalities. Every store module that finds rows by key builds on these.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Table, and_

from rbl.model.keys import MAX_PREFIXLEN, MIN_PREFIXLEN, IpKey, ListingKey


def key_columns(key: ListingKey, text: str | None = None) -> dict[str, object]:
    """The columns that locate a key, with the network as big-endian bytes (sorts as integer)."""
    if isinstance(key, IpKey):
        return {
            "key": text or key.text,
            "family": key.family,
            "prefixlen": key.prefixlen,
            "network": key.packed,
        }
    return {"key": text or key.text, "family": 0, "prefixlen": 0, "network": None}


def wider(table: Table, key: IpKey) -> list[ColumnElement[bool]]:
    """Conditions for rows of ``table`` whose network holds ``key`` (itself included)."""
    return [
        and_(table.c.prefixlen == prefixlen, table.c.network == key.widen(prefixlen).packed)
        for prefixlen in range(key.prefixlen, MIN_PREFIXLEN[key.family] - 1, -1)
    ]


def in_network(table: Table, key: IpKey) -> ColumnElement[bool]:
    """Rows of ``table`` (hits or listings: ``family``, ``network``) whose address or
    network starts inside network ``key``: a range of the big-endian network column."""
    last = IpKey(key.family, key.last, MAX_PREFIXLEN[key.family]).packed
    return and_(
        table.c.family == key.family, table.c.network >= key.packed, table.c.network <= last
    )


def prefixlen_of(text: str) -> int:
    """The prefix length of an IP key's text (an address alone: its full length)."""
    head, _, length = text.partition("/")
    return int(length) if length else (128 if ":" in head else 32)
