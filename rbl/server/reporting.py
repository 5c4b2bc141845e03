"""How this process's counters leave it: ``/metrics``, or the pipe to the first process.

The first process of ``rbl serve`` serves ``/metrics`` (``[metrics] listen``)
for itself and every ``--workers`` child; a child instead writes its DNS
snapshot to ``--report-fd`` and, on ``--control-fd``, hears when to read the
change log at once (a trap hit's answer waits for its listing:
rbl.server.visibility). Imports no SQLAlchemy, and twisted.web (with
rbl.metrics.service) only when ``/metrics`` is served: it costs a DNS process
4-5 MB of modules otherwise.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service

from rbl.config import Settings
from rbl.metrics.collect import dns_snapshot
from rbl.metrics.report import ReportWriter
from rbl.server.changes import ChangeFollowerService
from rbl.server.database import in_reactor_pool
from rbl.server.dnsservice import DnsServerService
from rbl.server.follower import IndexFollower
from rbl.server.visibility import PollRequests
from rbl.store.reader import ListingReader

if TYPE_CHECKING:
    from rbl.metrics.service import MetricsService, Observed


def make_metrics(settings: Settings, server: Observed, reactor: Any) -> MetricsService:
    """``/metrics`` on ``[metrics] listen``, reading the store on its own connection."""
    from rbl.metrics.service import MetricsCollector, MetricsService

    assert settings.metrics.listen is not None
    directory = settings.dumps.directory
    collector = MetricsCollector(
        server,
        ListingReader(settings.database.url),
        in_reactor_pool(reactor),
        reactor,
        None if directory is None else Path(directory),
    )
    return MetricsService(settings.metrics.listen, collector, reactor)


def make_reports(
    report_fd: int,
    control_fd: int | None,
    dns: DnsServerService,
    follower: IndexFollower,
    changes: ChangeFollowerService,
    reactor: Any,
) -> list[Service]:
    """A ``--workers`` child's side: its counters to the parent, the parent's polls to it."""
    reports = ReportWriter(
        report_fd, lambda: dns_snapshot(dns, follower.zones, follower.position), reactor
    )
    if control_fd is None:
        return [reports]

    def poll() -> None:
        # Asked to read now: read, then say how far this process's index got.
        changes.poll().addCallback(lambda _: reports.applied(follower.position))

    return [reports, PollRequests(control_fd, poll, reactor)]
