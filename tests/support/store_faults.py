"""A store that refuses one client's hits for good, and "the fix" that lets them in again.

A trigger (SQLite) or a CHECK constraint (PostgreSQL) on ``hits``, which the
store then really raises: what quarantine and fault tests feed lines into.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.support.config import database_url_of

REFUSED_IP = "45.9.9.9"


def refuse_client(config: Path, ip: str) -> None:
    """From now on the store refuses, for good, every hit from ``ip``."""
    url = database_url_of(config)
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        if url.startswith("sqlite"):
            conn.execute(
                text(
                    "CREATE TRIGGER test_refuse BEFORE INSERT ON hits "
                    f"WHEN NEW.client_ip = '{ip}' "
                    f"BEGIN SELECT RAISE(ABORT, 'no hits from {ip}'); END"
                )
            )
        else:
            conn.execute(
                text(f"ALTER TABLE hits ADD CONSTRAINT test_refuse CHECK (client_ip <> '{ip}')")
            )
    engine.dispose()


def fix_store(config: Path) -> None:
    url = database_url_of(config)
    engine = create_engine(url, poolclass=NullPool)
    with engine.begin() as conn:
        if url.startswith("sqlite"):
            conn.execute(text("DROP TRIGGER test_refuse"))
        else:
            conn.execute(text("ALTER TABLE hits DROP CONSTRAINT test_refuse"))
    engine.dispose()
