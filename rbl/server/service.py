"""The composition root of ``rbl serve``: each feature builds its service from the settings.

``make_service`` opens the store, loads the index (blocking, before the
reactor runs) and returns a ``Server``: one ``OrderedServices`` whose
children start in order and stop in reverse, each after the one before has
finished stopping, so the database pool starts first and stops last; and the
parts the CLI, a SIGHUP reload (``reconfigurable``, in the order they apply)
and the metrics read. The features: the DNS ports (rbl.server.dnsservice),
the change follower (rbl.server.changes), NOTIFY, the writer node
(rbl.server.writer, left out by ``--dns-only``) and how the counters leave
the process (rbl.server.reporting). Imports no SQLAlchemy.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from twisted.application.service import Service

from rbl.config import Settings
from rbl.config.reconfigure import Reconfigurable
from rbl.config.secondaries import notify_targets
from rbl.dnsserver.notify import NotifySender
from rbl.dnsserver.notifyport import udp_opener
from rbl.dnsserver.responder import Responder
from rbl.dnsserver.tsig import TsigKeys
from rbl.server.changes import ChangeFollowerService
from rbl.server.database import DatabaseService, ensure_schema
from rbl.server.dnsservice import DnsServerService, NotifyService, make_dns
from rbl.server.follower import (
    IndexFollower,
    LoadReport,
    build_zones,
    check_zone_texts,
    load_index,
)
from rbl.server.ordered import OrderedServices
from rbl.server.reporting import make_metrics, make_reports
from rbl.server.settingsmarks import SettingsRecorder
from rbl.server.visibility import Visibility
from rbl.store.reader import ListingReader

if TYPE_CHECKING:
    from rbl.dumps.service import DumpService
    from rbl.metrics.service import MetricsService
    from rbl.server.workers import WorkerSupervisor
    from rbl.server.writer import WriterService
    from rbl.web.service import WebService


@dataclass
class Server:
    """What ``make_service`` built, for the CLI, a reload and tests to inspect."""

    service: OrderedServices
    dns: DnsServerService
    follower: IndexFollower
    load: LoadReport
    settings: Settings  # as started: what a change that needs a restart is judged against
    writer: WriterService | None = None
    web: WebService | None = None  # when [web] listen is set
    dumps: DumpService | None = None  # when [dumps] directory is set
    supervisor: WorkerSupervisor | None = None  # with --workers N (set by rbl.cli.serve)
    metrics: MetricsService | None = None  # when [metrics] listen is set
    current: Settings | None = None  # the settings last applied by a SIGHUP reload
    notify: NotifySender | None = None  # when [transfer] notify is set
    visibility: Visibility | None = None  # what a trap hit's policy answer waits for
    reconfigurable: list[Reconfigurable] = field(default_factory=list)  # in reload order


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

    ``dns_only`` leaves out every writer (expiry sweep, live feeds, site, dumps): for
    extra DNS nodes following one database, and for measuring the DNS path alone. A
    ``--workers`` child gets ``report_fd``, the pipe its counters go to; the
    first process serves /metrics for all of them, and ``control_fd``, the pipe
    on which the first process asks it to read the change log now (a trap
    hit waits for its listing). ``processes`` is how many share the DNS ports
    (each rate-limits its share).
    """
    reader = ListingReader(settings.database.url)
    ensure_schema(reader, settings.database.url)
    follower = IndexFollower(build_zones(settings))
    load = load_index(reader, follower)
    check_zone_texts(follower.traps, settings.zones, f"{settings.source}: ")  # refuse to start
    responder = Responder(list(follower.zones.values()), settings.dns.udp_payload)
    database = DatabaseService(reader, reactor)
    changes = ChangeFollowerService(database, follower, settings.sync.poll_interval, reactor)
    dns = make_dns(settings, responder, reactor, reuse_port=reuse_port, processes=processes)
    built = Server(OrderedServices(), dns, follower, load, settings)
    _add(built, database, changes, dns)
    # On reload after dns (it records the zones dns has just reconfigured); at start after
    # the ports and NOTIFY (the rows it writes are NOTIFYd).
    recorder = SettingsRecorder(settings.database.url, follower, changes, reactor)
    built.reconfigurable += [dns, recorder]
    targets = notify_targets(settings.transfer)
    if targets and not reuse_port_child:  # workers leave NOTIFY to the first
        keys = TsigKeys.from_settings(settings.transfer).notify_keys(settings.transfer)
        built.notify = NotifySender(targets, reactor, udp_opener(reactor), keys=keys)
        follower.on_serial = built.notify.zone_changed
        notify = NotifyService(built.notify, follower.zones)
        _add(built, notify)
        built.reconfigurable.append(notify)
    _add(built, recorder)
    if not dns_only:
        from rbl.server.writer import make_writer_node  # loads SQLAlchemy

        node = make_writer_node(settings, database, changes, follower, reactor)
        built.writer, built.visibility = node.writer, node.visibility
        built.web, built.dumps = node.web, node.dumps
        _add(built, *node.services())
        built.reconfigurable += [s for s in (node.writer, node.dumps, node.web) if s is not None]
    if report_fd is not None:
        _add(built, *make_reports(report_fd, control_fd, dns, follower, changes, reactor))
    elif settings.metrics.listen is not None:
        built.metrics = make_metrics(settings, built, reactor)
        _add(built, built.metrics)
    return built


def _add(server: Server, *services: Service) -> None:
    for service in services:
        service.setServiceParent(server.service)
