"""``rbl ingest`` under database faults and kill -9: evidence exact, never lost, never doubled.

Every scenario ingests a generated Postfix log (the format of
zones/example-postfix.log: trap and non-trap recipients, repeat offenders,
an attempt logged twice, noise lines) and compares the stored evidence and
listings with one clean run of the same log into a fresh database. Faults are
real: another SQLite connection holding ``BEGIN EXCLUSIVE`` past the busy
timeout, a TCP forwarder in front of PostgreSQL that drops every connection
and refuses new ones, and SIGKILL.
"""

from __future__ import annotations

import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.pool import NullPool

from rbl.errors import StoreError
from rbl.feeds.retry import IngestGaveUp, Retrier, RetryPolicy
from rbl.store.faults import is_transient
from tests.support.config import database_url_of, write_config
from tests.support.fault_proxy import Forwarder
from tests.support.pg_databases import PgDatabases
from tests.support.processes import rbl_command, subprocess_env
from tests.support.store_faults import REFUSED_IP, refuse_client

pytestmark = pytest.mark.slow

SEED = 20261123
NOW = datetime.now(UTC).replace(microsecond=0)
LISTING = "\n[listing]\nthreshold = 2\n"  # decisions depend on earlier batches' hits


# -- the log ------------------------------------------------------------------------------


def postfix_log(lines: int, seed: int = SEED) -> str:
    """Real Postfix reject lines, oldest first, all within the last few hours."""
    rng = random.Random(seed)
    start = NOW - timedelta(hours=5)
    out = []
    for n in range(lines):
        at = start + timedelta(seconds=n * 4 * 3600 // lines)
        stamp = f"{at:%b} {at.day:2d} {at:%H:%M:%S}"
        roll = rng.random()
        if roll < 0.05:
            out.append(f"{stamp} mx1 postfix/smtpd[{n}]: connect from unknown[45.1.2.3]")
            continue
        ip = f"45.{rng.randrange(4)}.{rng.randrange(40)}.{rng.randrange(1, 60)}"
        rcpt = rng.choice(["trap@example.org", "sales@abandoned.example", "bob@example.org"])
        sender = f"offers{rng.randrange(50)}@bulk{rng.randrange(9)}.example"
        line = (
            f"{stamp} mx1 postfix/smtpd[{n}]: NOQUEUE: reject: RCPT from unknown[{ip}]: "
            f"550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown in local "
            f"recipient table; from=<{sender}> to=<{rcpt}> proto=ESMTP helo=<h{n}.example>"
        )
        out.append(line)
        if roll > 0.97:  # the same attempt logged twice: one piece of evidence
            out.append(line.replace(f"[{n}]", f"[{n}0]"))
    return "".join(line + "\n" for line in out)


def trapped_config(directory: Path, url: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    config = write_config(directory, url=url)
    config.write_text(config.read_text() + LISTING)
    rbl_command(config, "traps", "add", "trap@example.org", "@abandoned.example")
    return config


def ingest_argv(config: Path, log: Path, *extra: str) -> list[str]:
    command = [sys.executable, "-m", "rbl", "-c", str(config), "ingest", "--format", "postfix"]
    return [*command, *extra, str(log)]


def start_ingest(config: Path, log: Path, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ingest_argv(config, log, *extra),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )


def kill_ingest_past(
    config: Path, log: Path, url: str, target: int, rng: random.Random, *extra: str
) -> None:
    """Start an ingest, let it commit past line ``target`` and a random moment more
    (inside a batch or its commit), then SIGKILL it. The targets sit far enough before
    the log's end that a fast machine cannot finish first; the pipes are closed whatever
    happens, so a failure here does not leak into the next test as a ResourceWarning."""
    process = start_ingest(config, log, *extra)
    try:
        wait_until(
            lambda: committed_lines(url) >= target or process.poll() is not None,
            f"line {target}",
        )
        time.sleep(rng.uniform(0, 0.3))
        assert process.poll() is None, f"ingest finished before it was killed (target {target})"
    finally:
        process.kill()
        process.communicate(timeout=30)


# -- what was stored ----------------------------------------------------------------------

HITS = "SELECT at, client_ip, mail_from, rcpt_to, action, counted, reason FROM hits"
LISTINGS = (
    "SELECT zone, key, state, expires_at, first_seen, last_seen, hit_count, times_listed, "
    "reason FROM listings"
)


def rows(url: str, sql: str) -> list[tuple[Any, ...]]:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return sorted(tuple(str(v) for v in row) for row in conn.execute(text(sql)))
    finally:
        engine.dispose()


def value(url: str, sql: str) -> int:
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text(sql)).scalar() or 0)
    finally:
        engine.dispose()


def committed_lines(url: str) -> int:
    try:
        return value(url, "SELECT COALESCE(MAX(lines), 0) FROM ingest_sources")
    except DBAPIError:  # locked, or not created yet
        return -1


@pytest.fixture
def fresh_url(
    database_url: str, tmp_path: Path, pg_databases: PgDatabases | None
) -> Iterator[Callable[[], str]]:
    """More empty databases of the same backend as ``database_url``."""
    made: list[str] = []

    def make() -> str:
        if database_url.startswith("sqlite"):
            path = tmp_path / f"extra-{len(made)}.sqlite"
            made.append(str(path))
            return f"sqlite:///{path}"
        assert pg_databases is not None
        name = pg_databases.create()
        made.append(name)
        return pg_databases.url_of(name)

    yield make
    if pg_databases is not None and not database_url.startswith("sqlite"):
        for name in made:
            drop_soon(pg_databases, name)


def drop_soon(databases: PgDatabases, name: str) -> None:
    """DROP ... WITH (FORCE) cannot end an autovacuum worker busy there: try again."""
    deadline = time.monotonic() + 30
    while True:
        try:
            databases.drop(name)
            return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


_CLEAN: dict[tuple[str, str], tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]] = {}


def clean_run(log: Path, backend_url: str, fresh: Callable[[], str], tmp: Path) -> Any:
    """(hits, listings) of one uninterrupted ingest of ``log`` (cached per backend and log)."""
    backend = urlsplit(backend_url).scheme
    key = (backend, log.read_text())
    if key not in _CLEAN:
        url = fresh()
        config = trapped_config(tmp / "clean", url)
        result = rbl_command(config, "ingest", "--format", "postfix", str(log))
        assert "malformed: 0" in result.stdout, result.stdout
        _CLEAN[key] = (rows(url, HITS), rows(url, LISTINGS))
    return _CLEAN[key]


def assert_same_as_clean(url: str, clean: Any) -> tuple[int, int]:
    """Stored evidence and listings equal the clean run's; returns (hits, listings)."""
    hits, listings = rows(url, HITS), rows(url, LISTINGS)
    expected_hits, expected_listings = clean
    assert len(hits) == len(expected_hits), "evidence lost or duplicated"
    assert len(set(hits)) == len(hits) or len(set(expected_hits)) < len(expected_hits)
    assert hits == expected_hits
    assert listings == expected_listings
    return len(hits), len(listings)


def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


@pytest.fixture
def forwarder(database_url: str) -> Iterator[Forwarder]:
    parts = urlsplit(database_url)
    if parts.hostname is None or parts.port is None:
        pytest.skip("PostgreSQL over TCP only")
    proxy = Forwarder(parts.hostname, parts.port)
    try:
        yield proxy
    finally:
        proxy.close()


def postgresql_only(url: str) -> None:
    if url.startswith("sqlite"):
        pytest.skip("this fault is PostgreSQL's: the server going away")


def sqlite_only(url: str) -> None:
    if not url.startswith("sqlite"):
        pytest.skip("this fault is SQLite's: another writer holding the lock")


# -- the classification -----------------------------------------------------------------------


def test_sqlite_busy_is_transient_and_schema_errors_are_not(tmp_path: Path) -> None:
    path = tmp_path / "x.sqlite"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")
    holder.execute("BEGIN EXCLUSIVE")
    engine = create_engine(f"sqlite:///{path}", poolclass=NullPool, connect_args={"timeout": 0.05})
    try:
        with pytest.raises(OperationalError) as busy, engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
        assert "locked" in str(busy.value) and is_transient(busy.value)
        assert is_transient(StoreError("wrapped")) is False
        wrapped = StoreError("cannot open")
        wrapped.__cause__ = busy.value
        assert is_transient(wrapped)
        holder.execute("ROLLBACK")
        with pytest.raises(OperationalError) as missing, engine.begin() as conn:
            conn.execute(text("INSERT INTO nowhere VALUES (1)"))
        assert not is_transient(missing.value)
        with engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
        with pytest.raises(IntegrityError) as duplicate, engine.begin() as conn:
            conn.execute(text("INSERT INTO t VALUES (1)"))
        assert not is_transient(duplicate.value)
    finally:
        holder.close()
        engine.dispose()
    assert not is_transient(ValueError("not a database error"))


def test_postgresql_errors_by_sqlstate(database_url: str, forwarder: Forwarder) -> None:
    postgresql_only(database_url)
    import psycopg
    from psycopg import errors

    for transient in (
        errors.SerializationFailure(),
        errors.DeadlockDetected(),
        errors.AdminShutdown(),
        errors.CannotConnectNow(),
        errors.TooManyConnections(),
        errors.LockNotAvailable(),
    ):
        assert is_transient(transient), transient
    for permanent in (errors.UndefinedTable(), errors.UniqueViolation(), errors.SyntaxError()):
        assert not is_transient(permanent), permanent
    direct = create_engine(database_url, poolclass=NullPool)
    proxied = create_engine(forwarder.url(database_url), poolclass=NullPool)
    try:
        with pytest.raises(DBAPIError) as missing, direct.connect() as conn:
            conn.execute(text("SELECT * FROM no_such_table"))
        assert not is_transient(missing.value)
        gone = urlsplit(database_url)._replace(path="/no_such_database_here")
        with pytest.raises(DBAPIError) as no_database:
            create_engine(urlunsplit(gone), poolclass=NullPool).connect()
        assert not is_transient(no_database.value)
        with proxied.connect() as conn:
            forwarder.cut()
            with pytest.raises(DBAPIError) as lost:
                conn.execute(text("SELECT 1"))
        assert is_transient(lost.value)
        with pytest.raises(DBAPIError) as refused:
            proxied.connect()
        assert is_transient(refused.value)
        assert isinstance(refused.value.orig, psycopg.OperationalError)
    finally:
        direct.dispose()
        proxied.dispose()


class FakeTime:
    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    def monotonic(self) -> float:
        return self.now


def locked() -> Exception:
    error = sqlite3.OperationalError("database is locked")
    error.sqlite_errorcode = 5  # type: ignore[attr-defined]
    return error


def test_retrier_backs_off_gives_up_and_reports_once() -> None:
    clock, said = FakeTime(), []
    retrier = Retrier(RetryPolicy(give_up_after=10), said.append, sleep=clock.sleep,
                      monotonic=clock.monotonic)  # fmt: skip
    failures = iter([locked(), locked(), locked()])

    def flaky() -> str:
        error = next(failures, None)
        if error is not None:
            raise error
        return "stored"

    assert retrier.call(flaky, lambda: "log: committed through line 7 (byte 99)") == "stored"
    assert len(said) == 2 and "database unavailable" in said[0] and "up to 10s" in said[0]
    assert "database back after 3.5s" in said[1]  # 0.5 + 1 + 2
    assert retrier.outages == 1

    def down() -> None:
        raise locked()

    with pytest.raises(IngestGaveUp, match=r"log: committed through line 7 \(byte 99\): gave up"):
        retrier.call(down, lambda: "log: committed through line 7 (byte 99)")
    assert clock.now == pytest.approx(13.5)  # 10 s after the first failure, not longer
    with pytest.raises(IngestGaveUp, match="stopped while the database was unavailable"):
        retrier.call(down, lambda: "log", keep_going=lambda: False)
    at_once = Retrier(RetryPolicy(give_up_after=0), said.append, sleep=clock.sleep)
    with pytest.raises(IngestGaveUp, match="database is locked"):
        at_once.call(down, lambda: "log")

    def permanent() -> None:
        raise sqlite3.OperationalError("no such table: hits")

    before = clock.now
    with pytest.raises(StoreError, match="no such table: hits") as error:
        retrier.call(permanent, lambda: "log")
    assert not isinstance(error.value, IngestGaveUp) and clock.now == before


def test_following_never_gives_up_and_caps_the_delay() -> None:
    clock = FakeTime()
    retrier = Retrier(RetryPolicy(give_up_after=None), lambda _m: None, sleep=clock.sleep,
                      monotonic=clock.monotonic)  # fmt: skip
    failures = iter([locked()] * 40)

    def flaky() -> int:
        error = next(failures, None)
        if error is not None:
            raise error
        return 1

    assert retrier.call(flaky, lambda: "log") == 1
    assert clock.now > 600  # 40 failures: 0.5, 1, ..., then 30 s apiece
    assert max(clock.slept) <= 30


# -- real faults ------------------------------------------------------------------------------


def test_sqlite_lock_held_past_busy_timeout_waits_then_finishes(
    database_url: str, fresh_url: Callable[[], str], tmp_path: Path
) -> None:
    sqlite_only(database_url)
    log = tmp_path / "mail.log"
    log.write_text(postfix_log(20_000))
    clean = clean_run(log, database_url, fresh_url, tmp_path)
    config = trapped_config(tmp_path / "run", database_url)
    process = start_ingest(config, log, "--batch", "100")
    path = urlsplit(database_url).path[1:]
    wait_until(lambda: committed_lines(database_url) >= 500, "the first batches")
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN EXCLUSIVE")
        held_at = holder.execute("SELECT lines FROM ingest_sources").fetchone()[0]
        assert process.poll() is None, "ingest finished before the lock was taken"
        time.sleep(12)  # longer than the 10 s busy timeout: the ingest must meet SQLITE_BUSY
        assert process.poll() is None, process.communicate()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    _out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    assert err.count("database unavailable") == 1 and "database is locked" in err, err
    assert err.count("database back after") == 1, err
    assert f"committed through line {held_at}" in err
    assert_same_as_clean(database_url, clean)


def test_postgresql_server_gone_mid_ingest_then_back(
    database_url: str, forwarder: Forwarder, fresh_url: Callable[[], str], tmp_path: Path
) -> None:
    postgresql_only(database_url)
    log = tmp_path / "mail.log"
    log.write_text(postfix_log(20_000))
    clean = clean_run(log, database_url, fresh_url, tmp_path)
    direct = trapped_config(tmp_path / "run", database_url)
    (tmp_path / "proxied").mkdir()
    config = write_config(tmp_path / "proxied", url=forwarder.url(database_url))
    config.write_text(config.read_text() + LISTING)
    assert database_url_of(direct) == database_url
    process = start_ingest(config, log, "--batch", "100")
    for outage in range(3):
        target = 2000 + outage * 5000
        wait_until(lambda t=target: committed_lines(database_url) >= t, f"line {target}")  # type: ignore[misc]
        assert process.poll() is None, "ingest finished before the outage"
        forwarder.cut()
        time.sleep(2)
        forwarder.restore()
    _out, err = process.communicate(timeout=180)
    assert process.returncode == 0, err
    assert err.count("database unavailable") == 3, err
    assert err.count("database back after") == 3, err
    assert_same_as_clean(database_url, clean)


def test_give_up_after_retry_for_then_rerun_completes(
    database_url: str, fresh_url: Callable[[], str], tmp_path: Path, request: Any
) -> None:
    log = tmp_path / "mail.log"
    log.write_text(postfix_log(20_000))
    clean = clean_run(log, database_url, fresh_url, tmp_path)
    direct = trapped_config(tmp_path / "run", database_url)
    if database_url.startswith("sqlite"):
        config = direct
        holder = sqlite3.connect(urlsplit(database_url).path[1:], isolation_level=None)

        def down() -> None:
            holder.execute("BEGIN EXCLUSIVE")

        def up() -> None:
            holder.execute("ROLLBACK")
            holder.close()
    else:
        proxy: Forwarder = request.getfixturevalue("forwarder")
        (tmp_path / "proxied").mkdir()
        config = write_config(tmp_path / "proxied", url=proxy.url(database_url))
        config.write_text(config.read_text() + LISTING)
        down, up = proxy.cut, proxy.restore
    process = start_ingest(config, log, "--batch", "100", "--retry-for", "1")
    wait_until(lambda: committed_lines(database_url) >= 1000, "the first batches")
    down()
    try:
        out, err = process.communicate(timeout=120)
        committed = (
            sqlite3.connect(urlsplit(database_url).path[1:])
            .execute('SELECT lines, "offset" FROM ingest_sources')
            .fetchone()
            if database_url.startswith("sqlite")
            else rows(database_url, 'SELECT lines, "offset" FROM ingest_sources')[0]
        )
    finally:
        up()
    assert process.returncode == 1, out + err
    lines, offset = (int(v) for v in committed)
    assert 0 < lines < 20_000
    assert f"Error: {log}: committed through line {lines} (byte {offset}): gave up after" in err
    assert "(--retry-for 1); a re-run resumes there" in err
    assert "Traceback" not in err
    again = rbl_command(config, "ingest", "--format", "postfix", str(log))
    assert f"resumed after line {lines}" in again.stdout
    assert_same_as_clean(database_url, clean)


def test_missing_table_fails_at_once_with_a_clear_message(
    database_url: str, tmp_path: Path
) -> None:
    log = tmp_path / "mail.log"
    log.write_text(postfix_log(300))
    config = trapped_config(tmp_path / "run", database_url)
    engine = create_engine(database_url, poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE hits"))
    engine.dispose()
    result = rbl_command(config, "ingest", "--format", "postfix", str(log), check=False)
    assert result.returncode == 1
    assert f"Error: {log}: committed through line 0 (byte 0): " in result.stderr
    assert "hits" in result.stderr and "database unavailable" not in result.stderr
    assert "Traceback" not in result.stderr


KILLS = 6


def test_kill_9_at_random_points_then_rerun_is_exact(
    database_url: str, fresh_url: Callable[[], str], tmp_path: Path
) -> None:
    total = 30_000
    log = tmp_path / "mail.log"
    log.write_text(postfix_log(total))
    line_count = log.read_text().count("\n")
    clean = clean_run(log, database_url, fresh_url, tmp_path)
    config = trapped_config(tmp_path / "run", database_url)
    rng = random.Random(SEED)
    killed_at: list[int] = []
    for _kill in range(KILLS):
        # The first one during start-up, the others after a random stretch of progress.
        target = 0 if not killed_at else killed_at[-1] + rng.randrange(1000, 4000)
        kill_ingest_past(config, log, database_url, target, rng, "--batch", "250")
        killed_at.append(committed_lines(database_url))
    assert killed_at[-1] < line_count
    result = rbl_command(config, "ingest", "--format", "postfix", str(log))
    assert f"resumed after line {killed_at[-1]}" in result.stdout or killed_at[-1] == 0
    assert committed_lines(database_url) == line_count
    hits, listings = assert_same_as_clean(database_url, clean)
    print(f"FIGURES kill-9 ingest: kills={KILLS} lines={line_count} hits={hits} "
          f"listings={listings} committed_at_kill={killed_at}")  # fmt: skip


def test_kill_9_while_following_a_growing_log(
    database_url: str, fresh_url: Callable[[], str], tmp_path: Path
) -> None:
    content = postfix_log(12_000, seed=SEED + 1)
    log = tmp_path / "mail.log"
    whole = tmp_path / "whole.log"
    whole.write_text(content)
    clean = clean_run(whole, database_url, fresh_url, tmp_path)
    config = trapped_config(tmp_path / "run", database_url)
    data = content.encode()
    rng, sizes = random.Random(SEED + 2), random.Random(SEED + 3)
    first = data.index(b"\n") + 1  # the file's identity hashes its first line
    log.write_bytes(data[:first])
    done = threading.Event()

    def append() -> None:  # appends of random sizes: most end mid-line
        with log.open("ab") as handle:
            position = first
            while position < len(data):
                step = data[position : position + sizes.randrange(2000, 20000)]
                handle.write(step)
                handle.flush()
                position += len(step)
                time.sleep(0.05)
        done.set()

    follow = ("--follow", "--poll", "0.05", "--batch", "200")
    writer = threading.Thread(target=append, daemon=True)
    writer.start()
    kills = 0
    process = start_ingest(config, log, *follow)
    try:
        while not done.is_set() or kills < 4:
            time.sleep(rng.uniform(0.5, 1.5))
            process.send_signal(signal.SIGKILL)
            process.communicate(timeout=30)
            kills += 1
            process = start_ingest(config, log, *follow)
        total = content.count("\n")
        wait_until(lambda: committed_lines(database_url) == total, "every line")
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
    writer.join(timeout=5)
    # The last one may meet SIGTERM before its handler is installed (it had nothing to do).
    assert process.returncode in (0, -signal.SIGTERM), err
    assert value(database_url, "SELECT COUNT(*) FROM ingest_sources") == 1
    hits, listings = assert_same_as_clean(database_url, clean)
    print(f"FIGURES kill-9 follow: kills={kills} lines={total} hits={hits} listings={listings}")


def with_bad_lines(content: str, every: int) -> tuple[str, int]:
    """The log with, every ``every`` lines, one the parser refuses, one it fails on, or
    one the store refuses (a hit from REFUSED_IP); and how many were put in."""
    out, bad = [], 0
    for n, line in enumerate(content.splitlines(keepends=True), 1):
        out.append(line)
        if n % every == 0:
            ip = ("300.1.1.1", "\u00b2.1.1.1", REFUSED_IP)[(n // every) % 3]
            out.append(
                f"{line[:15]} mx1 postfix/smtpd[9{n}]: NOQUEUE: reject: RCPT from "
                f"unknown[{ip}]: 550 5.1.1 <trap@example.org>: Recipient address rejected: "
                "User unknown in local recipient table; from=<x@y.example> "
                f"to=<trap@example.org> proto=ESMTP helo=<b{n}.example>\n"
            )
            bad += 1
    return "".join(out), bad


QUARANTINE = 'SELECT line_number, "offset", line, state FROM quarantine'


def test_kill_9_with_bad_lines_quarantines_each_exactly_once(
    database_url: str, fresh_url: Callable[[], str], tmp_path: Path
) -> None:
    content, bad = with_bad_lines(postfix_log(20_000, seed=SEED + 4), every=150)
    log = tmp_path / "mail.log"
    log.write_text(content)
    clean_config = trapped_config(tmp_path / "clean", clean_url := fresh_url())
    refuse_client(clean_config, REFUSED_IP)
    result = rbl_command(clean_config, "ingest", "--format", "postfix", str(log))
    assert f"quarantined: {bad}" in result.stdout, result.stdout
    clean = (rows(clean_url, HITS), rows(clean_url, LISTINGS))
    kept = rows(clean_url, QUARANTINE)
    assert len(kept) == bad
    config = trapped_config(tmp_path / "run", database_url)
    refuse_client(config, REFUSED_IP)
    rng = random.Random(SEED + 5)
    killed_at = [0]
    for _kill in range(4):
        target = killed_at[-1] + rng.randrange(500, 2000)
        kill_ingest_past(config, log, database_url, target, rng, "--batch", "100")
        killed_at.append(committed_lines(database_url))
    rbl_command(config, "ingest", "--format", "postfix", str(log))
    assert rows(database_url, QUARANTINE) == kept  # each bad line once, at the same place
    hits, listings = assert_same_as_clean(database_url, clean)
    print(f"FIGURES kill-9 with bad lines: lines={content.count(chr(10))} bad={bad} "
          f"quarantined={len(kept)} lost=0 hits={hits} listings={listings} "
          f"committed_at_kill={killed_at[1:]}")  # fmt: skip
