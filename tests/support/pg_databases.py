"""Throwaway PostgreSQL databases for the tests: one per test, copied from a migrated template.

``RBL_TEST_PG_URL`` names a database on a server where its user may create
databases (``scripts/pg-test-server start`` prints one). A session builds
``<name>_tpl_<pid>`` once through Alembic; each test gets
``CREATE DATABASE ... TEMPLATE`` of it (a file copy, tens of milliseconds) and
drops it afterwards.
"""

from __future__ import annotations

import itertools
import os
import time
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ENV = "RBL_TEST_PG_URL"


def configured_url() -> str | None:
    return os.environ.get(ENV) or None


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + name))


class PgDatabases:
    def __init__(self, url: str) -> None:
        self.url = url
        self.template = f"{urlsplit(url).path.lstrip('/') or 'rbl'}_tpl_{os.getpid()}"
        self._numbers = itertools.count(1)
        self._admin: Any = None

    def _connection(self) -> Any:
        import psycopg

        from rbl.store.reader import postgresql_conninfo

        if self._admin is None or self._admin.closed:
            self._admin = psycopg.connect(**postgresql_conninfo(self.url), autocommit=True)  # type: ignore[arg-type]
        return self._admin

    def _execute(self, sql: str) -> None:
        self._connection().execute(sql)  # names are ours: no quoting needed

    def create_template(self) -> None:
        from rbl.store.database import open_engine

        self._execute(f"DROP DATABASE IF EXISTS {self.template} WITH (FORCE)")
        self._execute(f"CREATE DATABASE {self.template}")
        open_engine(with_database(self.url, self.template)).dispose()

    def create(self) -> str:
        name = f"{self.template}_{next(self._numbers)}"
        self._execute(f"CREATE DATABASE {name} TEMPLATE {self.template} STRATEGY FILE_COPY")
        return name

    def url_of(self, name: str) -> str:
        return with_database(self.url, name)

    def drop(self, name: str) -> None:
        """Drop ``name``; FORCE ends our own sessions in it.

        FORCE cannot end an autovacuum worker (a superuser's) that happens to be
        in the database, and fails with InsufficientPrivilege; the worker is done
        within moments, so the drop is tried again for a while.
        """
        import psycopg

        for attempt in range(100):
            try:
                self._execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
                return
            except (psycopg.errors.InsufficientPrivilege, psycopg.errors.ObjectInUse):
                if attempt == 99:
                    raise
                time.sleep(0.1)

    def close(self) -> None:
        try:
            self.drop(self.template)
        finally:
            if self._admin is not None:
                self._admin.close()
