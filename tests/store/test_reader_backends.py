"""The DNS-side reader on both backends: order of the snapshot, bytes, read-only, URLs."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rbl.errors import ConfigError, StoreError
from rbl.model.keys import parse_ip_key
from rbl.store.allowlist import add_allowed
from rbl.store.database import open_engine
from rbl.store.listings import ListingEntry, import_listings
from rbl.store.reader import ListingReader, postgresql_conninfo

NOW = datetime(2026, 1, 1, tzinfo=UTC)
KEYS = ["200.1.0.0/16", "10.0.0.1", "127.0.0.3", "10.0.0.0/8", "255.255.255.0/24", "2001:db8::/32"]


def test_snapshot_streams_in_index_order_with_bytes(database_url: str) -> None:
    engine = open_engine(database_url)
    with engine.begin() as conn:
        entries = [ListingEntry(parse_ip_key(k), ("127.0.0.2",)) for k in KEYS if k != "127.0.0.3"]
        entries += [
            ListingEntry(parse_ip_key(f"45.{n // 256}.{n % 256}.1"), ("127.0.0.4",))
            for n in range(3000)
        ]
        import_listings(conn, "bl.example.org", entries, reason=None, actor="t", now=NOW)
        add_allowed(conn, parse_ip_key("10.1.2.3"), reason="r", actor="t", now=NOW)
    engine.dispose()
    reader = ListingReader(database_url)
    try:
        assert reader.has_schema()
        rows = list(reader.iter_ip_rows(["bl.example.org"]))
        assert len(rows) == 3005
        assert all(type(row[3]) is bytes for row in rows)
        order = [(family, prefixlen, network) for _zone, family, prefixlen, network, *_ in rows]
        assert order == sorted(order)  # what the index appends without sorting
        assert (4, 32, bytes([255, 255, 255, 0])) not in order
        assert reader.change_positions() == {"bl.example.org": 3005}
        assert [type(n) for *_, n in reader.iter_allowlist()] == [bytes]
        assert len(reader.read_changes(3000, 10)) == 5
        # A stream abandoned half way leaves the connection usable.
        stream = reader.iter_ip_rows(["bl.example.org"])
        next(stream)
        stream.close()
        assert len(reader.read_changes(0, 3)) == 3
    finally:
        reader.close()


def test_the_reader_cannot_write(database_url: str) -> None:
    open_engine(database_url).dispose()
    reader = ListingReader(database_url)
    try:
        connection = reader._connect()
        with pytest.raises(Exception, match=r"(?i)read.only|readonly"):
            connection.execute("DELETE FROM change_log")
    finally:
        reader.close()


def test_postgresql_urls_become_libpq_keywords() -> None:
    assert postgresql_conninfo(
        "postgresql+psycopg://u%40x:p%3Aw@db.example:6543/rbl?sslmode=require"
    ) == {
        "host": "db.example",
        "port": "6543",
        "user": "u@x",
        "password": "p:w",
        "dbname": "rbl",
        "sslmode": "require",
    }
    assert postgresql_conninfo("postgresql:///rbl?host=/run/postgresql") == {
        "dbname": "rbl",
        "host": "/run/postgresql",
    }
    with pytest.raises(ConfigError):
        ListingReader("mysql://u@h/rbl")


def test_an_unreachable_postgresql_is_a_store_error() -> None:
    pytest.importorskip("psycopg")
    reader = ListingReader("postgresql+psycopg://nobody@127.0.0.1:1/none?connect_timeout=2")
    with pytest.raises(StoreError, match="cannot connect"):
        reader.has_schema()
