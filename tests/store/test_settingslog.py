"""Recording a zone's settings fingerprint: once however many nodes start together.

Eight threads, each a node starting with the same settings, call
``record_fingerprints`` at once; each holds its transaction open between its
check and its insert (``checked``), which without the change-log lock lets every
one of them see no row and insert one. Exactly one row is written, on SQLite
(BEGIN IMMEDIATE) and PostgreSQL (the advisory lock). The rows are read back as
followers and the store read them, and pruning keeps each zone's newest one.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from rbl.model.changes import OP_SETTINGS
from rbl.model.keys import parse_ip_key
from rbl.store.changelog import prune_changes
from rbl.store.database import open_engine
from rbl.store.listings import add_listing
from rbl.store.reader import ListingReader
from rbl.store.schema import change_log
from rbl.store.settingslog import record_fingerprints

ZONES = ("bl.example.org", "dbl.example.org")
NODES = 8


def settings_rows(url: str) -> list[tuple[int, str, str]]:
    engine = open_engine(url, create=False)
    try:
        with engine.connect() as conn:
            rows = conn.execute(
                select(change_log.c.id, change_log.c.zone, change_log.c.key)
                .where(change_log.c.op == OP_SETTINGS)
                .order_by(change_log.c.id)
            )
            return [(row.id, row.zone, row.key) for row in rows]
    finally:
        engine.dispose()


def test_nodes_starting_together_record_a_fingerprint_once(database_url: str) -> None:
    open_engine(database_url).dispose()
    wanted = {zone: f"{n}" * 64 for n, zone in enumerate(ZONES, start=1)}
    barrier = threading.Barrier(NODES)
    written: list[dict[str, int]] = []
    errors: list[BaseException] = []

    def node() -> None:
        try:
            barrier.wait()
            written.append(
                record_fingerprints(database_url, wanted, checked=lambda: time.sleep(0.2))
            )
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=node) for _ in range(NODES)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors
    assert sum(1 for each in written if each) == 1  # one node wrote both zones' rows
    rows = settings_rows(database_url)
    assert [(zone, key) for _, zone, key in rows] == sorted(wanted.items())
    assert [each for each in written if each] == [{zone: row for row, zone, _ in rows}]
    # The same settings again: nothing; one zone changed: one row, for it alone.
    assert record_fingerprints(database_url, wanted) == {}
    changed = {**wanted, ZONES[0]: "f" * 64}
    assert list(record_fingerprints(database_url, changed)) == [ZONES[0]]
    reader = ListingReader(database_url)
    try:
        assert reader.settings_fingerprints() == changed
        changes = reader.read_changes(0, 10)
        assert [(c.op, c.key, c.codes) for c in changes][-1] == (OP_SETTINGS, "f" * 64, None)
        assert reader.change_positions()[ZONES[0]] == changes[-1].id  # the serial moves
    finally:
        reader.close()


def test_prune_keeps_each_zones_newest_settings_row(database_url: str) -> None:
    engine = open_engine(database_url)
    zone = ZONES[0]
    old = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        record_fingerprints(database_url, {zone: "a" * 64}, now=old)
        record_fingerprints(database_url, {zone: "b" * 64}, now=old)
        with engine.begin() as conn:
            for n in range(3):
                key = parse_ip_key(f"192.0.2.{n}")
                add_listing(conn, zone, key, ("127.0.0.2",), actor="t", now=old)
        assert prune_changes(engine, old + timedelta(days=1)) == 3  # the old settings row, 2 sets
        kept = settings_rows(database_url)
        assert [key for _, _, key in kept] == ["b" * 64]
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(change_log)).scalar() == 2
    finally:
        engine.dispose()
