"""``behind``: how far a secondary at some serial is behind a zone, and since when.

The times are the change log's own (``created_at`` of the rows written here); a
prune that deleted rows after the secondary's serial says so, since then the
first missing change is older than any row left.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import Engine

from rbl.store.changelog import append_change, behind, prune_changes
from rbl.store.database import open_engine

ZONE = "bl.example.org"
START = datetime(2026, 1, 1, tzinfo=UTC)


def engine_with_changes(tmp_path: Path, minutes: list[int], zone: str = ZONE) -> Engine:
    engine = open_engine(f"sqlite:///{tmp_path / 'rbl.sqlite'}")
    with engine.begin() as conn:
        for n, minute in enumerate(minutes):
            append_change(
                conn,
                zone=zone,
                key=f"45.0.0.{n}",
                op="set",
                codes="127.0.0.2",
                created_at=START + timedelta(minutes=minute),
            )
    return engine


def test_current_behind_and_ahead(tmp_path: Path) -> None:
    engine = engine_with_changes(tmp_path, [0, 10, 20, 30])  # ids 1..4
    with engine.connect() as conn:
        current = behind(conn, ZONE, 4)
        assert (current.position, current.changes, current.since) == (4, 0, None)
        lag = behind(conn, ZONE, 2)  # has ids 1, 2: missing the changes of minutes 20 and 30
        assert (lag.changes, lag.since, lag.pruned) == (2, START + timedelta(minutes=20), False)
        ahead = behind(conn, ZONE, 9)
        assert ahead.since is None and ahead.changes == 0
        # a zone without changes is at serial 1 (the SOA never says 0)
        assert behind(conn, "dbl.example.org", 1).since is None
    engine.dispose()


def test_rows_pruned_after_the_secondary_serial_are_reported(tmp_path: Path) -> None:
    engine = engine_with_changes(tmp_path, [0, 10, 20, 30])
    prune_changes(engine, START + timedelta(minutes=25))  # deletes ids 1..3, keeps the newest
    with engine.connect() as conn:
        lag = behind(conn, ZONE, 1)
        assert lag.pruned and lag.changes == 1
        assert lag.since == START + timedelta(minutes=30)  # the oldest row left
        assert not behind(conn, ZONE, 3).pruned  # everything after 3 is still there
    engine.dispose()
