"""An import killed half-way leaves the store as it was, secondary indexes included.

A big import into an empty zone drops the two secondary indexes of ``listings`` and
builds them again after its insert, inside its one SQLite transaction: a SIGKILL
while it writes must roll all of it back (SQLite's journal), never leave the
table without its indexes, and the same import afterwards must go through.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

from tests.support.processes import rbl_command, subprocess_env

LINES = 300_000  # enough that the import rebuilds the indexes, and runs for seconds


def _schema(db: Path) -> list[tuple[str, str]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE tbl_name = 'listings' ORDER BY name"
        ).fetchall()


@pytest.mark.slow
def test_an_import_killed_while_it_writes_leaves_the_store(
    config_path: Path, database_url: str, tmp_path: Path
) -> None:
    if not database_url.startswith("sqlite:///"):
        pytest.skip("the index rebuild is SQLite's; PostgreSQL's COPY is one statement")
    db = Path(database_url.removeprefix("sqlite:///"))
    rbl_command(config_path, "list", "add", "203.0.113.1", "--reason", "before")
    before = _schema(db)
    assert any(name == "ix_listings_load" for name, _ in before)
    source = tmp_path / "big.txt"
    source.write_text(
        "".join(f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}\n" for n in range(LINES))
    )
    argv = [sys.executable, "-m", "rbl", "-c", str(config_path), "list", "import"]
    argv += ["--zone", "bl.example.org", "--reason", "big", str(source)]
    process = subprocess.Popen(argv, env=subprocess_env(), stdout=subprocess.DEVNULL)
    wal = db.with_name(db.name + "-wal")
    deadline = time.monotonic() + 60
    while not (wal.exists() and wal.stat().st_size > 4_000_000):  # it is writing
        assert process.poll() is None, "the import ended before it could be killed"
        assert time.monotonic() < deadline
        time.sleep(0.01)
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    assert _schema(db) == before
    with closing(sqlite3.connect(db)) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT key FROM listings").fetchall() == [("203.0.113.1",)]
        assert conn.execute("SELECT count(*) FROM change_log").fetchone() == (1,)
    done = rbl_command(
        config_path, "list", "import", "--zone", "bl.example.org", "--reason", "big", str(source)
    )
    assert f"{LINES} added, 0 changed, 0 unchanged" in done.stdout
    assert _schema(db) == before
