# mypy: allow-untyped-calls
"""``/metrics`` on its own port, for Prometheus; and the collector behind it.

Its own listener (``[metrics] listen``), not the public site: counters say
how busy and how stale the list is, which is the operator's business. A
scrape renders the in-process counters on the reactor thread (microseconds)
and reads the store in a thread, at most every ``STORE_REFRESH`` seconds;
when the store cannot be read, the scrape still answers, with
``rbl_database_up 0``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http, server
from twisted.web.resource import Resource

from rbl.metrics.collect import (
    DnsCounted,
    DumpRuns,
    dns_families,
    dns_snapshot,
    dump_families,
    file_backlog,
    info_families,
    policy_families,
    store_families,
)
from rbl.metrics.exposition import CONTENT_TYPE, render
from rbl.metrics.transfers import notify_families
from rbl.policy.trapfilter import NO_TRAPS
from rbl.store.reader import ListingReader, StoreStats
from rbl.web.listening import ListeningSite

if TYPE_CHECKING:
    from rbl.dnsserver.notify import NotifySender
    from rbl.dnsserver.zone import Zone
    from rbl.feeds.policyd import PolicyServerFactory
    from rbl.feeds.recorder import HitRecorder

log = Logger(namespace="rbl.metrics")

STORE_REFRESH = 15.0  # seconds a store reading is reused


class Followed(Protocol):
    """The index DNS answers from: its zones and the change-log id applied."""

    zones: dict[str, Zone]
    position: int


class Workers(Protocol):
    """The ``--workers`` children: the newest counters each sent, by worker number."""

    @property
    def reports(self) -> Mapping[int, Mapping[str, Any]]: ...


class PolicyFeed(Protocol):
    """The writer's live feed: the policy factory (when listening) and its recorder."""

    policy_factory: PolicyServerFactory | None
    recorder: HitRecorder


class Observed(Protocol):
    """What a scrape reads of a composed server (rbl.server.service.Server)."""

    @property
    def dns(self) -> DnsCounted:
        """This process's DNS ports (rbl.server.dnsservice.DnsServerService)."""

    @property
    def follower(self) -> Followed:
        """The index they answer from (rbl.server.follower.IndexFollower)."""

    @property
    def supervisor(self) -> Workers | None:
        """The ``--workers`` children, when there are any (rbl.server.workers)."""

    @property
    def writer(self) -> PolicyFeed | None:
        """The writer node's live feed; None on a DNS-only node (rbl.server.writer)."""

    @property
    def dumps(self) -> DumpRuns | None:
        """The dump timer, when ``[dumps] directory`` is set (rbl.dumps.service)."""

    @property
    def notify(self) -> NotifySender | None:
        """NOTIFY to the secondaries, when ``[transfer] notify`` is set."""


class MetricsCollector:
    """Renders one scrape from a composed server."""

    def __init__(
        self,
        server: Observed,
        reader: ListingReader | None,
        run: Callable[..., defer.Deferred[Any]],
        clock: Any,
        dump_directory: Path | None = None,
    ) -> None:
        self.server = server
        self.reader = reader  # its own connection: a scrape must not hold DNS's reader
        self.run = run
        self.clock = clock
        self.dump_directory = dump_directory
        self._stats: StoreStats | None = None
        self._stats_at: float | None = None
        self._reading: defer.Deferred[None] | None = None
        self._failing = False
        self._traps = NO_TRAPS  # from the last store reading; kept while the store is down

    def snapshots(self) -> Mapping[str, Mapping[str, Any]]:
        server = self.server
        own = dns_snapshot(server.dns, server.follower.zones, server.follower.position)
        found: dict[str, Mapping[str, Any]] = {"0": own}
        supervisor = server.supervisor
        if supervisor is not None:
            for number, report in sorted(supervisor.reports.items()):
                found[str(number)] = report
        return found

    def _refresh(self) -> defer.Deferred[None]:
        """Read the store unless a recent reading exists; one reading at a time."""
        now = self.clock.seconds()
        if self.reader is None or (
            self._stats_at is not None and now - self._stats_at < STORE_REFRESH
        ):
            return defer.succeed(None)
        if self._reading is not None:
            waiting: defer.Deferred[None] = defer.Deferred()

            def release(result: object) -> object:
                waiting.callback(None)
                return result

            self._reading.addBoth(release)
            return waiting
        reading = self._reading = self.run(self.reader.store_stats)

        def read(stats: StoreStats) -> None:
            self._stats, self._stats_at = stats, self.clock.seconds()
            self._traps = stats.traps
            if self._failing:
                log.info("store statistics readable again")
            self._failing = False

        def failed(failure: Failure) -> None:
            self._stats, self._stats_at = None, self.clock.seconds()
            if not self._failing:
                log.failure("cannot read store statistics for /metrics", failure=failure)
            self._failing = True

        def done(_: object) -> None:
            self._reading = None

        reading.addCallbacks(read, failed)
        reading.addBoth(done)  # may run at once: a runner can finish synchronously
        return reading

    def collect(self) -> defer.Deferred[bytes]:
        def rendered(_: object) -> bytes:
            return self.render()

        return self._refresh().addCallback(rendered)

    def render(self) -> bytes:
        server = self.server
        writer = server.writer
        families = [
            *info_families("dns-only" if writer is None else "primary"),
            *dns_families(self.snapshots()),
        ]
        if self.reader is not None:
            backlog = file_backlog if writer is not None else (lambda *_: None)
            now = datetime.fromtimestamp(self.clock.seconds(), UTC)
            families += store_families(self._stats, now, backlog)
        if writer is not None and writer.policy_factory is not None:
            families += policy_families(writer.policy_factory, writer.recorder)
        families += dump_families(server.dumps, self.dump_directory, self.clock.seconds())
        families += notify_families(server.notify)
        # Label values come from feeds and file names: no trap may be named in them.
        return self._traps.redact(render(families).decode("utf-8")).encode("utf-8")


class MetricsResource(Resource):
    isLeaf = True

    def __init__(self, collector: MetricsCollector) -> None:
        super().__init__()
        self.collector = collector

    def render_GET(self, request: server.Request) -> int | bytes:
        if request.postpath not in ([b"metrics"], [b"metrics", b""]):
            request.setResponseCode(http.NOT_FOUND)
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"metrics are at /metrics\n"
        d = self.collector.collect()

        def send(body: bytes) -> None:
            if request.finished or getattr(request, "_disconnected", False):
                return
            request.setHeader(b"content-type", CONTENT_TYPE)
            request.setHeader(b"cache-control", b"no-store")
            request.write(body)
            request.finish()

        def failed(failure: Failure) -> None:
            log.failure("rendering /metrics failed", failure=failure)
            if request.finished or getattr(request, "_disconnected", False):
                return
            request.setResponseCode(http.INTERNAL_SERVER_ERROR)
            request.write(b"metrics failed; see the server log\n")
            request.finish()

        d.addCallbacks(send, failed)
        return server.NOT_DONE_YET


class MetricsService(ListeningSite):
    """Listens on ``listen``; ``bound`` once listening (port 0 picks a free one)."""

    what = "metrics"

    def __init__(self, listen: tuple[str, int], collector: MetricsCollector, reactor: Any) -> None:
        site = server.Site(MetricsResource(collector))
        site.displayTracebacks = False
        site.noisy = False
        super().__init__(listen, site, reactor)
        self.collector = collector

    def stopService(self) -> defer.Deferred[Any]:
        super().stopService()
        stopping = [self.stop_listening()]
        reader = self.collector.reader
        if reader is not None:  # in a thread: a scrape may be reading right now
            stopping.append(self.collector.run(reader.close))
        return defer.DeferredList(stopping)
