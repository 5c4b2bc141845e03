"""Shared fixtures: configuration files, a real store, a real ``rbl serve`` on loopback.

Tests that take ``database_url`` (directly, or through ``config_path`` and
``serve``) run twice: on SQLite and on PostgreSQL. The PostgreSQL run uses
``RBL_TEST_PG_URL`` (``scripts/pg-test-server start`` prints one) and a fresh
database per test; without that variable it is skipped, except under CI,
where it fails.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from tests.store.pg.databases import ENV, PgDatabases, configured_url

REPO = Path(__file__).resolve().parent.parent

CONFIG_TEMPLATE = """
[dns]
listen = ["127.0.0.1:0"]

[database]
url = "sqlite:///{db}"

[sync]
poll_interval = 0.1

[[zones]]
name = "bl.example.org"
kind = "ip"
ttl = 300
ns = ["ns1.example.org", "ns2.example.net"]
default_code = "127.0.0.2"
txt = "Listed: {{url}}"
lookup_url = "https://www.example.org/lookup/{{key}}"

[zones.soa]
rname = "hostmaster@example.org"
minimum = 120

[[zones]]
name = "dbl.example.org"
kind = "domain"
ttl = 600
ns = ["ns1.example.org"]
default_code = "127.0.1.2"
txt = "Domain {{key}} listed"
"""


def write_config(directory: Path, db_name: str = "rbl.sqlite", *, url: str | None = None) -> Path:
    """``rbl.toml`` in ``directory``: a SQLite file there, or the database ``url``."""
    path = directory / "rbl.toml"
    content = CONFIG_TEMPLATE.format(db=directory / db_name)
    if url is not None:
        content = content.replace(f'url = "sqlite:///{directory / db_name}"', f"url = {url!r}")
    path.write_text(content)
    return path


@pytest.fixture(autouse=True)
def _process_umask() -> Iterator[None]:
    """Each test starts with the umask the run began with.

    ``rbl``'s CLI tightens the process umask (``rbl.cli.base.restrict_umask``);
    run in process by CliRunner, that would leak into later tests, and Postfix's
    queue directories made by a later test would be unreadable to its own user.
    """
    mask = os.umask(0o022)
    os.umask(mask)
    yield
    os.umask(mask)


def database_url_of(config: Path) -> str:
    """The ``[database] url`` a test configuration names (SQLite or PostgreSQL)."""
    with config.open("rb") as f:
        return str(tomllib.load(f)["database"]["url"])


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


@pytest.fixture(scope="session")
def pg_databases() -> Iterator[PgDatabases | None]:
    url = configured_url()
    if url is None:
        yield None
        return
    databases = PgDatabases(url)
    databases.create_template()
    try:
        yield databases
    finally:
        databases.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, pg_databases: PgDatabases | None
) -> Iterator[str]:
    """A fresh, migrated-or-empty store: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'rbl.sqlite'}"
        return
    if pg_databases is None:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set but {ENV} is not: run scripts/pg-test-server start")
        pytest.skip(f"PostgreSQL: set {ENV} (scripts/pg-test-server start prints one)")
    name = pg_databases.create()
    try:
        yield pg_databases.url_of(name)
    finally:
        pg_databases.drop(name)


@pytest.fixture
def config_path(tmp_path: Path, database_url: str) -> Path:
    return write_config(tmp_path, url=database_url)


def rbl_command(
    config: Path, *args: str, check: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real ``rbl`` CLI in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "rbl", "-c", str(config), "--actor", "tester", *args],
        capture_output=True,
        text=True,
        check=check,
        input=stdin,
        env=subprocess_env(),
        timeout=120,
    )


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    host: str
    port: int
    info: dict[str, object]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(config: Path, *extra: str, timeout: float = 60.0) -> RunningServer:
    ready = config.parent / f"ready-{time.monotonic_ns()}.json"
    log_path = config.parent / f"serve-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rbl",
                "-c",
                str(config),
                "serve",
                "--ready-file",
                str(ready),
                *extra,
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=subprocess_env(),
        )
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if process.poll() is not None:
            raise AssertionError(f"rbl serve exited {process.returncode}:\n{log_path.read_text()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"rbl serve not ready in {timeout}s:\n{log_path.read_text()}")
        time.sleep(0.05)
    info = json.loads(ready.read_text())
    endpoint = info["dns"][0]
    return RunningServer(process, endpoint["host"], endpoint["port"], info, log_path)


def stop_server(server: RunningServer) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=15)


@pytest.fixture
def serve(config_path: Path) -> Iterator[RunningServer]:
    """A real ``rbl serve`` on 127.0.0.1 with an ephemeral port (same number for UDP and TCP)."""
    server = start_server(config_path)
    try:
        yield server
    finally:
        stop_server(server)


def pytest_configure(config: pytest.Config) -> None:
    # Tests open engines without disposing them (the SQLite runs never noticed:
    # sqlite3 does not warn when a connection is collected); psycopg warns, and
    # filterwarnings = error would fail whichever test the collector runs in.
    # The per-test database is dropped WITH (FORCE) all the same.
    config.addinivalue_line(
        "filterwarnings", "ignore:.*psycopg.Connection.*deleted while still open:ResourceWarning"
    )


def require_peer(reason: str | None, peer: str) -> None:
    """Skip a test whose real peer this machine lacks, but fail it in CI, which must run it."""
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the live {peer} test: {reason}")
    pytest.skip(reason)
