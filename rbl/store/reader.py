"""Read-only access for DNS processes: the start-up snapshot and the change log.

A DNS process runs three queries and nothing else, so it talks DB-API
directly instead of importing SQLAlchemy: that keeps about 13 MB of modules
out of every DNS process (the difference between fitting three times
rbldnsd's memory and not), and lets SQLite stream a million rows from a
covering index in under a second. The table and column names are those of
``rbl.store.schema``; the tests run these queries against tables that schema
created. Writes never come through here.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from rbl.errors import ConfigError, StoreError

_BATCH = 2_000


@dataclass(frozen=True, slots=True)
class Change:
    """One change-log row: what a key in a zone answers from now on."""

    id: int
    zone: str
    key: str
    op: str  # schema.OP_SET or schema.OP_DELETE
    codes: str | None
    txt: str | None


IpRow = tuple[str, int, int, bytes, str, str | None]
"""zone, family, prefixlen, network (big-endian), codes, txt"""
DomainRow = tuple[str, str, str, str | None]
"""zone, key, codes, txt"""


def sqlite_path(url: str) -> str:
    """The file path of a ``sqlite:///...`` URL (the only kind a DNS process reads yet)."""
    parts = urlsplit(url)
    if parts.scheme not in ("sqlite", "sqlite+pysqlite"):
        raise ConfigError(
            f"database {url!r}: DNS processes read SQLite (sqlite:///PATH) in this version"
        )
    path = unquote(parts.path)
    path = path[1:] if path.startswith("/") else path
    if not path or path == ":memory:":
        raise ConfigError(f"database {url!r}: a DNS process needs a database file")
    return path


class ListingReader:
    """One SQLite connection, used by one thread at a time (the DNS process's pool)."""

    def __init__(self, url: str) -> None:
        self.path = sqlite_path(url)
        self._lock = threading.Lock()
        self._connection: sqlite3.Connection | None = None

    def _connect(self) -> sqlite3.Connection:
        if self._connection is None:
            if not Path(self.path).exists():
                raise StoreError(f"database {self.path} does not exist (run 'rbl db init')")
            connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            connection.execute("PRAGMA busy_timeout=10000")
            connection.execute("PRAGMA query_only=1")
            connection.execute("PRAGMA cache_size=-1024")  # KiB: rows stream, nothing to cache
            self._connection = connection
        return self._connection

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def has_schema(self) -> bool:
        if not Path(self.path).exists():
            return False
        with self._lock:
            rows = (
                self._connect()
                .execute(
                    "SELECT name FROM sqlite_master WHERE type='table' "
                    "AND name IN ('listings', 'change_log')"
                )
                .fetchall()
            )
        return len(rows) == 2

    def change_positions(self) -> dict[str, int]:
        """The last change-log id per zone."""
        with self._lock:
            try:
                rows = (
                    self._connect()
                    .execute("SELECT zone, MAX(id) FROM change_log GROUP BY zone")
                    .fetchall()
                )
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the change log of {self.path}: {exc}") from exc
        return {zone: int(last) for zone, last in rows}

    def iter_ip_rows(self, zones: Sequence[str]) -> Iterator[IpRow]:
        """Active IP listings ordered by zone, family, prefix length and network.

        The order is that of the covering index, so SQLite does not sort and the
        index appends without sorting either.
        """
        marks = ",".join("?" * len(zones))
        yield from self._stream(
            "SELECT zone, family, prefixlen, network, codes, txt FROM listings "
            f"WHERE state = 'active' AND zone IN ({marks}) AND family != 0 "
            "ORDER BY state, zone, family, prefixlen, network",
            tuple(zones),
        )

    def iter_domain_rows(self, zones: Sequence[str]) -> Iterator[DomainRow]:
        marks = ",".join("?" * len(zones))
        yield from self._stream(
            "SELECT zone, key, codes, txt FROM listings "
            f"WHERE state = 'active' AND zone IN ({marks}) AND family = 0",
            tuple(zones),
        )

    def _stream(self, sql: str, params: tuple[object, ...]) -> Iterator[tuple]:  # type: ignore[type-arg]
        with self._lock:
            try:
                cursor = self._connect().execute(sql, params)
                while batch := cursor.fetchmany(_BATCH):
                    yield from batch
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read listings from {self.path}: {exc}") from exc

    def iter_allowlist(self) -> Iterator[tuple[str, int, int, bytes | None]]:
        """key, family, prefixlen, network of every allowlist entry (DNS exclusions)."""
        yield from self._stream(
            "SELECT key, family, prefixlen, network FROM allowlist ORDER BY id", ()
        )

    def read_changes(self, after: int, limit: int) -> list[Change]:
        with self._lock:
            try:
                rows = (
                    self._connect()
                    .execute(
                        "SELECT id, zone, key, op, codes, txt FROM change_log "
                        "WHERE id > ? ORDER BY id LIMIT ?",
                        (after, limit),
                    )
                    .fetchall()
                )
            except sqlite3.Error as exc:
                raise StoreError(f"cannot read the change log of {self.path}: {exc}") from exc
        return [Change(*row) for row in rows]
