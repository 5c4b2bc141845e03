# mypy: allow-untyped-calls
"""Follows the change log into the DNS index: a poll every interval, or at once when asked.

The reads run in the database pool (rbl.server.database), the rows apply on
the reactor thread between two packets (rbl.server.follower). When rows this
node never read were pruned, a fresh snapshot is loaded beside the served
index and swapped in. A failing store is logged once; DNS keeps answering
from memory. Imports no SQLAlchemy.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer, task
from twisted.logger import Logger
from twisted.python.failure import Failure

from rbl.dnsserver.zone import Zone
from rbl.index.tables import ZoneIndex
from rbl.server.database import DatabaseService
from rbl.server.follower import IndexFollower, LoadReport, load_index
from rbl.store.reader import Change

log = Logger(namespace="rbl")
CHANGE_BATCH = 5000


class ChangeFollowerService(Service):
    """Polls the change log and applies new rows on the reactor thread.

    Every ``interval``, and at once when ``poll`` is called (a trap hit's
    policy answer waits for its listing: rbl.server.visibility). One read runs at a
    time, so rows apply in order; a poll asked for during a read gets one more
    read after it (the running one may have begun before what the caller waits
    for was committed). ``on_applied`` is called after each read.
    """

    def __init__(
        self, database: DatabaseService, follower: IndexFollower, interval: float, reactor: Any
    ) -> None:
        self.database = database
        self.follower = follower
        self.interval = interval
        self.reactor = reactor
        self.on_applied: Callable[[], None] | None = None
        self.asked = 0  # rbl.server.visibility.Follower: kept by Visibility
        self._loop: task.LoopingCall | None = None
        self._failing = False
        self._reading = False
        self._during: list[defer.Deferred[None]] = []  # fire when the running read ends
        self._after: list[defer.Deferred[None]] = []  # fire when the next read ends

    def startService(self) -> None:
        super().startService()
        self._loop = task.LoopingCall(self.poll)
        self._loop.clock = self.reactor
        self._loop.start(self.interval, now=False)

    def stopService(self) -> defer.Deferred[None] | None:
        super().stopService()
        if self._loop is not None and self._loop.running:
            self._loop.stop()
        return None

    def applied(self) -> int:
        return self.follower.position

    def poll_now(self) -> None:
        self.poll()

    def poll(self) -> defer.Deferred[None]:
        """Read and apply new rows; fires after a read that began after this call."""
        done: defer.Deferred[None] = defer.Deferred()
        if self._reading:
            self._after.append(done)
        else:
            self._during.append(done)
            self._start()
        return done

    def _start(self) -> None:
        self._reading = True
        d = self._readMore()
        d.addErrback(self._failed)
        d.addBoth(self._ended)

    def _readMore(self) -> defer.Deferred[None]:
        d = self.database.run(self._read, self.follower.position)
        return d.addCallback(self._apply)

    def _ended(self, _: object) -> None:
        self._reading = False
        done, self._during = self._during, []
        if self._after:
            self._during, self._after = self._after, []
            self._start()
        if self.on_applied is not None:
            try:
                self.on_applied()
            except Exception:  # a bug there must not stop the following
                log.failure("after applying the change log")
        for d in done:
            d.callback(None)

    def _read(self, after: int) -> tuple[list[Change], int]:
        return self.database.reader.read_changes_since(after, CHANGE_BATCH)

    def _apply(self, read: tuple[list[Change], int]) -> defer.Deferred[None] | None:
        changes, pruned_through = read
        if pruned_through > self.follower.position:
            return self._reload(pruned_through)
        if self._failing:
            self._failing = False
            log.info(
                "change log readable again at position {position}", position=self.follower.position
            )
        self.follower.apply(changes)
        if len(changes) == CHANGE_BATCH and self.running:
            return self._readMore()
        return None

    def _reload(self, pruned_through: int) -> defer.Deferred[None]:
        """Rows this node never read were pruned: load a fresh snapshot, then swap it in.

        The snapshot is read and indexed in the database thread into new index
        objects while DNS goes on answering from the old ones; the swap is on
        the reactor thread, between two packets.
        """
        log.warn(
            "the change log was pruned past this node's position ({position} < {through}); "
            "loading a fresh snapshot",
            position=self.follower.position,
            through=pruned_through,
        )
        fresh = IndexFollower(
            {
                name: Zone(zone.settings, ZoneIndex(zone.settings.kind))
                for name, zone in self.follower.zones.items()
            }
        )
        d = self.database.run(load_index, self.database.reader, fresh)

        def swap(report: LoadReport) -> None:
            self.follower.traps = fresh.traps
            for name, zone in self.follower.zones.items():
                new = fresh.zones[name]
                zone.use_index(new.index, new.serial)
                zone.recorded = new.recorded
                if self.follower.on_serial is not None:
                    self.follower.on_serial(zone)
            self.follower.position = report.position
            log.info(
                "snapshot reloaded: {count} listings at position {position}",
                count=report.listings,
                position=report.position,
            )

        return d.addCallback(swap)

    def _failed(self, failure: Failure) -> None:
        # Keep serving the index we have; say so once, not every poll.
        if not self._failing:
            self._failing = True
            log.failure(
                "cannot read the change log; DNS keeps answering from memory", failure=failure
            )
