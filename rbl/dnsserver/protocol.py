"""Twisted protocols: UDP datagrams and length-prefixed TCP (RFC 1035 4.2.2, RFC 7766).

A bad packet never takes the server down: the responder already turns
anything unparseable into FORMERR or silence, and anything it still raises is
counted and dropped here. No per-packet logging.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import udp
from twisted.internet.protocol import DatagramProtocol, Factory
from twisted.protocols.basic import Int16StringReceiver
from twisted.protocols.policies import TimeoutMixin

from rbl.dnsserver import slowpath
from rbl.dnsserver.responder import Responder
from rbl.dnsserver.transfer import Transfers, is_transfer

UDP_READ_BATCH = 2000  # packets per readiness event before other sockets and timers get a turn
TCP_IDLE_TIMEOUT = 10.0  # seconds; RFC 7766 6.2.3 asks servers to reclaim idle connections


class Counters:
    """Packet counters shared by the protocols (read by metrics, cheap to bump)."""

    __slots__ = ("dropped", "errors", "tcp_queries", "udp_queries")

    def __init__(self) -> None:
        self.udp_queries = 0
        self.tcp_queries = 0
        self.errors = 0
        self.dropped = 0


class DnsDatagramProtocol(DatagramProtocol):
    noisy = False

    def __init__(self, responder: Responder, counters: Counters) -> None:
        self.responder = responder
        self.counters = counters

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.counters.udp_queries += 1
        try:
            reply = self.responder.respond(datagram, True)
            if reply is not None:
                self.transport.write(reply, addr)  # type: ignore[union-attr]
        except Exception:  # a send error or a bug: drop this packet, keep serving
            self.counters.errors += 1


class DnsUdpPort(udp.Port):
    """A UDP port whose read loop answers queries itself.

    ``udp.Port.doRead`` dispatches every datagram through ``datagramReceived``
    and ``write``, which re-validates the peer address on each send; at tens
    of thousands of packets a second that is a third of the CPU. This loop
    binds the socket methods once, answers from the responder and sends with
    ``sendto`` directly. The protocol object is still attached, so the port
    starts, stops and logs like any Twisted port.
    """

    def __init__(
        self,
        port: int,
        responder: Responder,
        counters: Counters,
        interface: str,
        reactor: Any,
    ) -> None:
        super().__init__(
            port,
            DnsDatagramProtocol(responder, counters),
            interface=interface,
            maxPacketSize=65535,
            reactor=reactor,
        )
        self.responder = responder
        self.counters = counters

    def doRead(self) -> None:
        sock = self.socket
        recvfrom = sock.recvfrom
        sendto = sock.sendto
        fast = self.responder.fast
        responder = self.responder
        slow = slowpath.respond  # the fast path already declined: don't run it twice
        received = errors = 0
        try:
            for _ in range(UDP_READ_BATCH):
                try:
                    data, addr = recvfrom(65535)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:  # ICMP errors from earlier sends surface here
                    errors += 1
                    continue
                received += 1
                try:
                    reply = fast(data, True)
                except Exception:
                    reply = None
                try:
                    if reply is None:
                        reply = slow(responder, data, True)
                        if reply is None:
                            continue
                    sendto(reply, addr)
                except Exception:  # a full socket buffer or a bug: drop, keep serving
                    errors += 1
        finally:
            self.counters.udp_queries += received
            self.counters.errors += errors


class DnsStreamProtocol(Int16StringReceiver, TimeoutMixin):
    MAX_LENGTH = 65535

    def __init__(
        self, responder: Responder, counters: Counters, transfers: Transfers | None = None
    ) -> None:
        self.responder = responder
        self.counters = counters
        self.transfers = transfers

    def connectionMade(self) -> None:
        self.setTimeout(TCP_IDLE_TIMEOUT)

    def stringReceived(self, string: bytes) -> None:
        self.resetTimeout()
        self.counters.tcp_queries += 1
        if self.transfers is not None and is_transfer(string):
            self._transfer(string)
            return
        try:
            reply = self.responder.respond(string, False)
        except Exception:
            self.counters.errors += 1
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        if reply is not None:
            self.sendString(reply)

    def _transfer(self, string: bytes) -> None:
        """AXFR/IXFR (rbl.dnsserver.transfer): several messages, built at one serial."""
        assert self.transfers is not None
        try:
            peer = self.transport.getPeer()  # type: ignore[union-attr]
            messages = self.transfers.respond(string, str(getattr(peer, "host", "")))
        except Exception:
            self.counters.errors += 1
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        for message in messages:
            self.sendString(message)

    def timeoutConnection(self) -> None:
        self.transport.loseConnection()  # type: ignore[union-attr]


class DnsStreamFactory(Factory):
    noisy = False

    def __init__(
        self, responder: Responder, counters: Counters, transfers: Transfers | None = None
    ) -> None:
        self.responder = responder
        self.counters = counters
        self.transfers = transfers  # None: AXFR/IXFR over TCP are REFUSED by the slow path

    def buildProtocol(self, addr: Any) -> DnsStreamProtocol:
        protocol = DnsStreamProtocol(self.responder, self.counters, self.transfers)
        protocol.factory = self
        return protocol
