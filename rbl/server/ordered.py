"""A MultiService that stops its children one after another, in reverse order.

``MultiService.stopService`` stops every child at once; a graceful stop of
``rbl serve`` needs each to finish first: the site's and the policy feed's
pending database work must end before the database pool is joined (which
would block the reactor meanwhile), and DNS keeps answering until the
writers are done. Imports Twisted only.
"""

from __future__ import annotations

from twisted.application.service import IService, MultiService, Service
from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

log = Logger(namespace="rbl")


class OrderedServices(MultiService):
    """Starts its children in order and stops them in reverse, each after the one before."""

    def stopService(self) -> defer.Deferred[None]:
        Service.stopService(self)  # type: ignore[no-untyped-call]
        stopping: defer.Deferred[None] = defer.succeed(None)
        for child in reversed(list(self)):
            stopping.addCallback(_stop_one, child)
        return stopping


def _stop_one(_: object, service: IService) -> defer.Deferred[None]:
    """Stop one service; a failure is logged, and the next service still stops."""
    if not service.running:
        return defer.succeed(None)
    stopping = defer.maybeDeferred(service.stopService)

    def failed(failure: Failure) -> None:
        log.failure("stopping {service} failed", failure=failure, service=service)

    stopping.addCallbacks(lambda _: None, failed)
    return stopping
