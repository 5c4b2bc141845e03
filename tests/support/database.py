"""Reading a test's store directly, through SQLAlchemy, whatever its backend.

Tests that drive the real CLI or ``rbl serve`` check what reached the store
with these, never through rbl's own readers.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.support.config import database_url_of


def db_scalar(config: Path, sql: str) -> object:
    """One value from the test's database, through SQLAlchemy (any backend)."""
    engine = create_engine(database_url_of(config), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return conn.execute(text(sql)).scalar()
    finally:
        engine.dispose()


def db_rows(config: Path, sql: str) -> list[tuple[object, ...]]:
    """Every row of a query on the test's database, through SQLAlchemy (any backend)."""
    engine = create_engine(database_url_of(config), poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql))]
    finally:
        engine.dispose()
