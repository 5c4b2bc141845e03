# mypy: allow-untyped-calls
"""The store's reader and the thread pool every blocking database call of ``rbl serve`` runs in.

The reactor thread answers DNS and never waits on the database: reads of the
change log, snapshot reloads and scheduled writer jobs go through
``DatabaseService.run``. Composed first, so the pool starts before and stops
after every service that uses it. Imports SQLAlchemy only to create the
tables on a first start.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from twisted.application.service import Service
from twisted.internet import defer, threads
from twisted.python.threadpool import ThreadPool

from rbl.store.reader import ListingReader

T = TypeVar("T")


def ensure_schema(reader: ListingReader, url: str) -> None:
    """Create the tables on first start; SQLAlchemy is imported only in that case."""
    if reader.has_schema():
        return
    from rbl.store.database import open_engine

    open_engine(url).dispose()


def in_reactor_pool(reactor: Any) -> Callable[..., defer.Deferred[Any]]:
    """``run(function, *args)`` in the reactor's own thread pool, for jobs with their own
    connection (dumps, metrics) that must not wait behind the change follower."""

    def run(function: Callable[..., T], *args: Any) -> defer.Deferred[T]:
        return threads.deferToThreadPool(reactor, reactor.getThreadPool(), function, *args)

    return run


class DatabaseService(Service):
    """Owns the reader and the thread pool that every blocking database call runs in."""

    def __init__(self, reader: ListingReader, reactor: Any) -> None:
        self.reader = reader
        self.reactor = reactor
        self.pool = ThreadPool(minthreads=1, maxthreads=2, name="rbl-db")

    def startService(self) -> None:
        super().startService()
        self.pool.start()

    def stopService(self) -> defer.Deferred[None] | None:
        super().stopService()
        self.pool.stop()
        self.reader.close()
        return None

    def run(self, function: Callable[..., T], *args: Any) -> defer.Deferred[T]:
        return threads.deferToThreadPool(self.reactor, self.pool, function, *args)
