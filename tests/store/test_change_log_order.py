"""Change-log ids become visible in id order, so a follower reading ``id > last`` skips none.

On PostgreSQL a sequence hands out ids at insert time and transactions commit
in any order; ``rbl.store.changelog`` serialises change-log writers with an
advisory lock. Two writer threads hold their transactions open after writing
change rows while a follower polls; every id must reach the follower. The
control writes the same rows without the lock and shows the test can see a skip.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from sqlalchemy import Connection, Engine, insert, select
from sqlalchemy.pool import NullPool

from rbl.model.changes import OP_SET
from rbl.model.keys import parse_ip_key
from rbl.store.database import open_engine
from rbl.store.listings import add_listing, remove_listing
from rbl.store.reader import ListingReader
from rbl.store.schema import change_log

ZONE = "bl.example.org"
PER_WRITER = 40


def locked_write(conn: Connection, writer: int, n: int) -> None:
    key = parse_ip_key(f"10.{writer}.{n}.0/24")
    now = datetime.now(UTC)
    add_listing(conn, ZONE, key, ("127.0.0.2",), actor=f"w{writer}", now=now)
    if n % 3 == 0:
        remove_listing(conn, ZONE, key, reason="r", actor=f"w{writer}", now=now)


def unlocked_write(conn: Connection, writer: int, n: int) -> None:
    conn.execute(
        insert(change_log).values(
            zone=ZONE, key=f"10.{writer}.{n}.0/24", op=OP_SET, created_at=datetime.now(UTC)
        )
    )


def run_writers_and_follower(
    url: str, write: Callable[[Connection, int, int], None]
) -> tuple[list[int], list[int]]:
    """(ids in the order the follower applied them, every id in the change log)."""
    engine: Engine = open_engine(url)
    engine.dispose()
    writers_done = threading.Event()
    errors: list[BaseException] = []

    def writer(number: int) -> None:
        own = open_engine(url, create=False)
        rng = random.Random(number)
        try:
            for n in range(PER_WRITER):
                with own.begin() as conn:
                    write(conn, number, n)
                    time.sleep(rng.uniform(0, 0.004))  # commit late: others may pass
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        finally:
            own.dispose()

    applied: list[int] = []
    reader = ListingReader(url)
    threads = [threading.Thread(target=writer, args=(i,)) for i in (1, 2)]
    for thread in threads:
        thread.start()
    try:
        position = 0
        while True:
            finished = writers_done.is_set()
            for change in reader.read_changes(position, 1000):
                applied.append(change.id)
                position = change.id
            if finished:
                break
            if not any(t.is_alive() for t in threads):
                writers_done.set()  # one more poll after the last commit
            time.sleep(0.0005)
    finally:
        for thread in threads:
            thread.join(timeout=60)
        reader.close()
    assert not errors, errors
    every = _all_ids(url)
    return applied, every


def _all_ids(url: str) -> list[int]:
    from sqlalchemy import create_engine

    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return [
                row.id for row in conn.execute(select(change_log.c.id).order_by(change_log.c.id))
            ]
    finally:
        engine.dispose()


def test_concurrent_writers_never_make_a_follower_skip_an_id(database_url: str) -> None:
    applied, every = run_writers_and_follower(database_url, locked_write)
    assert len(every) >= 2 * PER_WRITER
    assert applied == sorted(applied)
    assert set(applied) == set(every), f"skipped: {sorted(set(every) - set(applied))}"


def test_without_the_lock_a_follower_can_skip_ids(database_url: str) -> None:
    """The control: the same race without ``append_changes`` loses rows on PostgreSQL."""
    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite has one writer at a time: its ids always commit in order")
    for _attempt in range(3):
        applied, every = run_writers_and_follower(database_url, unlocked_write)
        if set(every) - set(applied):
            return
    pytest.fail("no id was ever skipped without the lock: the ordering test has no teeth")
