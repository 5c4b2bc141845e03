"""A listing holds up to 100 return codes end to end, and the store refuses more.

100 codes of the longest form (127.x.y.z, 15 characters) and their commas are
1599 characters: migration 0009 widens ``listings.codes`` and
``change_log.codes`` from VARCHAR(200), which PostgreSQL enforced. A database
migrated from 0008 keeps its rows and SQLite's change-log id sequence.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import create_engine, insert, select, text

from rbl.errors import CodeError
from rbl.model.codes import MAX_CODES, parse_codes
from rbl.model.keys import parse_ip_key
from rbl.store.database import current_revision, head_revision, open_engine, upgrade
from rbl.store.listings import ListingEntry, add_listing, import_listings
from rbl.store.reader import ListingReader
from rbl.store.schema import change_log

NOW = datetime(2026, 1, 1, tzinfo=UTC)
ZONE = "bl.example.org"
LONGEST = parse_codes(",".join(f"127.254.{n % 2 + 100}.{n // 2 + 100}" for n in range(100)))


def test_one_hundred_of_the_longest_codes_are_stored_and_served(database_url: str) -> None:
    assert len(LONGEST) == MAX_CODES and len(",".join(LONGEST)) == 1599
    engine = open_engine(database_url)
    try:
        with engine.begin() as conn:
            add_listing(conn, ZONE, parse_ip_key("192.0.2.1"), LONGEST, actor="t", now=NOW)
            entries = [ListingEntry(parse_ip_key("192.0.2.2"), LONGEST)]
            import_listings(conn, ZONE, entries, reason=None, actor="t", now=NOW)
    finally:
        engine.dispose()
    reader = ListingReader(database_url)
    try:
        rows = list(reader.iter_ip_rows([ZONE]))
        assert [tuple(row[4].split(",")) for row in rows] == [LONGEST, LONGEST]
        changes = reader.read_changes(0, 10)
        assert [tuple((change.codes or "").split(",")) for change in changes] == [LONGEST] * 2
    finally:
        reader.close()


def test_the_store_refuses_more_codes_than_a_secondary_takes(database_url: str) -> None:
    too_many = (*LONGEST, "127.0.0.2")
    engine = open_engine(database_url)
    try:
        with engine.begin() as conn, pytest.raises(CodeError, match="101 codes, at most 100"):
            add_listing(conn, ZONE, parse_ip_key("192.0.2.1"), too_many, actor="t", now=NOW)
        with engine.begin() as conn, pytest.raises(CodeError, match="101 codes"):
            entries = [ListingEntry(parse_ip_key("192.0.2.2"), too_many)]
            import_listings(conn, ZONE, entries, reason=None, actor="t", now=NOW)
        with engine.connect() as conn:
            assert conn.execute(select(change_log.c.id)).all() == []
    finally:
        engine.dispose()


def test_migration_0009_keeps_rows_and_the_id_sequence(database_url: str) -> None:
    raw = create_engine(database_url)
    try:
        upgrade(raw, "0008")
        with raw.begin() as conn:
            for n in (1, 2, 3):
                conn.execute(
                    insert(change_log).values(
                        zone=ZONE, key=f"10.0.0.{n}", op="set", codes="127.0.0.2", created_at=NOW
                    )
                )
            conn.execute(text("DELETE FROM change_log WHERE id = 3"))  # as a prune leaves it
    finally:
        raw.dispose()
    engine = open_engine(database_url)
    try:
        assert current_revision(engine) == head_revision()
        with engine.begin() as conn:
            assert [row.key for row in conn.execute(select(change_log))] == ["10.0.0.1", "10.0.0.2"]
            add_listing(conn, ZONE, parse_ip_key("10.0.0.9"), LONGEST, actor="t", now=NOW)
            ids = conn.execute(select(change_log.c.id).order_by(change_log.c.id)).scalars().all()
        assert ids == [1, 2, 4]  # id 3 is never handed out again
    finally:
        engine.dispose()
