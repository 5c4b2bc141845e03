# mypy: allow-untyped-calls
"""The writer node of ``rbl serve``: what decides and writes, beside the DNS it feeds.

The live policy feed and its recorder, the expiry sweep, the change-log
prune, the trap list reload, the lookup site and the dump timer: everything
``--dns-only`` leaves out. ``make_writer_node`` builds them from the settings;
``rbl.server.service`` imports this module only when it composes a writer,
so DNS-only processes never load SQLAlchemy. Each scheduled job runs in the
database pool, logs its own failure and keeps its schedule.
"""

from __future__ import annotations

import ipaddress
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer, task, threads
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.python.threadpool import ThreadPool

from rbl.config import PolicyFeedSettings, Settings
from rbl.config.reconfigure import ReloadReport
from rbl.dumps.resource import mount_dumps
from rbl.dumps.service import DumpService
from rbl.feeds.listed import ListedReplies
from rbl.feeds.policyd import PolicyServerFactory
from rbl.feeds.recorder import HitRecorder
from rbl.feeds.retry import describe_error
from rbl.model.traphit import TrapHit
from rbl.model.traps import TrapMatcher
from rbl.policy.listing import Rules
from rbl.server.changes import ChangeFollowerService
from rbl.server.database import DatabaseService, in_reactor_pool
from rbl.server.follower import IndexFollower
from rbl.server.visibility import Visibility
from rbl.store.allowlist import load_allowlist
from rbl.store.changelog import prune_changes
from rbl.store.database import open_engine
from rbl.store.evidence import expire_listings, record_hits
from rbl.store.faults import is_transient
from rbl.store.quarantine import policy_entry, quarantine_lines
from rbl.store.reader import ListingReader
from rbl.store.traps import active_traps
from rbl.store.website import SiteStore
from rbl.web.service import WebService
from rbl.web.site import make_site

log = Logger(namespace="rbl")
POLICY_BACKLOG = 1024
TRAP_REFRESH_SECONDS = 10.0
PRUNE_INTERVAL = 3600.0  # seconds between change-log prunes ([sync] keep_changes)
POLICY_CLOSE_SECONDS = 2.0  # on stop, for policy clients to receive their last answers


@dataclass
class WriterNode:
    """The writer's services, in the order they start (and stop in reverse)."""

    writer: WriterService
    visibility: Visibility
    web: WebService | None
    dumps: DumpService | None

    def services(self) -> list[Service]:
        return [s for s in (self.writer, self.web, self.dumps) if s is not None]


def make_writer_node(
    settings: Settings,
    database: DatabaseService,
    changes: ChangeFollowerService,
    follower: IndexFollower,
    reactor: Any,
) -> WriterNode:
    """The writer, the site when ``[web] listen`` is set, the dumps when ``[dumps] directory``."""
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
    web = None if settings.web.listen is None else make_web(settings, writer, database, reactor)
    return WriterNode(writer, visibility, web, make_dumps(settings, reactor))


def make_web(
    settings: Settings, writer: WriterService, database: DatabaseService, reactor: Any
) -> WebService:
    """The lookup site on ``[web] listen``, with the dump files under it when there are any."""
    assert settings.web.listen is not None
    # A per-process CSRF secret: a form left open across a restart gets a polite
    # "expired" page and a fresh token.
    site = make_site(
        settings, SiteStore(writer.engine), database.run, reactor, secrets.token_bytes(32)
    )
    if settings.dumps.directory is not None:
        site.resource = mount_dumps(site.resource, Path(settings.dumps.directory))
    return WebService(settings.web.listen, site, reactor)


def make_dumps(settings: Settings, reactor: Any) -> DumpService | None:
    """The dump timer when ``[dumps] directory`` is set."""
    if settings.dumps.directory is None:
        return None
    return DumpService(
        settings,
        # Its own connection: a dump streams for seconds and must not hold the
        # DNS follower's reader.
        ListingReader(settings.database.url),
        Path(settings.dumps.directory),
        in_reactor_pool(reactor),
        reactor,
        interval=settings.dumps.interval,
        gzip_level=settings.dumps.gzip_level,
    )


class WriterService(Service):
    """The store writes inside ``rbl serve``: the expiry sweep and the live trap feed."""

    def __init__(
        self,
        settings: Settings,
        database: DatabaseService,
        reactor: Any,
        visibility: Visibility | None = None,
        listed: Callable[[str], bytes | None] | None = None,
    ) -> None:
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
        self.policy_port: IListeningPort | None = None
        self.policy_factory: PolicyServerFactory | None = None
        self._loops: list[task.LoopingCall] = []

    def _load_traps(self) -> None:
        with self.engine.connect() as conn:
            self.matcher = TrapMatcher(active_traps(conn))
            self.allow = load_allowlist(conn)

    def is_trap(self, recipient: str) -> bool:
        return self.matcher(recipient)

    def reconfigure(self, old: Settings, new: Settings, report: ReloadReport) -> None:
        """Listing rules and trap zones for the next batch; the policy feed's timeout and limits.

        Rules and trap zones follow ``[listing]`` and ``[[zones]]``; allow and the
        limits apply to the next policy connection.
        """
        if old.listing != new.listing or old.zones != new.zones:
            self.settings = new
            self.rules = Rules.from_settings(new.listing)
            self.ip_zone = new.trap_ip_zone()
            self.domain_zone = new.trap_domain_zone()
            if old.listing != new.listing:
                report.applied.append("[listing]")
        if old.policy_feed != new.policy_feed:
            self.recorder.commit_timeout = new.policy_feed.commit_timeout
            report.applied.append("[feeds.policy]")
            if self.policy_factory is not None:
                _limit(self.policy_factory, new.policy_feed)

    def _write(self, batch: list[TrapHit]) -> list[int | None]:
        """Store a batch; for each hit, the change-log id its answer waits for (or None)."""
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

    def _quarantine(self, hit: TrapHit, error: BaseException) -> None:
        """A hit the store refused for good, kept where ``rbl quarantine`` finds it."""
        with self.engine.begin() as conn:
            entry = policy_entry(hit, f"the store refused it: {describe_error(error)}")
            quarantine_lines(conn, [entry], now=_utcnow())

    def _prune(self) -> int:
        keep = timedelta(seconds=self.settings.sync.keep_changes)
        return prune_changes(self.engine, _utcnow() - keep)

    def _expire(self) -> int:
        with self.engine.begin() as conn:
            return len(expire_listings(conn, now=_utcnow()))

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        feed = self.settings.policy_feed
        if feed.listen is None:
            return
        factory = PolicyServerFactory(
            self.is_trap, self.recorder.submit, self.reactor, listed=self.listed
        )
        _limit(factory, feed)
        self.policy_factory = factory
        host, port = feed.listen
        # A deep accept queue: refused connections are closed as fast as they come,
        # and a burst (smtpd processes starting) never waits for a SYN retry.
        self.policy_port = self.reactor.listenTCP(
            port, factory, backlog=POLICY_BACKLOG, interface=host
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
        def run() -> defer.Deferred[object]:
            d = self.database.run(job)
            # A scheduled job logs its own failure and keeps its schedule.
            d.addErrback(self._job_failed, what)
            return d

        loop = task.LoopingCall(run)
        loop.clock = self.reactor
        loop.start(interval, now=True)
        self._loops.append(loop)

    def _job_failed(self, failure: Failure, what: str) -> None:
        log.failure("{what} failed", failure=failure, what=what)

    def stopService(self) -> defer.Deferred[Any]:
        super().stopService()
        for loop in self._loops:
            if loop.running:
                loop.stop()
        stopping: list[defer.Deferred[Any]] = []
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


def _limit(factory: PolicyServerFactory, feed: PolicyFeedSettings) -> None:
    """``[feeds.policy]`` allow and connection limits, and whether listed clients are rejected."""
    factory.configure(
        feed.allow, feed.max_connections, feed.max_per_client, feed.idle_timeout, feed.reject_listed
    )


def _utcnow() -> datetime:
    return datetime.now(UTC)


def warn_if_exposed(host: str, port: int, allow: Sequence[str]) -> None:
    """Warn when the policy feed listens beyond loopback: whoever may connect can have any
    address listed, so ``allow`` must name exactly the Postfix hosts."""
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
