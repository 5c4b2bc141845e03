# mypy: allow-untyped-calls
"""Waits until every process of this server that answers DNS has applied a change.

A trap hit that lists its sender is answered to Postfix once the listing is
in DNS, not merely committed: Postfix's ``reject_rbl_client`` looks the client
up right after the policy answer, and an NXDOMAIN then is cached by the
resolver for the zone's SOA minimum. ``wait(position, timeout)`` fires True
once every DNS process (``followers()``: this process's change follower and
each ``--workers`` child) has applied change-log id ``position``, False when
``timeout`` passes first.

Nobody waits a poll interval: a wait asks each process that is behind to read
the change log now (``poll_now``), once per position (``asked``); each reports
back as it applies (``advanced``). A child that is starting (no position known
yet) is waited for; one that has ended answers no DNS and is not. Nothing here
runs per DNS packet. Imports Twisted only.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import Logger

log = Logger(namespace="rbl.server.visibility")


class Follower(Protocol):
    """One process that answers DNS from an index following the change log."""

    asked: int  # the highest position it was asked to read up to (kept by Visibility)

    def applied(self) -> int | None:
        """The change-log id its index has applied; None until known."""

    def poll_now(self) -> None:
        """Read the change log now (and report back through ``Visibility.advanced``)."""


class _Wait:
    __slots__ = ("call", "done", "position")

    def __init__(self, position: int) -> None:
        self.position = position
        self.done: defer.Deferred[bool] = defer.Deferred()
        self.call: IDelayedCall | None = None


class Visibility:
    """The waits for change-log positions, and the processes they wait on."""

    def __init__(self, clock: IReactorTime, local: Follower) -> None:
        self.clock = clock
        self.local = local
        # The --workers children, set by rbl.server.workers.WorkerSupervisor.
        self.remote: Callable[[], Iterable[Follower]] = lambda: ()
        self._waiting: list[_Wait] = []

    def followers(self) -> list[Follower]:
        return [self.local, *self.remote()]

    def wait(self, position: int, timeout: float) -> defer.Deferred[bool]:
        """Fires True once every DNS process has applied ``position``, else False at ``timeout``."""
        if self._reached(position):
            return defer.succeed(True)
        waiting = _Wait(position)
        waiting.call = self.clock.callLater(timeout, self._timedOut, waiting)
        self._waiting.append(waiting)
        self._ask()
        return waiting.done

    def advanced(self) -> None:
        """A process applied more of the change log, or one ended or started: check the waits."""
        if not self._waiting:
            return
        positions = [follower.applied() for follower in self.followers()]
        reached = min((-1 if p is None else p for p in positions), default=-1)
        still = []
        for waiting in self._waiting:
            if waiting.position <= reached:
                self._finish(waiting, True)
            else:
                still.append(waiting)
        self._waiting = still
        self._ask()

    def _reached(self, position: int) -> bool:
        for follower in self.followers():
            applied = follower.applied()
            if applied is None or applied < position:
                return False
        return True

    def _ask(self) -> None:
        """Ask every process behind the newest waited-for position to read now, once."""
        if not self._waiting:
            return
        target = max(waiting.position for waiting in self._waiting)
        for follower in self.followers():
            applied = follower.applied()
            if (applied is None or applied < target) and follower.asked < target:
                follower.asked = target
                follower.poll_now()

    def _timedOut(self, waiting: _Wait) -> None:
        waiting.call = None
        if waiting in self._waiting:
            self._waiting.remove(waiting)
            self._finish(waiting, False)

    def _finish(self, waiting: _Wait, seen: bool) -> None:
        if waiting.call is not None and waiting.call.active():
            waiting.call.cancel()
        waiting.call = None
        waiting.done.callback(seen)


POLL_REQUEST = b"p"  # any byte on the control pipe asks a child to read the change log


class PollRequests(Service):
    """In a ``--workers`` child: reads poll requests from the parent's pipe.

    ``poll`` is called once per read of the pipe (requests that arrived
    together are one poll); an end of file means the parent is gone, which
    the child learns otherwise too (PR_SET_PDEATHSIG), so it is only noted.
    """

    def __init__(self, fd: int, poll: Callable[[], object], reactor: Any) -> None:
        self.fd = fd
        self.poll = poll
        self.reactor = reactor
        self._reading = False

    def startService(self) -> None:
        super().startService()
        os.set_blocking(self.fd, False)
        self.reactor.addReader(self)
        self._reading = True

    def stopService(self) -> None:
        super().stopService()
        self._stop()

    def _stop(self) -> None:
        if self._reading:
            self._reading = False
            self.reactor.removeReader(self)

    def fileno(self) -> int:
        return self.fd

    def logPrefix(self) -> str:
        return "rbl-poll-requests"

    def doRead(self) -> None:
        try:
            data = os.read(self.fd, 4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._stop()
            return
        try:
            self.poll()
        except Exception:
            log.failure("a poll request failed")

    def connectionLost(self, reason: object) -> None:
        with contextlib.suppress(Exception):
            self._stop()
