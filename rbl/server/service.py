"""Wiring: compose the store, the index, the change-log follower and the DNS ports.

``make_service`` loads the index (blocking, before the reactor runs) and
returns one ``OrderedServices``. Children start in order and stop in reverse,
each after the one before has finished stopping, so
the database thread pool starts first and stops last. Blocking database work
runs in that pool, never on the reactor thread that answers DNS.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from twisted.application.service import MultiService, Service
from twisted.internet import defer, task, threads
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from rbl.config import RateLimitSettings, Settings, TcpSettings
from rbl.dnsserver.notify import NotifySender
from rbl.dnsserver.protocol import Counters, DnsStreamFactory, DnsUdpPort
from rbl.dnsserver.ratelimit import ResponseRateLimiter
from rbl.dnsserver.responder import Responder
from rbl.dnsserver.transfer import TransferPolicy, Transfers
from rbl.dnsserver.zone import Zone
from rbl.feeds.listed import ListedReplies
from rbl.index.tables import ZoneIndex
from rbl.server.follower import IndexFollower
from rbl.server.visibility import PollRequests, Visibility
from rbl.store.reader import Change, ListingReader

log = Logger(namespace="rbl")
POLICY_BACKLOG = 1024
T = TypeVar("T")
CHANGE_BATCH = 5000
UDP_RECEIVE_BUFFER = 4 * 1024 * 1024  # absorbs bursts while Python catches up


@dataclass
class LoadReport:
    listings: int
    seconds: float
    position: int


def build_zones(settings: Settings) -> dict[str, Zone]:
    return {z.name: Zone(z, ZoneIndex(z.kind)) for z in settings.zones}


def load_index(reader: ListingReader, follower: IndexFollower) -> LoadReport:
    """Read the change-log position, then every active listing, into the follower's zones."""
    started = time.monotonic()
    follower.traps = reader.trap_filter()  # TXT texts are public: traps redacted
    positions = reader.change_positions()
    position = max(positions.values(), default=0)
    zones = list(follower.zones)
    count = follower.load_snapshot(
        reader.iter_ip_rows(zones),
        reader.iter_domain_rows(zones),
        positions,
        position,
        reader.iter_allowlist(),
    )
    return LoadReport(count, time.monotonic() - started, position)


def ensure_schema(reader: ListingReader, url: str) -> None:
    """Create the tables on first start; SQLAlchemy is imported only in that case."""
    if reader.has_schema():
        return
    from rbl.store.database import open_engine

    open_engine(url).dispose()


class DatabaseService(Service):
    """Owns the reader and the thread pool that every blocking database call runs in."""

    def __init__(self, reader: ListingReader, reactor: Any) -> None:
        self.reader = reader
        self.reactor = reactor
        self.pool = ThreadPool(minthreads=1, maxthreads=2, name="rbl-db")

    def startService(self) -> None:
        super().startService()
        self.pool.start()

    def stopService(self) -> defer.Deferred[None] | None:
        super().stopService()
        self.pool.stop()
        self.reader.close()
        return None

    def run(self, function: Callable[..., T], *args: Any) -> defer.Deferred[T]:
        return threads.deferToThreadPool(self.reactor, self.pool, function, *args)


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
                if self.follower.on_serial is not None:
                    self.follower.on_serial(zone)
            self.follower.position = report.position
            log.info(
                "snapshot reloaded: {count} listings at position {position}",
                count=report.listings,
                position=report.position,
            )

        return d.addCallback(swap)

    def _failed(self, failure: Any) -> None:
        # Keep serving the index we have; say so once, not every poll.
        if not self._failing:
            self._failing = True
            log.failure(
                "cannot read the change log; DNS keeps answering from memory", failure=failure
            )


class DnsServerService(Service):
    """Binds UDP and TCP on each endpoint, the same port number for both.

    One rate limiter and one TCP factory serve every endpoint, so the limits
    are per process; a reload applies new settings with
    ``limiter.configure(...)`` and ``tcp_factory.configure(...)``.
    """

    def __init__(
        self,
        listen: Sequence[tuple[str, int]],
        responder: Responder,
        reactor: Any,
        *,
        reuse_port: bool = False,
        transfers: Transfers | None = None,
        rate_limit: RateLimitSettings | None = None,
        tcp: TcpSettings | None = None,
        processes: int = 1,
    ) -> None:
        self.listen = listen
        self.reuse_port = reuse_port  # share the port with other worker processes
        self.transfers = transfers  # AXFR/IXFR over TCP for the allowed secondaries
        self.responder = responder
        self.reactor = reactor
        self.counters = Counters()
        self.limiter = ResponseRateLimiter(rate_limit or RateLimitSettings(), processes=processes)
        self.tcp_factory = DnsStreamFactory(responder, self.counters, transfers, tcp)
        self.ports: list[IListeningPort] = []
        self.bound: list[tuple[str, int]] = []

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        for host, port in self.listen:
            self._bind(host, port)

    def _bind(self, host: str, port: int) -> None:
        tcp_factory = self.tcp_factory
        from rbl.dnsserver.reuseport import SharedUdpPort, listen_tcp

        for _attempt in range(20):
            port_class = SharedUdpPort if self.reuse_port else DnsUdpPort
            udp = port_class(
                port, self.responder, self.counters, host, self.reactor, limiter=self.limiter
            )
            udp.startListening()
            number = udp.getHost().port
            try:
                if self.reuse_port:
                    tcp: Any = listen_tcp(number, tcp_factory, host, self.reactor)
                else:
                    tcp = self.reactor.listenTCP(number, tcp_factory, interface=host, backlog=128)
            except CannotListenError:
                udp.stopListening()
                if port:
                    raise
                continue
            sock = getattr(udp, "socket", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECEIVE_BUFFER)
            self.ports += [udp, tcp]
            self.bound.append((host, number))
            return
        raise CannotListenError(host, port, "no port free for both UDP and TCP")

    def stopService(self) -> defer.Deferred[Any]:
        """Stop taking queries; answer the ones already queued or read, then close.

        UDP sockets are read once more before they close, so datagrams the
        kernel already queued get answers instead of vanishing with the socket;
        TCP connections close after their answers are written
        (``DnsStreamFactory.close_all``).
        """
        super().stopService()
        stopping = []
        for port in self.ports:
            if isinstance(port, DnsUdpPort) and port.connected:
                with contextlib.suppress(Exception):
                    port.doRead()
            stopping.append(defer.maybeDeferred(port.stopListening))
        self.ports = []
        closing = defer.DeferredList(stopping)
        closing.addCallback(lambda _: self.tcp_factory.close_all(self.reactor))
        closing.addCallback(self._stopped)
        return closing

    def _stopped(self, _: object) -> None:
        counters = self.counters
        log.info(
            "DNS stopped: {udp} UDP and {tcp} TCP queries received since start",
            udp=counters.udp_queries,
            tcp=counters.tcp_queries,
        )


class NotifyService(Service):
    """Sends NOTIFY from one ephemeral UDP port (IPv4) to the configured secondaries."""

    def __init__(self, sender: NotifySender, reactor: Any) -> None:
        self.sender = sender
        self.reactor = reactor
        self.port: Any = None

    def startService(self) -> None:
        super().startService()
        self.port = self.reactor.listenUDP(0, self.sender)

    def stopService(self) -> Any:
        super().stopService()
        self.sender.stop()
        if self.port is not None:
            return self.port.stopListening()
        return None


class WriterService(Service):
    """The store writes inside ``rbl serve``: the expiry sweep and the live trap feed.

    SQLAlchemy is imported here, lazily, so ``--dns-only`` processes never load it.
    """

    def __init__(
        self,
        settings: Settings,
        database: DatabaseService,
        reactor: Any,
        visibility: Visibility | None = None,
        listed: Callable[[str], bytes | None] | None = None,
    ) -> None:
        from rbl.feeds.recorder import HitRecorder
        from rbl.policy.listing import Rules
        from rbl.store.database import open_engine
        from rbl.store.faults import is_transient

        self.settings = settings
        self.database = database
        self.reactor = reactor
        self.listed = listed  # the policy feed's reject_listed answers, from the DNS index
        self.engine = open_engine(settings.database.url)
        self.rules = Rules.from_settings(settings.listing)
        self.ip_zone = settings.trap_ip_zone()
        self.domain_zone = settings.trap_domain_zone()
        self._load_traps()
        # Its own thread: a write waiting on a locked or unreachable store holds no
        # thread the change follower needs, and the queue can drain on stop before
        # the database pool stops.
        self.write_pool = ThreadPool(minthreads=1, maxthreads=1, name="rbl-policy-writer")
        self.recorder = HitRecorder(
            lambda batch: threads.deferToThreadPool(reactor, self.write_pool, self._write, batch),
            reactor,
            commit_timeout=settings.policy_feed.commit_timeout,
            is_transient=is_transient,
            quarantine=lambda hit, error: threads.deferToThreadPool(
                reactor, self.write_pool, self._quarantine, hit, error
            ),
            # A hit that lists its sender is answered once every DNS process shows it.
            visible=None if visibility is None else visibility.wait,
        )
        self.policy_port: Any = None
        self.policy_factory: Any = None
        self._loops: list[task.LoopingCall] = []

    def _load_traps(self) -> None:
        from rbl.model.traps import TrapMatcher
        from rbl.store.allowlist import load_allowlist
        from rbl.store.traps import active_traps

        with self.engine.connect() as conn:
            self.matcher = TrapMatcher(active_traps(conn))
            self.allow = load_allowlist(conn)

    def is_trap(self, recipient: str) -> bool:
        return self.matcher(recipient)

    def reconfigure(self, settings: Settings) -> None:
        """Listing rules and trap zones from a reload (rbl.server.reload), for the next batch."""
        from rbl.policy.listing import Rules

        self.settings = settings
        self.rules = Rules.from_settings(settings.listing)
        self.ip_zone = settings.trap_ip_zone()
        self.domain_zone = settings.trap_domain_zone()

    def _write(self, batch: list[Any]) -> list[int | None]:
        """Store a batch; for each hit, the change-log id its answer waits for (or None)."""
        from rbl.store.evidence import record_hits

        with self.engine.begin() as conn:
            result = record_hits(
                conn,
                batch,
                matcher=self.matcher,
                allow=self.allow,
                rules=self.rules,
                ip_zone=self.ip_zone,
                domain_zone=self.domain_zone,
                now=_utcnow(),
            )
        return [result.change_id if i in result.changed else None for i in range(len(batch))]

    def _quarantine(self, hit: Any, error: BaseException) -> None:
        """A hit the store refused for good, kept where ``rbl quarantine`` finds it."""
        from rbl.feeds.retry import describe_error
        from rbl.store.quarantine import policy_entry, quarantine_lines

        with self.engine.begin() as conn:
            entry = policy_entry(hit, f"the store refused it: {describe_error(error)}")
            quarantine_lines(conn, [entry], now=_utcnow())

    def _prune(self) -> int:
        from datetime import timedelta

        from rbl.store.changelog import prune_changes

        keep = timedelta(seconds=self.settings.sync.keep_changes)
        return prune_changes(self.engine, _utcnow() - keep)

    def _expire(self) -> int:
        from rbl.store.evidence import expire_listings

        with self.engine.begin() as conn:
            return len(expire_listings(conn, now=_utcnow()))

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        listen = self.settings.policy_feed.listen
        if listen is not None:
            from rbl.feeds.policyd import PolicyServerFactory

            feed = self.settings.policy_feed
            self.policy_factory = PolicyServerFactory(
                self.is_trap,
                self.recorder.submit,
                self.reactor,
                allow=feed.allow,
                max_connections=feed.max_connections,
                max_per_client=feed.max_per_client,
                idle_timeout=feed.idle_timeout,
                listed=self.listed,
                reject_listed=feed.reject_listed,
            )
            host, port = listen
            # A deep accept queue: refused connections are closed as fast as they come,
            # and a burst (smtpd processes starting) never waits for a SYN retry.
            self.policy_port = self.reactor.listenTCP(
                port, self.policy_factory, backlog=POLICY_BACKLOG, interface=host
            )
            warn_if_exposed(host, port, feed.allow)

    def startService(self) -> None:
        super().startService()
        self._every(self.settings.listing.expiry_interval, self._expire, "expiry sweep")
        self._every(TRAP_REFRESH_SECONDS, self._load_traps, "reloading traps")
        if self.settings.sync.keep_changes:
            self._every(PRUNE_INTERVAL, self._prune, "pruning the change log")
        if self.policy_factory is not None:
            self.write_pool.start()
            self.recorder.start()

    def _every(self, interval: float, job: Callable[[], object], what: str) -> None:
        def run() -> defer.Deferred[Any]:
            d = self.database.run(job)
            # A scheduled job logs its own failure and keeps its schedule.
            d.addErrback(lambda failure: log.failure("{what} failed", failure=failure, what=what))
            return d

        loop = task.LoopingCall(run)
        loop.clock = self.reactor
        loop.start(interval, now=True)
        self._loops.append(loop)

    def stopService(self) -> defer.Deferred[Any]:
        super().stopService()
        for loop in self._loops:
            if loop.running:
                loop.stop()
        stopping = []
        if self.policy_port is not None:
            stopping.append(defer.maybeDeferred(self.policy_port.stopListening))
        # Every waiting request is answered (written, or "try again" after
        # commit_timeout) and its answer sent before the writer thread goes.
        drained = self.recorder.stop()
        if self.policy_factory is not None:
            factory = self.policy_factory
            drained.addCallback(lambda _: factory.closeConnections(POLICY_CLOSE_SECONDS))
        if self.write_pool.started:
            drained.addBoth(lambda _: self.write_pool.stop())
        stopping.append(drained)
        return defer.DeferredList(stopping)


TRAP_REFRESH_SECONDS = 10.0
PRUNE_INTERVAL = 3600.0  # seconds between change-log prunes ([sync] keep_changes)
POLICY_CLOSE_SECONDS = 2.0  # on stop, for policy clients to receive their last answers


def _utcnow() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC)


@dataclass
class Server:
    """What ``make_service`` built, for the CLI and tests to inspect."""

    service: MultiService
    dns: DnsServerService
    follower: IndexFollower
    load: LoadReport
    writer: WriterService | None = None
    web: Any = None  # rbl.web.service.WebService when [web] listen is set
    dumps: Any = None  # rbl.dumps.service.DumpService when [dumps] directory is set
    supervisor: Any = None  # rbl.server.workers.WorkerSupervisor with --workers N
    metrics: Any = None  # rbl.metrics.service.MetricsService when [metrics] listen is set
    settings: Any = None  # rbl.config.Settings as started
    current: Any = None  # the settings last applied by a SIGHUP reload (rbl.server.reload)
    notify: Any = None  # rbl.dnsserver.notify.NotifySender when [transfer] notify is set
    visibility: Visibility | None = None  # what a trap hit's policy answer waits for


class OrderedServices(MultiService):
    """Starts its children in order and stops them in reverse, one after another.

    ``MultiService.stopService`` stops every child at once; a graceful stop
    needs each to finish first: the site's and the policy feed's pending
    database work must end before the database pool is joined (which would
    block the reactor meanwhile), and DNS keeps answering until the writers
    are done.
    """

    def stopService(self) -> defer.Deferred[None]:
        Service.stopService(self)
        stopping: defer.Deferred[None] = defer.succeed(None)
        for child in reversed(list(self)):
            stopping.addCallback(_stop_one, child)
        return stopping


def _stop_one(_: object, service: Any) -> defer.Deferred[None]:
    """Stop one service; a failure is logged, and the next service still stops."""
    if not service.running:
        return defer.succeed(None)
    stopping = defer.maybeDeferred(service.stopService)

    def failed(failure: Any) -> None:
        log.failure("stopping {service} failed", failure=failure, service=service)

    stopping.addCallbacks(lambda _: None, failed)
    return stopping


def make_service(
    settings: Settings,
    reactor: Any,
    *,
    dns_only: bool = False,
    reuse_port: bool = False,
    reuse_port_child: bool = False,
    report_fd: int | None = None,
    control_fd: int | None = None,
    processes: int = 1,
) -> Server:
    """Open the store, load the index and compose the services (ports bind on start).

    ``dns_only`` leaves out every writer (expiry sweep, live feeds): for extra DNS
    nodes following one database, and for measuring the DNS path alone. A
    ``--workers`` child gets ``report_fd``, the pipe its counters go to; the
    first process serves /metrics for all of them, and ``control_fd``, the pipe
    on which the first process asks it to read the change log now (a trap
    hit waits for its listing). ``processes`` is how many share the DNS ports
    (each rate-limits its share).
    """
    reader = ListingReader(settings.database.url)
    ensure_schema(reader, settings.database.url)
    follower = IndexFollower(build_zones(settings))
    report = load_index(reader, follower)
    for zone in settings.zones:  # a zone's own TXT goes out unfiltered: refuse to start
        for item in ("txt", "lookup_url"):
            follower.traps.check(getattr(zone, item), f"{settings.source}: zone {zone.name} {item}")
    responder = Responder(list(follower.zones.values()), settings.dns.udp_payload)
    top = OrderedServices()
    database = DatabaseService(reader, reactor)
    database.setServiceParent(top)
    changes = ChangeFollowerService(database, follower, settings.sync.poll_interval, reactor)
    changes.setServiceParent(top)
    transfers = None
    if settings.transfer.allow:
        from rbl.dnsserver.tsig import TsigKeys

        transfers = Transfers(
            responder.zones,
            TransferPolicy.from_strings(settings.transfer.allow),
            TsigKeys(settings.transfer.tsig) if settings.transfer.tsig else None,
        )
    dns = DnsServerService(
        settings.dns.listen,
        responder,
        reactor,
        reuse_port=reuse_port,
        transfers=transfers,
        rate_limit=settings.dns.rate_limit,
        tcp=settings.dns.tcp,
        processes=processes,
    )
    dns.setServiceParent(top)
    sender = None
    if settings.transfer.notify and not reuse_port_child:
        sender = NotifySender(settings.transfer.notify, reactor)
        follower.on_serial = sender.zone_changed
        NotifyService(sender, reactor).setServiceParent(top)
    writer = visibility = None
    if not dns_only:
        visibility = Visibility(reactor, changes)
        changes.on_applied = visibility.advanced
        trap_zone = follower.zones.get(settings.trap_ip_zone().name)
        writer = WriterService(
            settings,
            database,
            reactor,
            visibility,
            listed=None if trap_zone is None else ListedReplies(trap_zone),
        )
        writer.setServiceParent(top)
    web = None
    if writer is not None and settings.web.listen is not None:
        from rbl.store.website import SiteStore
        from rbl.web.service import WebService
        from rbl.web.site import make_site

        # A per-process CSRF secret: a form left open across a restart gets a polite
        # "expired" page and a fresh token.
        site = make_site(
            settings, SiteStore(writer.engine), database.run, reactor, secrets.token_bytes(32)
        )
        if settings.dumps.directory is not None:
            from rbl.dumps.resource import mount_dumps

            site.resource = mount_dumps(site.resource, Path(settings.dumps.directory))
        web = WebService(settings.web.listen, site, reactor)
        web.setServiceParent(top)
    dumps = None
    if not dns_only and settings.dumps.directory is not None:
        from rbl.dumps.service import DumpService

        dumps = DumpService(
            settings,
            # Its own connection: a dump streams for seconds and must not hold the
            # DNS follower's reader.
            ListingReader(settings.database.url),
            Path(settings.dumps.directory),
            lambda fn, *args: threads.deferToThreadPool(
                reactor, reactor.getThreadPool(), fn, *args
            ),
            reactor,
            interval=settings.dumps.interval,
            gzip_level=settings.dumps.gzip_level,
        )
        dumps.setServiceParent(top)
    built = Server(
        top,
        dns,
        follower,
        report,
        writer,
        web,
        dumps,
        settings=settings,
        notify=sender,
        visibility=visibility,
    )
    if report_fd is not None:
        from rbl.metrics.collect import dns_snapshot
        from rbl.metrics.report import ReportWriter

        reports = ReportWriter(
            report_fd,
            lambda: dns_snapshot(dns, follower.zones, follower.position),
            reactor,
        )
        reports.setServiceParent(top)
        if control_fd is not None:
            # Asked to read now: read, then say how far this process's index got.
            def poll() -> None:
                changes.poll().addCallback(lambda _: reports.applied(follower.position))

            PollRequests(control_fd, poll, reactor).setServiceParent(top)
    elif settings.metrics.listen is not None:
        from rbl.metrics.service import MetricsCollector, MetricsService

        collector = MetricsCollector(
            built,
            ListingReader(settings.database.url),
            lambda fn, *args: threads.deferToThreadPool(
                reactor, reactor.getThreadPool(), fn, *args
            ),
            reactor,
            None if settings.dumps.directory is None else Path(settings.dumps.directory),
        )
        built.metrics = MetricsService(settings.metrics.listen, collector, reactor)
        built.metrics.setServiceParent(top)
    return built


def drop_privileges(user: str) -> None:
    """Become ``user`` after binding privileged ports (only when started as root)."""
    import grp
    import pwd

    if os.getuid() != 0:
        return
    entry = pwd.getpwnam(user)
    groups = [g.gr_gid for g in grp.getgrall() if user in g.gr_mem]
    os.setgroups(groups)
    os.setgid(entry.pw_gid)
    os.setuid(entry.pw_uid)


def warn_if_exposed(host: str, port: int, allow: tuple[str, ...]) -> None:
    """Warn when the policy feed listens beyond loopback: whoever may connect can have any
    address listed, so ``allow`` must name exactly the Postfix hosts."""
    import ipaddress

    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass  # a host name: it may resolve to anything
    log.warn(
        "policy feed listens on {host} port {port}, beyond loopback: anyone who can "
        "connect can have any address listed. Only [feeds.policy] allow = {allow} is "
        "served; set allow to exactly your Postfix hosts",
        host=host,
        port=port,
        allow=list(allow),
    )


def write_ready_file(path: Path, server: Server) -> None:
    """Tell a supervisor or a test where we listen, atomically."""
    payload: dict[str, Any] = {
        "pid": os.getpid(),
        "dns": [{"host": host, "port": port} for host, port in server.dns.bound],
        "listings": server.load.listings,
        "load_seconds": round(server.load.seconds, 3),
        "position": server.load.position,
    }
    if server.writer is not None and server.writer.policy_port is not None:
        address = server.writer.policy_port.getHost()
        payload["policy"] = {"host": address.host, "port": address.port}
    if server.supervisor is not None:
        payload["workers"] = server.supervisor.pids()
    if server.metrics is not None and server.metrics.port is not None:
        host, port = server.metrics.bound
        payload["metrics"] = {"host": host, "port": port}
    if server.web is not None and server.web.port is not None:
        host, port = server.web.bound
        payload["web"] = {"host": host, "port": port}
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(payload) + "\n")
    os.replace(temporary, path)
