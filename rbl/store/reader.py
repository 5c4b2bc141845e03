"""Read-only access for DNS processes: the start-up snapshot and the change log.

A DNS process runs six queries and nothing else (the fifth, the trap
list, only to keep traps out of TXT texts; the sixth, the zones' recorded
settings fingerprints, at start), so it talks DB-API
directly instead of importing SQLAlchemy: that keeps about 13 MB of modules
out of every DNS process (the difference between fitting three times
rbldnsd's memory and not), and lets SQLite stream a million rows from a
covering index in under a second. PostgreSQL is read through psycopg 3
(imported only when the URL names PostgreSQL), on a read-only autocommit
connection, streaming the snapshot through a server-side cursor. The table
and column names are those of ``rbl.store.schema``; the tests run these
queries against tables that schema created. Writes never come through here.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from rbl.errors import StoreError
from rbl.model.changes import OP_SETTINGS
from rbl.policy.trapfilter import NO_TRAPS, TrapFilter
from rbl.store.timestamps import utc
from rbl.store.urls import (  # re-exported: the store's users import them here
    POSTGRESQL_SCHEMES as POSTGRESQL_SCHEMES,
)
from rbl.store.urls import SQLITE_SCHEMES as SQLITE_SCHEMES
from rbl.store.urls import hide_password as hide_password
from rbl.store.urls import postgresql_conninfo as postgresql_conninfo
from rbl.store.urls import sqlite_path as sqlite_path

_BATCH = 2_000


@dataclass(frozen=True, slots=True)
class Change:
    """One change-log row: what a key in a zone answers from now on."""

    id: int
    zone: str
    key: str
    op: str  # rbl.model.changes: OP_SET, OP_DELETE, OP_EXCLUDE, OP_UNEXCLUDE, OP_SETTINGS
    codes: str | None
    txt: str | None


IpRow = tuple[str, int, int, bytes, str, str | None]
"""zone, family, prefixlen, network (big-endian), codes, txt"""
DomainRow = tuple[str, str, str, str | None]
"""zone, key, codes, txt"""
IpLevel = tuple[str, int, int, int, str, str | None, bytes | None]
"""zone, family, prefixlen, rows, codes, txt, networks (big-endian, in order; None when
the rows do not all have these codes and TXT)"""


@dataclass(frozen=True, slots=True)
class StoreStats:
    """What /metrics reports from the store: three grouped queries, no per-row work here."""

    listings: list[tuple[str, str, int]]  # zone, state, count
    hits: list[tuple[str, int, datetime | None]]  # feed, count, newest hit time (UTC)
    # name, identity, format, offset, updated: a file has a position per format
    sources: list[tuple[str, str, str, int, datetime | None]]
    traps: TrapFilter = NO_TRAPS  # what the exposition must not name (feed, file names)
    quarantine: list[tuple[str, str, int]] = field(default_factory=list)  # source, state, count


def _is_postgresql(url: str) -> bool:
    return urlsplit(url).scheme in POSTGRESQL_SCHEMES


class ListingReader:
    """One database connection, used by one thread at a time (the DNS process's pool).

    SQLite (``sqlite:///PATH``) or PostgreSQL (``postgresql+psycopg://...``,
    which needs ``pip install 'rbl[pg]'``).
    """

    def __init__(self, url: str) -> None:
        self.postgresql = _is_postgresql(url)
        if self.postgresql:
            self._conninfo = postgresql_conninfo(url)
            self.path = _describe(self._conninfo)
            self._mark = "%s"
        else:
            self.path = sqlite_path(url)
            self._mark = "?"
        self._lock = threading.Lock()
        self._tables: set[str] = set()  # tables of later migrations, once seen
        self._connection: Any = None
        self._errors: tuple[type[BaseException], ...] = (sqlite3.Error,)

    def _connect(self) -> Any:
        if self._connection is None:
            self._connection = (
                self._connect_postgresql() if self.postgresql else self._connect_sqlite()
            )
        return self._connection

    def _connect_sqlite(self) -> sqlite3.Connection:
        if not Path(self.path).exists():
            raise StoreError(f"database {self.path} does not exist (run 'rbl db init')")
        connection = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        connection.execute("PRAGMA busy_timeout=10000")
        connection.execute("PRAGMA query_only=1")
        connection.execute("PRAGMA cache_size=-1024")  # KiB: rows stream, nothing to cache
        return connection

    def _connect_postgresql(self) -> Any:
        try:
            import psycopg
        except ImportError as exc:
            raise StoreError(
                f"database {self.path}: PostgreSQL needs psycopg 3 (pip install 'psycopg[binary]')"
            ) from exc
        self._errors = (sqlite3.Error, psycopg.Error)
        try:
            keywords = {"application_name": "rbl-dns", "connect_timeout": "10", **self._conninfo}
            connection = psycopg.connect(**keywords, autocommit=True)  # type: ignore[arg-type]
            connection.execute("SET default_transaction_read_only = on")
        except psycopg.Error as exc:
            raise StoreError(f"cannot connect to database {self.path}: {exc}") from exc
        return connection

    def _failed(self) -> None:
        """Drop a PostgreSQL connection after an error; the next call connects again."""
        if self.postgresql and self._connection is not None:
            try:
                self._connection.close()
            finally:
                self._connection = None

    def close(self) -> None:
        with self._lock:
            if self._connection is not None:
                self._connection.close()
                self._connection = None

    def has_schema(self) -> bool:
        if self.postgresql:
            sql = (
                "SELECT (to_regclass('listings') IS NOT NULL) "
                "AND (to_regclass('change_log') IS NOT NULL)"
            )
            with self._lock:
                try:
                    row = self._connect().execute(sql).fetchone()
                except self._errors as exc:
                    self._failed()
                    raise StoreError(f"cannot read database {self.path}: {exc}") from exc
            return bool(row and row[0])
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
            except self._errors as exc:
                self._failed()
                raise StoreError(f"cannot read the change log of {self.path}: {exc}") from exc
        return {zone: int(last) for zone, last in rows}

    def zone_positions(self, zones: Sequence[str]) -> tuple[int, dict[str, int]]:
        """The last change-log id, and the last id of each of ``zones`` up to it (absent:
        none), read backwards from the end of the log by id: grouping a million-row log
        by zone was half a second of every start."""
        mark = self._mark
        with self._lock:
            try:
                connection = self._connect()
                (last,) = connection.execute("SELECT MAX(id) FROM change_log").fetchone()
                positions: dict[str, int] = {}
                for zone in zones if last is not None else ():
                    row = connection.execute(
                        f"SELECT id FROM change_log WHERE zone = {mark} AND id <= {mark} "
                        "ORDER BY id DESC LIMIT 1",
                        (zone, last),
                    ).fetchone()
                    if row is not None:
                        positions[zone] = int(row[0])
            except self._errors as exc:
                self._failed()
                raise StoreError(f"cannot read the change log of {self.path}: {exc}") from exc
        return int(last or 0), positions

    def settings_fingerprints(self) -> dict[str, str]:
        """The latest recorded settings fingerprint per zone (rbl.store.settingslog)."""
        sql = (
            "SELECT zone, key FROM change_log WHERE id IN "
            f"(SELECT MAX(id) FROM change_log WHERE op = {self._mark} GROUP BY zone)"
        )
        with self._lock:
            try:
                rows = self._connect().execute(sql, (OP_SETTINGS,)).fetchall()
            except self._errors as exc:
                self._failed()
                raise StoreError(f"cannot read the change log of {self.path}: {exc}") from exc
        return {zone: key for zone, key in rows}

    def _marks(self, count: int) -> str:
        return ",".join([self._mark] * count)

    def iter_ip_rows(
        self, zones: Sequence[str], level: tuple[int, int] | None = None
    ) -> Iterator[IpRow]:
        """Active IP listings ordered by zone, family, prefix length and network
        (only those of one (family, prefix length) ``level`` if given).

        The order is that of the covering index, so SQLite does not sort and the
        index appends without sorting either. PostgreSQL compares bytea byte by
        byte, so the network order is the same there.
        """
        where, params = "family != 0", tuple[object, ...](zones)
        if level is not None:
            where = f"family = {self._mark} AND prefixlen = {self._mark}"
            params += level
        rows = self._stream(
            "SELECT zone, family, prefixlen, network, codes, txt FROM listings "
            f"WHERE state = 'active' AND zone IN ({self._marks(len(zones))}) AND {where} "
            "ORDER BY state, zone, family, prefixlen, network",
            params,
        )
        if self.postgresql:
            for zone, family, prefixlen, network, codes, txt in rows:
                yield zone, family, prefixlen, bytes(network), codes, txt
        else:
            yield from rows

    def ip_levels(self, zones: Sequence[str]) -> list[IpLevel]:
        """The active IP listings per (zone, family, prefix length), in one scan of the
        covering index: their count and, when they all have the same codes and TXT,
        those and every network in one byte string, in network order (a snapshot makes
        its arrays of it at once). ``iter_ip_rows`` gives the rows of the other levels."""
        networks = (
            "string_agg(network, ''::bytea ORDER BY network)"
            if self.postgresql
            else "CAST(group_concat(network, '') AS BLOB)"  # in the covering index's order
        )
        sql = (
            "SELECT zone, family, prefixlen, count(*), min(codes), max(codes), count(txt), "
            f"min(txt), max(txt), {networks} FROM listings WHERE state = 'active' "
            f"AND zone IN ({self._marks(len(zones))}) AND family != 0 "
            "GROUP BY state, zone, family, prefixlen ORDER BY state, zone, family, prefixlen"
        )
        with self._lock:
            try:
                # PostgreSQL: bytea in binary, not as hex text twice its size
                options = {"binary": True} if self.postgresql else {}
                rows = self._connect().execute(sql, tuple(zones), **options).fetchall()
            except self._errors as exc:
                self._failed()
                raise StoreError(f"cannot read listings from {self.path}: {exc}") from exc
        levels: list[IpLevel] = []
        for zone, family, prefixlen, count, codes, last_codes, texts, txt, last_txt, blob in rows:
            shared = codes == last_codes and (texts == 0 or (texts == count and txt == last_txt))
            networks_of = bytes(blob) if shared and blob is not None else None
            levels.append((zone, family, prefixlen, count, codes, txt, networks_of))
        return levels

    def iter_domain_rows(self, zones: Sequence[str]) -> Iterator[DomainRow]:
        yield from self._stream(
            "SELECT zone, key, codes, txt FROM listings "
            f"WHERE state = 'active' AND zone IN ({self._marks(len(zones))}) AND family = 0",
            tuple(zones),
        )

    def _stream(self, sql: str, params: tuple[object, ...]) -> Iterator[tuple]:  # type: ignore[type-arg]
        with self._lock:
            try:
                if self.postgresql:
                    yield from self._stream_postgresql(sql, params)
                    return
                cursor = self._connect().execute(sql, params)
                while batch := cursor.fetchmany(_BATCH):
                    yield from batch
            except self._errors as exc:
                self._failed()
                raise StoreError(f"cannot read listings from {self.path}: {exc}") from exc

    def _stream_postgresql(self, sql: str, params: tuple[object, ...]) -> Iterator[tuple]:  # type: ignore[type-arg]
        """A server-side cursor (needs a transaction): a million rows never sit in memory."""
        connection = self._connect()
        with connection.transaction(), connection.cursor(name="rbl_snapshot") as cursor:
            cursor.itersize = _BATCH
            cursor.execute(sql, params)
            while batch := cursor.fetchmany(_BATCH):
                yield from batch

    def iter_allowlist(self) -> Iterator[tuple[str, int, int, bytes | None]]:
        """key, family, prefixlen, network of every allowlist entry (DNS exclusions)."""
        for key, family, prefixlen, network in self._stream(
            "SELECT key, family, prefixlen, network FROM allowlist ORDER BY id", ()
        ):
            yield key, family, prefixlen, None if network is None else bytes(network)

    def read_changes(self, after: int, limit: int) -> list[Change]:
        return self.read_changes_since(after, limit)[0]

    def read_changes_since(self, after: int, limit: int) -> tuple[list[Change], int]:
        """Change rows after ``after``, and how far the log has been pruned, in one snapshot.

        Read in one transaction: a prune that commits between the two reads
        cannot hide the rows it deleted. A follower whose position is below the
        returned id may have missed rows and must load a fresh snapshot.
        """
        changes = (
            "SELECT id, zone, key, op, codes, txt FROM change_log "
            f"WHERE id > {self._mark} ORDER BY id LIMIT {self._mark}"
        )
        with self._lock:
            try:
                connection = self._connect()
                pruned = self._has_table(connection, "change_log_pruned")
                if self.postgresql:
                    with connection.transaction():
                        connection.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                        rows = connection.execute(changes, (after, limit)).fetchall()
                        through = self._pruned_through(connection) if pruned else 0
                else:
                    connection.execute("BEGIN")
                    try:
                        rows = connection.execute(changes, (after, limit)).fetchall()
                        through = self._pruned_through(connection) if pruned else 0
                    finally:
                        connection.execute("COMMIT")
            except self._errors as exc:
                self._failed()
                raise StoreError(f"cannot read the change log of {self.path}: {exc}") from exc
        return [Change(*row) for row in rows], through

    def _has_table(self, connection: Any, name: str) -> bool:
        """Whether the store has a table a later migration made (change_log_pruned: 0004,
        quarantine: 0005); cached once seen. ``name`` is one of rbl's own table names."""
        if name in self._tables:
            return True
        sql = (
            f"SELECT to_regclass('{name}') IS NOT NULL"
            if self.postgresql
            else f"SELECT COUNT(*) FROM sqlite_master WHERE name = '{name}'"
        )
        if connection.execute(sql).fetchone()[0]:
            self._tables.add(name)
        return name in self._tables

    @staticmethod
    def _pruned_through(connection: Any) -> int:
        row = connection.execute("SELECT through FROM change_log_pruned WHERE id = 1").fetchone()
        return int(row[0]) if row else 0

    def trap_filter(self) -> TrapFilter:
        """The filter for public outputs, from every trap ever defined (active or retired)."""
        with self._lock:
            try:
                rows = self._connect().execute("SELECT kind, value FROM traps").fetchall()
            except self._errors as exc:
                self._failed()
                raise StoreError(f"cannot read the trap list of {self.path}: {exc}") from exc
        return TrapFilter.of_rows(rows)

    def store_stats(self) -> StoreStats:
        """Listings by zone and state, hits by feed, each ingested file's offset, and the
        quarantine by source and state."""
        queries = (
            "SELECT kind, value FROM traps",
            "SELECT zone, state, COUNT(*) FROM listings GROUP BY zone, state ORDER BY zone, state",
            "SELECT feed, COUNT(*), MAX(at) FROM hits GROUP BY feed ORDER BY feed",
            'SELECT name, identity, format, "offset", updated_at FROM ingest_sources ORDER BY id',
        )
        with self._lock:
            try:
                connection = self._connect()
                traps, listings, hits, sources = (
                    connection.execute(sql).fetchall() for sql in queries
                )
                kept = (
                    connection.execute(
                        "SELECT source, state, COUNT(*) FROM quarantine "
                        "GROUP BY source, state ORDER BY source, state"
                    ).fetchall()
                    if self._has_table(connection, "quarantine")
                    else []
                )
            except self._errors as exc:
                self._failed()
                raise StoreError(f"cannot read statistics from {self.path}: {exc}") from exc
        return StoreStats(
            [(zone, state, int(count)) for zone, state, count in listings],
            [(feed, int(count), _moment(newest)) for feed, count, newest in hits],
            [
                (name, identity, fmt, int(offset), _moment(at))
                for name, identity, fmt, offset, at in sources
            ],
            TrapFilter.of_rows(traps),
            [(source, state, int(count)) for source, state, count in kept],
        )


def _moment(value: datetime | str | None) -> datetime | None:
    """A stored timestamp as an aware UTC datetime (sqlite3 returns ISO text)."""
    return utc(datetime.fromisoformat(value) if isinstance(value, str) else value)


def _describe(conninfo: dict[str, str]) -> str:
    """The database for messages, without the password."""
    host = conninfo.get("host", "localhost")
    port = conninfo.get("port", "5432")
    return f"postgresql://{conninfo.get('user', '')}@{host}:{port}/{conninfo.get('dbname', '')}"
