# mypy: allow-untyped-calls
"""The public site as a Twisted service: binds its TCP port in privilegedStartService.

``rbl serve`` composes it after the database service (see rbl.server.service), so
the thread pool that ``make_site``'s ``run`` uses is up before the first
request and stops after the port is closed. Imports no store module.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.web.server import Site

log = Logger(namespace="rbl.web")

STOP_GRACE = 10.0  # seconds a stopping server waits for lookups and removal requests


class WebService(Service):
    """Listens on ``listen`` (host, port; port 0 picks a free one); ``port`` once bound."""

    def __init__(self, listen: tuple[str, int], site: Site, reactor: Any) -> None:
        self.listen = listen
        self.site = site
        self.reactor = reactor
        self.port: IListeningPort | None = None

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        host, port = self.listen
        self.port = self.reactor.listenTCP(port, self.site, interface=host, backlog=128)

    def startService(self) -> None:
        if self.port is None:  # started without the privileged step (e.g. setServiceParent)
            self.privilegedStartService()
        super().startService()
        host, port = self.bound
        log.info("serving the lookup site on {host} port {port}", host=host, port=port)

    @property
    def bound(self) -> tuple[str, int]:
        """The address actually listened on (for the ready file)."""
        if self.port is None:
            raise RuntimeError("the lookup site is not listening")
        address = self.port.getHost()
        return str(getattr(address, "host", self.listen[0])), int(getattr(address, "port", 0))

    def stopService(self) -> defer.Deferred[Any]:
        """Stop listening, finish the requests being answered, send them, then close.

        Waits at most ``STOP_GRACE`` seconds in all: a lookup waiting on the
        database gets its page rather than a closed connection.
        """
        super().stopService()
        port, self.port = self.port, None
        stopped = defer.succeed(None) if port is None else defer.maybeDeferred(port.stopListening)
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
