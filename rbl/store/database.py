"""Engines: SQLite with the settings a concurrent server needs, or any SQLAlchemy URL."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sqlalchemy import Engine as Engine  # the store's handle: the CLI names it in its types
from sqlalchemy import create_engine, event, make_url
from sqlalchemy.exc import SQLAlchemyError

from rbl.errors import StoreError
from rbl.store.reader import hide_password

SQLITE_BUSY_TIMEOUT_MS = 10_000


def open_engine(url: str, *, create: bool = True) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys per connection."""
    _make_sqlite_file(url)
    shown = hide_password(url)
    try:
        # A server that does not answer must fail a connection attempt, not hang it
        # (a stopping writer waits for its last attempt).
        options: dict[str, Any] = (
            {"connect_args": {"connect_timeout": CONNECT_TIMEOUT}}
            if url.startswith(("postgresql", "postgres"))
            else {}
        )
        engine = create_engine(url, **options)
    except (SQLAlchemyError, ValueError, ImportError) as exc:
        raise StoreError(f"cannot use database {shown!r}: {exc}") from exc
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    if create:
        try:
            upgrade(engine)
        except SQLAlchemyError as exc:
            raise StoreError(f"cannot open database {shown!r}: {exc.__cause__ or exc}") from exc
    return engine


CONNECT_TIMEOUT = 10  # seconds, PostgreSQL


MIGRATIONS = Path(__file__).with_name("migrations")


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` with Alembic (a fresh database gets every step)."""
    from alembic import command
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def head_revision() -> str:
    """The newest migration's revision: what ``upgrade`` brings a database to."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory(str(MIGRATIONS)).get_current_head()
    assert head is not None, "the migrations have no head"
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


SQLITE_FILE_MODE = 0o600


def _make_sqlite_file(url: str) -> None:
    """Create a new SQLite file (and its directory: a fresh checkout has no var/) owner-only.

    It holds the trap list, raw log lines and requesters' emails. SQLite itself would
    create it 0644 under the usual umask, and gives its -wal, -shm and -journal files
    the database file's mode, so creating the file 0600 first covers all of them (an
    operator who wants a group to read it runs ``chmod 0640`` on the file; the others
    follow). An existing file keeps its mode: ``rbl doctor`` reports one others can read.
    """
    path = sqlite_path(url)
    if path is None:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, SQLITE_FILE_MODE)
    except FileExistsError:
        return
    except OSError:
        return  # SQLite reports an unusable path itself, naming the database
    os.close(fd)


def sqlite_path(url: str) -> Path | None:
    """The file of a SQLite URL; None for another backend, memory or a ``file:`` URI."""
    try:
        parsed = make_url(url)
    except (SQLAlchemyError, ValueError):
        return None
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    if parsed.query.get("uri") in ("true", "1") or parsed.database.startswith("file:"):
        return None
    return Path(parsed.database)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()
