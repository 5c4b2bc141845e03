"""Bulk import of listings: a million rows in one transaction, in seconds.

``rbl list import`` of a whole list is the one write that touches every row of a
zone. Rows arrive as plain tuples (:data:`ImportRow`, built by the caller once per
line) and go to the driver as tuples: no per-row SQLAlchemy bind processing, no
model objects. What is written is what the one-at-a-time path writes: a listing row
per key (its created/updated times in SQLAlchemy's own DATETIME text on SQLite), one
``set`` change-log row per key whose DNS answer changes, one audit row.

SQLite: the new rows are inserted in key order (the unique ``(zone, key)`` index
then grows at its end); when they are at least as many as the table already holds,
the two secondary indexes of ``listings`` are dropped and built again after the
insert, inside the same transaction (SQLite DDL is transactional: an interrupted
import leaves the old table and its indexes); the change-log rows of new listings
are copied by one ``INSERT ... SELECT`` in SQLite itself. PostgreSQL: ``COPY``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from itertools import chain
from operator import itemgetter
from typing import Any

from sqlalchemy import Connection, select

from rbl.errors import KeyFormatError
from rbl.model.changes import OP_SET
from rbl.model.codes import check_count
from rbl.model.keys import TEST_ADDRESSES, DomainKey, test_address_conflict, test_point_conflict
from rbl.model.suffixes import check_not_public_suffix
from rbl.store.audit import audit
from rbl.store.bulk import SQLITE_DATETIME
from rbl.store.changelog import lock_change_log
from rbl.store.schema import ACTIVE, change_log, listings

# key text, family (4, 6; 0 for domains), prefix length, network (big-endian; None
# for domains), codes text ("127.0.0.2,127.0.0.4"), own TXT template or None
ImportRow = tuple[str, int, int, bytes | None, str, str | None]

REBUILD_MIN = 50_000  # fewer new rows than this: the indexes take them in place
_V4_POINTS = frozenset(point.to_bytes(4, "big") for point in TEST_ADDRESSES[4])


def check_rows(rows: Iterable[ImportRow]) -> None:
    """Refuse what no listing may be, as ``add_listing`` does: an RFC 5782 test point,
    a public suffix, more codes than BIND takes at one name (same messages)."""
    counted: set[str] = set()
    for key, family, prefixlen, network, codes, _txt in rows:
        if family:
            assert network is not None
            # Most of a big list is single IPv4 addresses: a set lookup clears them.
            if family != 4 or prefixlen != 32 or network in _V4_POINTS:
                first = int.from_bytes(network, "big")
                conflict = test_address_conflict(family, first, prefixlen, key)
                if conflict:
                    raise KeyFormatError(conflict)
        else:
            domain = DomainKey(key[2:], True) if key.startswith("*.") else DomainKey(key)
            conflict = test_point_conflict(domain)
            if conflict:
                raise KeyFormatError(conflict)
            check_not_public_suffix(domain)
        if codes not in counted:
            check_count(tuple(codes.split(",")), codes)
            counted.add(codes)


def import_rows(
    conn: Connection,
    zone: str,
    rows: Sequence[ImportRow],
    *,
    reason: str | None,
    actor: str,
    now: datetime,
    source: str,
    what: str = "import",
) -> tuple[int, int]:
    """Add or update ``rows`` in ``zone``; returns (added, changed), counted line by line
    as before (a key given twice with different codes is added, then changed; the
    store keeps the last)."""
    lock_change_log(conn)
    if conn.dialect.name == "sqlite":
        _begin_sqlite(conn)
    check_rows(rows)
    existing: dict[str, tuple[str, str, str | None]] = {
        key: (state, codes, txt)
        for key, state, codes, txt in conn.execute(
            select(listings.c.key, listings.c.state, listings.c.codes, listings.c.txt).where(
                listings.c.zone == zone
            )
        )
    }
    final: dict[str, ImportRow] = {}
    added = changed = 0
    for row in rows:
        key = row[0]
        if key in final:
            if final[key][4:] == row[4:]:
                continue
            changed += 1
        else:
            old = existing.get(key)
            if old is None:
                added += 1
            elif old == (ACTIVE, row[4], row[5]):
                continue
            else:
                changed += 1
        final[key] = row
    inserts = [row for key, row in final.items() if key not in existing]
    inserts.sort(key=itemgetter(0))  # by key text alone: half the time of comparing tuples
    updates = [row for key, row in final.items() if key in existing]
    del final
    constants = {"zone": zone, "reason": reason, "source": source, "state": ACTIVE}
    if conn.dialect.name == "sqlite":
        _sqlite_write(conn, inserts, updates, constants, now)
    else:
        _copy_write(conn, inserts, updates, constants, now)
    audit(
        conn,
        now=now,
        actor=actor,
        action=what,
        zone=zone,
        key=None,
        reason=reason,
        detail=f"added={added} changed={changed}",
    )
    return added, changed


def _begin_sqlite(conn: Connection) -> None:
    """Open SQLite's transaction now, taking the write lock: the driver would open it
    only at the first INSERT, after the reads this import decides on, and would run the
    index drop before it on its own, committed at once."""
    driver = conn.connection.driver_connection
    if driver is not None and not driver.in_transaction:
        conn.exec_driver_sql("BEGIN IMMEDIATE")


_ROW_COLUMNS = ("key", "family", "prefixlen", "network", "codes", "txt")
_CACHE_KIB = 131_072  # SQLite page cache for the import: the indexes' pages stay in memory


def _sqlite_write(
    conn: Connection,
    inserts: list[ImportRow],
    updates: list[ImportRow],
    constants: dict[str, Any],
    now: datetime,
) -> None:
    """Inserts in key order with the constant columns as SQL literals (binding the
    same nine values a million times is a fifth of the insert), change rows copied
    inside SQLite, updates as one executemany. The secondary indexes are rebuilt when
    the new rows are at least as many as the table's (every zone's) rows, by id."""
    moment = (now.astimezone(UTC) if now.tzinfo else now).strftime(SQLITE_DATETIME)
    fixed = {
        **constants,
        "created_at": moment,
        "updated_at": moment,
        "expires_at": None,
        "hit_count": 0,
        "times_listed": 1,
    }
    cache = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
    conn.exec_driver_sql(f"PRAGMA cache_size=-{_CACHE_KIB}")
    try:
        if inserts:
            before = conn.execute(
                select(listings.c.id).order_by(listings.c.id.desc()).limit(1)
            ).scalar()
            indexes = sorted(listings.indexes, key=lambda index: str(index.name))
            rebuild = len(inserts) >= max(REBUILD_MIN, before or 0)
            if rebuild:
                for index in indexes:
                    index.drop(conn)
            values, bound = _sqlite_values(fixed)
            columns = ", ".join((*_ROW_COLUMNS, *fixed))
            placeholders = ", ".join(["?"] * len(_ROW_COLUMNS) + values)
            sql = f"INSERT INTO {listings.name} ({columns}) VALUES ({placeholders})"
            conn.exec_driver_sql(sql, [row + bound for row in inserts] if bound else inserts)
            if rebuild:
                for index in indexes:
                    index.create(conn)
            # the rows inserted above are those after ``before``: one writer at a time
            conn.exec_driver_sql(
                f"INSERT INTO {change_log.name} (zone, key, op, codes, txt, created_at) "
                f"SELECT zone, key, ?, codes, txt, created_at FROM {listings.name} "
                "WHERE zone = ? AND id > ? ORDER BY id",
                (OP_SET, constants["zone"], before or 0),
            )
        if updates:
            zone, reason, source = constants["zone"], constants["reason"], constants["source"]
            conn.exec_driver_sql(
                f"UPDATE {listings.name} SET codes = ?, txt = ?, reason = ?, source = ?, "
                "state = ?, updated_at = ?, expires_at = NULL WHERE zone = ? AND key = ?",
                [(r[4], r[5], reason, source, ACTIVE, moment, zone, r[0]) for r in updates],
            )
            conn.exec_driver_sql(
                f"INSERT INTO {change_log.name} (zone, key, op, codes, txt, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(zone, r[0], OP_SET, r[4], r[5], moment) for r in updates],
            )
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size={int(cache)}")


def _sqlite_values(fixed: dict[str, Any]) -> tuple[list[str], tuple[Any, ...]]:
    """Each constant as an SQL literal when it can be one exactly (an integer, NULL, a
    text without NUL, quotes doubled), else a ``?`` bound with every row."""
    values: list[str] = []
    bound: list[Any] = []
    for value in fixed.values():
        if value is None:
            values.append("NULL")
        elif type(value) is int:
            values.append(str(value))
        elif isinstance(value, str) and "\x00" not in value:
            values.append("'" + value.replace("'", "''") + "'")
        else:
            values.append("?")
            bound.append(value)
    return values, tuple(bound)


def _copy_write(
    conn: Connection,
    inserts: list[ImportRow],
    updates: list[ImportRow],
    constants: dict[str, Any],
    now: datetime,
) -> None:
    """PostgreSQL: new listings and every change row by ``COPY``, updates by one
    executemany, on the driver's cursor inside this transaction."""
    zone, reason, source = constants["zone"], constants["reason"], constants["source"]
    driver = conn.connection.driver_connection
    assert driver is not None
    with driver.cursor() as cursor:
        if inserts:
            with cursor.copy(
                f"COPY {listings.name} (zone, key, family, prefixlen, network, codes, txt, "
                "reason, source, state, created_at, updated_at, hit_count, times_listed) "
                "FROM STDIN"
            ) as copy:
                for key, family, prefixlen, network, codes, txt in inserts:
                    row = (zone, key, family, prefixlen, network, codes, txt)
                    copy.write_row((*row, reason, source, ACTIVE, now, now, 0, 1))
        if updates:
            cursor.executemany(
                f"UPDATE {listings.name} SET codes = %s, txt = %s, reason = %s, source = %s, "
                "state = %s, updated_at = %s, expires_at = NULL WHERE zone = %s AND key = %s",
                [(r[4], r[5], reason, source, ACTIVE, now, zone, r[0]) for r in updates],
            )
        with cursor.copy(
            f"COPY {change_log.name} (zone, key, op, codes, txt, created_at) FROM STDIN"
        ) as copy:
            for key, _, _, _, codes, txt in chain(inserts, updates):
                copy.write_row((zone, key, OP_SET, codes, txt, now))
