# mypy: allow-untyped-calls
"""A Twisted web site on one TCP address, bound in ``privilegedStartService``.

The lookup site (rbl.web.service) and ``/metrics`` (rbl.metrics.service) both
listen this way: the port binds before ``rbl serve`` drops privileges, or at
start when the privileged step was skipped (tests), and ``bound`` says where
it listens once it does (port 0 picks a free one; the ready file reports it).
Imports Twisted only.
"""

from __future__ import annotations

from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.interfaces import IListeningPort
from twisted.web.server import Site


class ListeningSite(Service):
    """Serves ``site`` on ``listen`` (host, port); ``port`` once bound."""

    backlog = 50  # Twisted's default accept queue
    what = "the site"  # for the error when asked where it listens before it does

    def __init__(self, listen: tuple[str, int], site: Site, reactor: Any) -> None:
        self.listen = listen
        self.site = site
        self.reactor = reactor
        self.port: IListeningPort | None = None

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        if self.port is None:
            host, port = self.listen
            self.port = self.reactor.listenTCP(
                port, self.site, interface=host, backlog=self.backlog
            )

    def startService(self) -> None:
        if self.port is None:  # started without the privileged step (e.g. setServiceParent)
            self.privilegedStartService()
        super().startService()

    @property
    def bound(self) -> tuple[str, int]:
        """The address actually listened on (for the ready file)."""
        if self.port is None:
            raise RuntimeError(f"{self.what} is not listening")
        address = self.port.getHost()
        return str(getattr(address, "host", self.listen[0])), int(getattr(address, "port", 0))

    def stop_listening(self) -> defer.Deferred[Any]:
        """Close the port (no new connections); open ones are the caller's to finish."""
        port, self.port = self.port, None
        if port is None:
            return defer.succeed(None)
        return defer.maybeDeferred(port.stopListening)
