"""Engines: SQLite with the settings a concurrent server needs, or any SQLAlchemy URL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.exc import SQLAlchemyError

from rbl.errors import StoreError
from rbl.store.reader import hide_password

SQLITE_BUSY_TIMEOUT_MS = 10_000


def open_engine(url: str, *, create: bool = True) -> Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout and foreign keys per connection."""
    _make_sqlite_directory(url)
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


def current_revision(engine: Engine) -> str | None:
    from alembic.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _make_sqlite_directory(url: str) -> None:
    """SQLite creates the file but not its directory; a fresh checkout has no var/."""
    try:
        parsed = make_url(url)
    except (SQLAlchemyError, ValueError):
        return
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()
