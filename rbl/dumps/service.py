"""The hourly dump inside ``rbl serve``: a timer that writes the files off the reactor.

``TimerService`` stops looping after its first failure (twisted
application/internet.py ``_failed``), so this service runs its own
``LoopingCall`` whose job catches, logs and keeps the schedule. The dump runs
through an injected ``run(function, *args) -> Deferred`` (a thread pool),
never on the reactor thread that answers DNS; a tick that comes while a dump
is still running is skipped.

A failed dump (the database unreachable, the disk full) renames nothing, so
the previous generation stays in place and served; the next tick tries
again. A dump killed with the process is finished or cleaned up by the
first dump after the restart, which runs at once (see ``rbl.dumps.writer``).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from rbl.config import Settings
from rbl.config.reconfigure import ReloadReport
from rbl.dumps.writer import DEFAULT_GZIP_LEVEL, DumpReport, write_dumps
from rbl.store.reader import ListingReader

log = Logger(namespace="rbl.dumps")

DEFAULT_INTERVAL = 3600.0

Runner = Callable[..., "defer.Deferred[Any]"]


class DumpService(Service):
    """Writes every zone's dump files now and then every ``interval`` seconds."""

    def __init__(
        self,
        settings: Settings,
        reader: ListingReader,
        directory: Path,
        run: Runner,
        clock: Any,
        interval: float = DEFAULT_INTERVAL,
        now: Callable[[], datetime] | None = None,
        gzip_level: int = DEFAULT_GZIP_LEVEL,
    ) -> None:
        self.settings = settings
        self.reader = reader
        self.directory = Path(directory)
        self.run = run
        self.clock = clock
        self.interval = interval
        self.gzip_level = gzip_level
        self.now = now or (lambda: datetime.fromtimestamp(clock.seconds(), UTC))
        self.loop: task.LoopingCall | None = None
        self.busy = False
        self.runs = 0
        self.failures = 0
        self.last_report: DumpReport | None = None

    def startService(self) -> None:
        super().startService()  # type: ignore[no-untyped-call]
        self.loop = task.LoopingCall(self.tick)
        self.loop.clock = self.clock
        self.loop.start(self.interval, now=True)

    def stopService(self) -> defer.Deferred[None] | None:
        super().stopService()  # type: ignore[no-untyped-call]
        if self.loop is not None and self.loop.running:
            self.loop.stop()
        return None

    def reschedule(self, interval: float) -> None:
        """A new interval from a reload: the next dump comes ``interval`` from now."""
        self.interval = interval
        if self.loop is not None and self.loop.running:
            self.loop.stop()
            self.loop = task.LoopingCall(self.tick)
            self.loop.clock = self.clock
            self.loop.start(interval, now=False)

    def reconfigure(self, old: Settings, new: Settings, report: ReloadReport) -> None:
        """[dumps] from a reload: schedule and compression; a new directory waits for a restart."""
        if old.dumps == new.dumps or str(self.directory) != new.dumps.directory:
            return
        self.settings = new
        self.gzip_level = new.dumps.gzip_level
        if self.interval != new.dumps.interval:
            self.reschedule(new.dumps.interval)
        report.applied.append("[dumps]")

    def tick(self) -> defer.Deferred[None] | None:
        """One scheduled dump; never fails, so the loop keeps its schedule."""
        if self.busy:
            log.warn("dump still running after {interval}s; skipping", interval=self.interval)
            return None
        self.busy = True
        try:
            job = partial(write_dumps, gzip_level=self.gzip_level)
            d = self.run(job, self.settings, self.reader, self.directory, self.now())
        except Exception:
            d = defer.fail(Failure())  # type: ignore[no-untyped-call]
        d.addCallbacks(self._done, self._failed)
        d.addBoth(self._idle)
        return d

    def _done(self, report: DumpReport) -> None:
        self.runs += 1
        self.last_report = report
        log.info(
            "dumped {zones} zone(s) to {directory} in {seconds:.2f}s ({size} bytes)",
            zones=len(report.zones),
            directory=str(report.directory),
            seconds=report.seconds,
            size=report.total_bytes,
        )

    def _failed(self, failure: Failure) -> None:
        self.failures += 1
        log.failure(
            "dump to {directory} failed; the previous files stay served; next try in {interval}s",
            failure=failure,
            directory=str(self.directory),
            interval=self.interval,
        )

    def _idle(self, _result: object) -> None:
        self.busy = False
