"""``rbl serve --workers N``: more DNS processes sharing the same ports.

A Python process answers with one core; a many-core box runs several. The
first process binds the DNS ports with SO_REUSEPORT and starts N-1
``rbl serve --dns-only --reuse-port`` children on the same addresses; the
kernel spreads queries over all of them. Each child loads its own index and
follows the change log, exactly like a DNS node on another machine. The
children are started before privileges are dropped (Linux lets only sockets
of the same user share a port), restarted with a backoff when they die, and
stopped with the parent. Each child reports its counters over a pipe
(rbl.metrics.report), so the first process's /metrics covers them all.
A second pipe runs the other way: when a trap hit's policy answer waits for
its listing to be in DNS (rbl.server.visibility), the first process asks the
children to read the change log now, and each reports back how far it got.
Secrets (a database URL given with --database or RBL_DATABASE_URL) reach the
children in their environment, never in argv: every local user can read a
command line, only the process's own user its environment.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.protocol import ProcessProtocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from rbl.metrics.report import REPORT_FD, ReportReader
from rbl.server.visibility import POLL_REQUEST, Visibility

log = Logger(namespace="rbl.server.workers")

MAX_BACKOFF = 60.0
STOP_TIMEOUT = 10.0
CONTROL_FD = 4  # the poll-request pipe's number in the child


class _Worker(ProcessProtocol):
    def __init__(self, supervisor: WorkerSupervisor, number: int) -> None:
        self.supervisor = supervisor
        self.number = number
        self.ended: defer.Deferred[None] = defer.Deferred()
        self.reports = ReportReader()  # its DNS counters, for the first process's /metrics
        self.transport: Any = None
        # A reload asked for before the child serves: its handler may not be installed
        # yet (SIGHUP would kill it), so it is sent with the child's first report.
        self.reload_pending = False
        self.asked = 0  # rbl.server.visibility.Follower: kept by Visibility

    def applied(self) -> int | None:
        return self.reports.applied

    def poll_now(self) -> None:
        with contextlib.suppress(Exception):  # gone: it answers no DNS either
            self.transport.writeToChild(CONTROL_FD, POLL_REQUEST)

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD == REPORT_FD:
            before = self.reports.applied
            self.reports.feed(data)
            if self.reload_pending and self.reports.latest is not None:
                self.reload_pending = False
                self.signal("HUP")
            if self.reports.applied != before:
                self.supervisor.advanced()

    def signal(self, name: str) -> None:
        with contextlib.suppress(Exception):  # already gone
            self.transport.signalProcess(name)

    def processEnded(self, reason: Failure) -> None:
        self.ended.callback(None)
        self.supervisor.ended(self, reason)


class WorkerSupervisor(Service):
    def __init__(
        self,
        argv: Sequence[str],
        count: int,
        reactor: Any,
        env: Mapping[str, str] | None = None,
        visibility: Visibility | None = None,
    ) -> None:
        self.argv = list(argv)  # the child command line, without the interpreter: no secrets
        self.env = {**os.environ, **(env or {})}  # secrets go here (only the user reads it)
        self.count = count
        self.reactor = reactor
        self.workers: dict[int, tuple[_Worker, Any]] = {}
        self.backoff: dict[int, float] = {}
        self.visibility = visibility  # trap hits wait until every child shows their listing
        if visibility is not None:
            visibility.remote = self.followers

    def followers(self) -> list[_Worker]:
        """The running children (each answers DNS once it has loaded its index)."""
        return [worker for worker, _ in self.workers.values()]

    def advanced(self) -> None:
        if self.visibility is not None:
            self.visibility.advanced()

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        for number in range(1, self.count):
            self._spawn(number)

    def _spawn(self, number: int) -> None:
        worker = _Worker(self, number)
        transport = self.reactor.spawnProcess(
            worker,
            sys.executable,
            [sys.executable, *self.argv],
            env=self.env,
            childFDs={0: "w", 1: 1, 2: 2, REPORT_FD: "r", CONTROL_FD: "w"},
        )
        self.workers[number] = (worker, transport)

    @property
    def reports(self) -> dict[int, dict[str, Any]]:
        """The newest counters report of each running child, by worker number."""
        return {
            number: worker.reports.latest
            for number, (worker, _) in self.workers.items()
            if worker.reports.latest is not None
        }

    def reload(self) -> None:
        """Have every child re-read the configuration (SIGHUP), once it is serving."""
        for worker, _ in list(self.workers.values()):
            if worker.reports.latest is None:
                worker.reload_pending = True
            else:
                worker.signal("HUP")

    def pids(self) -> list[int]:
        return [transport.pid for _, transport in self.workers.values() if transport.pid]

    def ended(self, worker: _Worker, reason: Failure) -> None:
        self.workers.pop(worker.number, None)
        self.advanced()  # what waited on it alone may go now
        if not self.running:
            return
        delay = self.backoff.get(worker.number, 0.5)
        self.backoff[worker.number] = min(delay * 2, MAX_BACKOFF)
        log.warn(
            "DNS worker {number} ended ({reason}); restarting in {delay:.1f}s",
            number=worker.number,
            reason=reason.value,
            delay=delay,
        )
        self.reactor.callLater(delay, self._respawn, worker.number)

    def _respawn(self, number: int) -> None:
        if self.running and number not in self.workers:
            self._spawn(number)

    def stopService(self) -> defer.Deferred[Any]:
        super().stopService()
        ending = []
        for worker, transport in list(self.workers.values()):
            ending.append(worker.ended)
            try:
                transport.signalProcess("TERM")
            except Exception:  # already gone
                continue
            self.reactor.callLater(STOP_TIMEOUT, _kill, transport)
        return defer.DeferredList(ending)


def _kill(transport: Any) -> None:
    try:
        if transport.pid:
            os.kill(transport.pid, signal.SIGKILL)
    except OSError:
        pass
