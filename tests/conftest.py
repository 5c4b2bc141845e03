"""Shared fixtures: a fresh store on each backend, a configuration file, a real ``rbl serve``.

Tests that take ``database_url`` (directly, or through ``config_path`` and
``serve``) run twice: on SQLite and on PostgreSQL. The PostgreSQL run uses
``RBL_TEST_PG_URL`` (``scripts/pg-test-server start`` prints one) and a fresh
database per test; without that variable it is skipped, except under CI,
where it fails. Only fixtures live here: the helpers they use are in
tests/support/, which tests import (never this module).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.config import write_config
from tests.support.hostile_sessions import TRAP
from tests.support.pg_databases import ENV, PgDatabases, configured_url
from tests.support.postfix import IDN_TRAP, PolicyServer, start_policy_server
from tests.support.server import RunningServer, start_server, stop_server


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


@pytest.fixture
def serve(config_path: Path) -> Iterator[RunningServer]:
    """A real ``rbl serve`` on 127.0.0.1 with an ephemeral port (same number for UDP and TCP)."""
    server = start_server(config_path)
    try:
        yield server
    finally:
        stop_server(server)


@pytest.fixture
def policy_server() -> Iterator[PolicyServer]:
    """rbl's policy feed in a subprocess (tests/support/postfix.py), for a live Postfix to ask."""
    server = start_policy_server(TRAP, IDN_TRAP)
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=15)
        if server.process.stdout is not None:
            server.process.stdout.close()


def pytest_configure(config: pytest.Config) -> None:
    # Tests open engines without disposing them (the SQLite runs never noticed:
    # sqlite3 does not warn when a connection is collected); psycopg warns, and
    # filterwarnings = error would fail whichever test the collector runs in.
    # The per-test database is dropped WITH (FORCE) all the same.
    config.addinivalue_line(
        "filterwarnings", "ignore:.*psycopg.Connection.*deleted while still open:ResourceWarning"
    )
