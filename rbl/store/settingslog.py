"""The one write a DNS process makes: its zones' settings fingerprints, into the change log.

A node that starts or reloads with served settings (rbl.zonedata.fingerprint)
other than the zone's latest recorded ones appends an ``OP_SETTINGS`` row; every
node following the log bumps the zone's serial at that row, so serials stay
identical across nodes and secondaries transfer the new content. Two nodes
starting together with the same settings must record it once: the check and
the insert run under the lock every change-log writer takes (a PostgreSQL
advisory lock, rbl.store.changelog; SQLite's write lock with BEGIN IMMEDIATE),
so the second sees the first's row. The check runs once before the lock too: a
node whose settings are recorded (a restart, a ``--workers`` child) makes
writers wait for nothing. DNS-only processes import no SQLAlchemy,
so this is DB-API, on a connection of its own opened for the call (a start or
a reload, not a packet path): the reader's connection stays read-only.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rbl.errors import StoreError
from rbl.model.changes import CHANGE_LOG_LOCK, OP_SETTINGS
from rbl.store.reader import POSTGRESQL_SCHEMES, postgresql_conninfo, sqlite_path

_LATEST = "SELECT key FROM change_log WHERE zone = {m} AND op = {m} ORDER BY id DESC LIMIT 1"
_INSERT = (
    "INSERT INTO change_log (zone, key, op, codes, txt, created_at) "
    "VALUES ({m}, {m}, {m}, NULL, NULL, {m})"
)


def record_fingerprints(
    url: str,
    wanted: Mapping[str, str],
    now: datetime | None = None,
    *,
    checked: Callable[[], None] | None = None,
) -> dict[str, int]:
    """Append an ``OP_SETTINGS`` row for each zone whose latest recorded fingerprint
    is not ``wanted[zone]``; returns the ids written, by zone (empty: all recorded).

    ``checked`` runs between the reads and the inserts (tests widen the race there).
    Raises StoreError when the store cannot be written.
    """
    at = (now or datetime.now(UTC)).astimezone(UTC)
    if urlsplit(url).scheme in POSTGRESQL_SCHEMES:
        return _postgresql(url, wanted, at, checked)
    return _sqlite(sqlite_path(url), wanted, at, checked)


def _missing(connection: Any, m: str, wanted: Mapping[str, str]) -> dict[str, str]:
    """The zones whose latest recorded fingerprint differs from the wanted one."""
    missing = {}
    for zone, fingerprint in wanted.items():
        row = connection.execute(_LATEST.format(m=m), (zone, OP_SETTINGS)).fetchone()
        if row is None or row[0] != fingerprint:
            missing[zone] = fingerprint
    return missing


def _sqlite(
    path: str, wanted: Mapping[str, str], at: datetime, checked: Callable[[], None] | None
) -> dict[str, int]:
    if not Path(path).exists():
        raise StoreError(f"database {path} does not exist (run 'rbl db init')")
    # SQLAlchemy's SQLite DATETIME text, so the store reads the rows it wrote back alike.
    stamp = at.replace(tzinfo=None).isoformat(sep=" ", timespec="microseconds")
    written: dict[str, int] = {}
    try:
        connection = sqlite3.connect(path, timeout=30, isolation_level=None)
    except sqlite3.Error as exc:
        raise StoreError(f"cannot open database {path}: {exc}") from exc
    try:
        if not _missing(connection, "?", wanted):
            return written  # the common case (a restart, a worker): no lock taken
        connection.execute("BEGIN IMMEDIATE")  # the write lock, then the check again
        missing = _missing(connection, "?", wanted)
        if checked is not None:
            checked()
        for zone, fingerprint in missing.items():
            cursor = connection.execute(
                _INSERT.format(m="?"), (zone, fingerprint, OP_SETTINGS, stamp)
            )
            written[zone] = int(cursor.lastrowid or 0)
        connection.execute("COMMIT")
    except sqlite3.Error as exc:
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise StoreError(f"cannot record the zones' settings in {path}: {exc}") from exc
    finally:
        connection.close()
    return written


def _postgresql(
    url: str, wanted: Mapping[str, str], at: datetime, checked: Callable[[], None] | None
) -> dict[str, int]:
    try:
        import psycopg
    except ImportError as exc:
        raise StoreError("PostgreSQL needs psycopg 3 (pip install 'psycopg[binary]')") from exc
    keywords = {"application_name": "rbl-dns", "connect_timeout": "10", **postgresql_conninfo(url)}
    written: dict[str, int] = {}
    try:
        with psycopg.connect(**keywords, autocommit=True) as connection:  # type: ignore[arg-type]
            if not _missing(connection, "%s", wanted):
                return written  # the common case: no lock, no writer waits
            with connection.transaction():
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (CHANGE_LOG_LOCK,))
                missing = _missing(connection, "%s", wanted)
                if checked is not None:
                    checked()
                for zone, fingerprint in missing.items():
                    row = connection.execute(
                        _INSERT.format(m="%s") + " RETURNING id",
                        (zone, fingerprint, OP_SETTINGS, at),
                    ).fetchone()
                    written[zone] = int(row[0]) if row else 0
    except psycopg.Error as exc:
        raise StoreError(f"cannot record the zones' settings: {exc}") from exc
    return written
