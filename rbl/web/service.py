# mypy: allow-untyped-calls
"""The public site as a Twisted service: binds its TCP port in privilegedStartService.

``rbl serve`` composes it after the database service (see rbl.server.service), so
the thread pool that ``make_site``'s ``run`` uses is up before the first
request and stops after the port is closed. Imports no store module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer, task
from twisted.logger import Logger

from rbl.config import Settings
from rbl.config.reconfigure import ReloadReport
from rbl.web.listening import ListeningSite

log = Logger(namespace="rbl.web")

STOP_GRACE = 10.0  # seconds a stopping server waits for lookups and removal requests


class WebService(ListeningSite):
    """Listens on ``listen`` (host, port; port 0 picks a free one); ``port`` once bound."""

    backlog = 128
    what = "the lookup site"

    def startService(self) -> None:
        super().startService()
        host, port = self.bound
        log.info("serving the lookup site on {host} port {port}", host=host, port=port)

    def reconfigure(self, old: Settings, new: Settings, report: ReloadReport) -> None:
        """[web], [delisting] and [public] from a reload; the next request sees them."""
        if old.web == new.web and old.delisting == new.delisting and old.public == new.public:
            return
        public = getattr(self.site, "public", None)  # set by rbl.web.site.make_site
        if public is None:
            return
        public.reconfigure(new)
        report.applied.append("[web]")

    def stopService(self) -> defer.Deferred[Any]:
        """Stop listening, finish the requests being answered, send them, then close.

        Waits at most ``STOP_GRACE`` seconds in all: a lookup waiting on the
        database gets its page rather than a closed connection.
        """
        super().stopService()
        stopped = self.stop_listening()
        deadline = self.reactor.seconds() + STOP_GRACE
        public = getattr(self.site, "public", None)
        stopped.addCallback(
            lambda _: self._wait(lambda: not public or public.in_flight <= 0, deadline)
        )
        stopped.addCallback(lambda _: self._close(deadline))
        return stopped

    def _close(self, deadline: float) -> defer.Deferred[None] | None:
        close = getattr(self.site, "close_connections", None)
        if close is None:
            return None
        close()
        return self._wait(lambda: not getattr(self.site, "channels", ()), deadline)

    def _wait(self, done: Callable[[], bool], deadline: float) -> defer.Deferred[None] | None:
        if done() or self.reactor.seconds() >= deadline:
            return None
        later: defer.Deferred[None] = task.deferLater(self.reactor, 0.05, lambda: None)
        later.addCallback(lambda _: self._wait(done, deadline))
        return later
