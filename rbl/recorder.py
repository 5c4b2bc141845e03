"""Buffers TrapHits from live feeds and writes them to the store in batches.

A live feed (the Postfix policy service) must answer at once and never wait
for the database, so it hands each hit to ``submit``, which only appends to
a bounded buffer. ``flush`` runs on the clock and writes the buffer in one
transaction in the database thread pool; a failed write keeps the hits for
the next flush. When the buffer is full the oldest hits are dropped and
counted: a live feed is evidence of what happens now. Imports no SQLAlchemy.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet import defer, task
from twisted.logger import Logger

from rbl.traphit import TrapHit

log = Logger(namespace="rbl.recorder")

MAX_BUFFERED = 100_000
MAX_BATCH = 5_000


class HitRecorder:
    def __init__(
        self,
        write: Callable[[list[TrapHit]], defer.Deferred[Any]],
        clock: Any,
        interval: float = 0.2,
        limit: int = MAX_BUFFERED,
    ) -> None:
        self.write = write  # runs the store transaction off the reactor thread
        self.clock = clock
        self.interval = interval
        self.buffer: deque[TrapHit] = deque(maxlen=limit)
        self.dropped = 0
        self.written = 0
        self.failures = 0
        self._writing = False
        self._loop: task.LoopingCall | None = None

    def submit(self, hit: TrapHit) -> None:
        if len(self.buffer) == self.buffer.maxlen:
            self.dropped += 1
        self.buffer.append(hit)

    def start(self) -> None:
        self._loop = task.LoopingCall(self.flush)
        self._loop.clock = self.clock
        self._loop.start(self.interval, now=False)

    def stop(self) -> defer.Deferred[None]:
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        return self.flush()  # write what is left before the process exits

    def flush(self) -> defer.Deferred[None]:
        if self._writing or not self.buffer:
            return defer.succeed(None)
        batch = [self.buffer.popleft() for _ in range(min(len(self.buffer), MAX_BATCH))]
        self._writing = True
        d = self.write(batch)

        def written(_result: object) -> None:
            self.written += len(batch)
            if self.failures:
                log.info("writing trap hits works again")
            self.failures = 0

        def failed(failure: Any) -> None:
            # Keep the hits (oldest first) for the next flush; say so once per outage.
            self.buffer.extendleft(reversed(batch))
            if not self.failures:
                log.failure(
                    "cannot write trap hits; keeping them for the next try", failure=failure
                )
            self.failures += 1

        def done(result: object) -> None:
            self._writing = False

        d.addCallbacks(written, failed)
        d.addBoth(done)
        return d
