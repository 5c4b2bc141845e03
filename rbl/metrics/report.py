# mypy: allow-untyped-calls
"""Worker processes report their DNS counters to the first process over a pipe.

``rbl serve --workers N`` starts N-1 children that answer on the same ports;
only the first process listens for scrapes. Each child writes its snapshot
(rbl.metrics.collect.dns_snapshot) as one JSON line to an inherited pipe
every ``REPORT_INTERVAL`` seconds; the supervisor keeps the latest line per
child. A full pipe (the parent is busy) skips a report rather than block DNS.
Between reports, a child that was asked to read the change log now (a trap
hit's policy answer waits for its listing: rbl.server.visibility) writes a short
``{"applied": id}`` line once it has, so the parent need not wait for the next
report to learn how far the child's index is.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Callable, Mapping
from typing import Any

from twisted.application.service import Service
from twisted.internet import task

REPORT_INTERVAL = 2.0
REPORT_FD = 3  # the pipe's number in the child
MAX_LINE = 1 << 20  # a line longer than this is not a report: drop the buffer


class ReportWriter(Service):
    """In a child: writes ``snapshot()`` to ``fd`` on a timer."""

    def __init__(self, fd: int, snapshot: Callable[[], Mapping[str, Any]], clock: Any) -> None:
        self.fd = fd
        self.snapshot = snapshot
        self.clock = clock
        self._loop: task.LoopingCall | None = None

    def startService(self) -> None:
        super().startService()
        os.set_blocking(self.fd, False)
        self._loop = task.LoopingCall(self.write)
        self._loop.clock = self.clock
        self._loop.start(REPORT_INTERVAL, now=True)

    def stopService(self) -> None:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()

    def write(self) -> None:
        self._send(self.snapshot())

    def applied(self, position: int) -> None:
        """Say at once how far this process's index has applied the change log."""
        self._send({"applied": position})

    def _send(self, report: Mapping[str, Any]) -> None:
        line = json.dumps(report, separators=(",", ":")).encode() + b"\n"
        # A full pipe (the parent is busy) or a gone parent: the next report will do. A
        # partial write leaves a torn line, which the reader skips at the next newline.
        with contextlib.suppress(BlockingIOError, BrokenPipeError):
            os.write(self.fd, line)


class ReportReader:
    """In the parent: assembles lines from one child's pipe.

    ``latest`` is the newest report, ``applied`` the newest change-log id the
    child said it applied (in a report or an ``applied`` line; None until then).
    """

    def __init__(self) -> None:
        self.latest: dict[str, Any] | None = None
        self.applied: int | None = None
        self._buffer = b""

    def feed(self, data: bytes) -> None:
        self._buffer += data
        if b"\n" not in self._buffer:
            if len(self._buffer) > MAX_LINE:
                self._buffer = b""
            return
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            try:
                report = json.loads(line)
            except ValueError:
                continue  # a torn line after a skipped write
            if not isinstance(report, dict):
                continue
            position = report.get("applied", report.get("position"))
            if isinstance(position, int) and not isinstance(position, bool):
                self.applied = position  # a child's position only grows, or it restarted
            if "applied" not in report:
                self.latest = report
        if self.latest is not None and self.applied is not None:
            self.latest["position"] = self.applied  # /metrics shows the newest
