# mypy: allow-untyped-calls
"""The DNS ports of ``rbl serve``: UDP and TCP on each endpoint, and NOTIFY to secondaries.

``make_dns`` builds the service from ``[dns]`` and ``[transfer]``; ports bind
in ``privilegedStartService`` (before privileges are dropped). A graceful stop
answers what was already read before closing. A reload reconfigures limits,
zones, the transfer ACL and NOTIFY targets in place (``reconfigure``); new
listen addresses wait for a restart. Imports no SQLAlchemy.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Mapping, Sequence
from typing import Any

from twisted.application.service import Service
from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.internet.interfaces import IListeningPort
from twisted.logger import Logger

from rbl.config import RateLimitSettings, Settings, TcpSettings
from rbl.config.reconfigure import ReloadReport
from rbl.config.secondaries import notify_targets, transfer_networks
from rbl.dnsserver import hotpath
from rbl.dnsserver.notify import NotifySender
from rbl.dnsserver.protocol import Counters, DnsStreamFactory, DnsUdpPort
from rbl.dnsserver.ratelimit import ResponseRateLimiter
from rbl.dnsserver.responder import Responder
from rbl.dnsserver.transfer import TransferPolicy, Transfers
from rbl.dnsserver.tsig import TsigKeys
from rbl.dnsserver.zone import Zone
from rbl.model.keys import ZoneKind

log = Logger(namespace="rbl")
UDP_RECEIVE_BUFFER = 4 * 1024 * 1024  # absorbs bursts while Python catches up


def make_dns(
    settings: Settings,
    responder: Responder,
    reactor: Any,
    *,
    reuse_port: bool = False,
    processes: int = 1,
) -> DnsServerService:
    """The DNS ports for ``[dns]``, serving AXFR/IXFR when ``[transfer] allow`` names clients."""
    transfers = None
    keys = responder.tsig = TsigKeys.from_settings(settings.transfer)  # signed queries too
    networks = transfer_networks(settings.transfer)
    if networks:
        transfers = Transfers(responder.zones, TransferPolicy.from_strings(networks), keys)
    return DnsServerService(
        settings.dns.listen,
        responder,
        reactor,
        reuse_port=reuse_port,
        transfers=transfers,
        rate_limit=settings.dns.rate_limit,
        tcp=settings.dns.tcp,
        processes=processes,
    )


class DnsServerService(Service):
    """Binds UDP and TCP on each endpoint, the same port number for both.

    One rate limiter and one TCP factory serve every endpoint, so the limits
    are per process; a reload applies new settings to them, to the served
    zones and to the transfer ACL (``reconfigure``).
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
        self.transfer_stats = self.tcp_factory.transfer_stats  # read by /metrics
        self.ports: list[IListeningPort] = []
        self.bound: list[tuple[str, int]] = []

    def reconfigure(self, old: Settings, new: Settings, report: ReloadReport) -> None:
        """Rate and TCP limits, the served zones' settings and the transfer ACL."""
        if old.dns.rate_limit != new.dns.rate_limit:
            self.limiter.configure(new.dns.rate_limit)
            report.applied.append("[dns.rate_limit]")
        if old.dns.tcp != new.dns.tcp:
            self.tcp_factory.configure(new.dns.tcp)
            report.applied.append("[dns.tcp]")
        self._zones(new, report)
        if old.transfer != new.transfer:
            self._transfer(new)
            report.applied.append("[transfer]")

    def _zones(self, new: Settings, report: ReloadReport) -> None:
        """Reconfigure each served zone the file still has; anything else waits for a restart."""
        running = {zone.name: zone for zone in self.responder.zones}
        served = {name: zone.is_ip for name, zone in running.items()}
        wanted = {zone.name: zone.kind is ZoneKind.IP for zone in new.zones}
        if served != wanted:
            report.needs_restart.append("the set of [[zones]] (names or kinds)")
        changed = False
        for settings in new.zones:
            zone = running.get(settings.name)
            same_kind = zone is not None and served[settings.name] == wanted[settings.name]
            if zone is not None and same_kind and zone.settings != settings:
                zone.reconfigure(settings)
                changed = True
        if changed:
            report.applied.append("[[zones]]")

    def _transfer(self, new: Settings) -> None:
        """The same Transfers object keeps serving, with the new ACL and keys."""
        for zone in self.responder.zones:  # IXFR history size: shrinking forgets the oldest
            zone.history.resize(new.transfer.ixfr_history)
        tsig = TsigKeys.from_settings(new.transfer)
        old = self.responder.tsig
        if old is not None:  # counters are per process, not per configuration
            tsig.verified, tsig.errors = old.verified, old.errors
        self.responder.tsig = tsig
        networks = transfer_networks(new.transfer)
        if not networks:
            self.transfers = self.tcp_factory.transfers = None
            return
        policy = TransferPolicy.from_strings(networks)
        if self.transfers is None:
            self.transfers = Transfers(self.responder.zones, policy, tsig)
            self.tcp_factory.transfers = self.transfers
        else:
            self.transfers.policy, self.transfers.tsig = policy, tsig

    def privilegedStartService(self) -> None:
        super().privilegedStartService()
        log.info("DNS over UDP: {status}", status=hotpath.status())
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
    """NOTIFY to the configured secondaries, each from a UDP socket of its address family."""

    def __init__(self, sender: NotifySender, zones: Mapping[str, Zone] | None = None) -> None:
        self.sender = sender
        self.zones = zones or {}

    def startService(self) -> None:
        """Open the channels; once the reactor runs (every service started, the settings
        rows applied), NOTIFY each zone at the serial it starts with."""
        super().startService()
        self.sender.start()
        if self.zones:
            self.sender.clock.callLater(0, self.sender.announce, list(self.zones.values()))

    def stopService(self) -> None:
        super().stopService()
        self.sender.stop()

    def reconfigure(self, old: Settings, new: Settings, report: ReloadReport) -> None:
        """New NOTIFY targets apply at once; turning NOTIFY on or off waits for a restart."""
        targets = notify_targets(new.transfer)
        if old.transfer != new.transfer and targets:
            keys = TsigKeys.from_settings(new.transfer).notify_keys(new.transfer)
            if (targets, keys) != (self.sender.targets, self.sender.keys):
                self.sender.set_targets(targets, keys)
                report.applied.append("[transfer] notify")
