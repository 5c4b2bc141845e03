"""Twisted protocols: UDP datagrams and length-prefixed TCP (RFC 1035 4.2.2, RFC 7766).

A bad packet never takes the server down: the responder already turns
anything unparseable into FORMERR or silence, and anything it still raises is
counted and dropped here. No per-packet logging.

Abuse limits live here too: UDP responses pass the per-prefix rate limiter
(rbl.dnsserver.ratelimit); TCP connections are capped in total and per
client address, closed when idle, and a client that sends queries without
reading the answers stops being read once its write buffer is full (the
protocol is the transport's streaming producer), so it cannot grow memory.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from twisted.internet import defer, interfaces, task, udp
from twisted.internet.protocol import DatagramProtocol, Factory
from twisted.protocols.basic import Int16StringReceiver
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure
from zope.interface import implementer

from rbl.config import TcpSettings
from rbl.dnsserver import hotpath, slowpath
from rbl.dnsserver.hotpath import HotPath
from rbl.dnsserver.ratelimit import SLIP, ResponseRateLimiter, slip_reply
from rbl.dnsserver.responder import Responder
from rbl.dnsserver.transfer import Transfers, is_transfer
from rbl.dnsserver.xfrlog import ABORTED, COMPLETE, FAILED, TransferStats, TransferWatch

UDP_READ_BATCH = 2000  # packets per readiness event before other sockets and timers get a turn
CLOSE_GRACE = 5.0  # seconds a stopping server gives TCP clients to take their answers
FINISH_QUIET = 0.25  # seconds without a query after which a stopping server closes
MAX_WAITING = 16  # queries a client may send while its zone transfer is being sent


class Counters:
    """Packet counters shared by the protocols (read by metrics, cheap to bump)."""

    __slots__ = (
        "dropped",
        "errors",
        "rate_limited",
        "slipped",
        "tcp_queries",
        "tcp_refused",
        "tcp_timeouts",
        "udp_queries",
    )

    def __init__(self) -> None:
        self.udp_queries = 0
        self.tcp_queries = 0
        self.errors = 0
        self.dropped = 0
        self.rate_limited = 0  # UDP queries dropped by the rate limiter
        self.slipped = 0  # UDP queries answered with an empty TC=1 reply instead
        self.tcp_refused = 0  # connections closed at once: over max_connections/max_per_client
        self.tcp_timeouts = 0  # connections closed after idle_timeout


class DnsDatagramProtocol(DatagramProtocol):
    noisy = False

    def __init__(self, responder: Responder, counters: Counters) -> None:
        self.responder = responder
        self.counters = counters

    def datagramReceived(self, datagram: bytes, addr: Any) -> None:
        self.counters.udp_queries += 1
        try:
            reply = self.responder.respond(datagram, True, addr[0])
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
        limiter: ResponseRateLimiter | None = None,
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
        self.limiter = limiter  # shared by the ports of one process; None: no rate limiting
        # The compiled loop (rbl.dnsserver.hotpath), unless not built or forced off.
        self.hotpath = HotPath(responder) if hotpath.unavailable() is None else None

    def doRead(self) -> None:
        if self.hotpath is not None:
            self.hotpath.read(self.socket.fileno(), UDP_READ_BATCH, self.limiter, self.counters)
            return
        sock = self.socket
        recvfrom = sock.recvfrom
        sendto = sock.sendto
        fast = self.responder.fast
        responder = self.responder
        slow = slowpath.respond  # the fast path already declined: don't run it twice
        received = errors = limited = slipped = 0
        limiter = self.limiter
        check = None
        if limiter is not None and limiter.enabled:
            limiter.tick()  # one clock read per batch
            check = limiter.check
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
                if check is not None:
                    try:
                        verdict = check(addr[0])
                    except Exception:  # an address the limiter cannot parse: answer it
                        verdict = 0
                        errors += 1
                    if verdict:
                        reply = slip_reply(data) if verdict == SLIP else None
                        if reply is None:
                            limited += 1
                            continue
                        try:
                            sendto(reply, addr)
                            slipped += 1
                        except Exception:
                            errors += 1
                        continue
                try:
                    reply = fast(data, True)
                except Exception:
                    reply = None
                try:
                    if reply is None:
                        reply = slow(responder, data, True, addr[0])
                        if reply is None:
                            continue
                    sendto(reply, addr)
                except Exception:  # a full socket buffer or a bug: drop, keep serving
                    errors += 1
        finally:
            counters = self.counters
            counters.udp_queries += received
            counters.errors += errors
            if limited or slipped:
                counters.rate_limited += limited
                counters.slipped += slipped


@implementer(interfaces.IPushProducer)
class DnsStreamProtocol(Int16StringReceiver, TimeoutMixin):
    """One TCP connection; also the transport's streaming producer.

    The transport pauses its producer when its write buffer passes its
    high-water mark (64 KiB) and resumes it once drained. Pausing stops
    reading (``_PauseableMixin``, which ``Int16StringReceiver`` inherits, also
    stops parsing the queries already read), so a client that pipelines
    queries and never reads costs at most one read's worth of answers.
    """

    MAX_LENGTH = 65535

    def __init__(
        self,
        responder: Responder,
        counters: Counters,
        transfers: Transfers | None = None,
        idle_timeout: float = 10.0,  # RFC 7766 6.2.3; the factory passes [dns.tcp] idle_timeout
        client: str = "",
    ) -> None:
        self.responder = responder
        self.counters = counters
        self.transfers = transfers
        self.idle_timeout = idle_timeout
        self.client = client  # the address the factory counts this connection under
        self._pending_mark = -1  # answer bytes queued at the last idle check; -1: none since
        self.finishing = False  # the server is stopping (see finish)
        self._sending: task.CooperativeTask[Iterator[None]] | None = None  # a transfer going out
        self._sending_paused = False
        self._waiting: list[bytes] = []  # queries that came during it
        self._watch: TransferWatch | None = None  # what it sent, logged at its end (xfrlog)

    def connectionMade(self) -> None:
        self.transport.registerProducer(self, True)  # type: ignore[union-attr]
        self.setTimeout(self.idle_timeout)
        factory = getattr(self, "factory", None)
        if isinstance(factory, DnsStreamFactory):
            factory.connections.add(self)

    def connectionLost(self, reason: Any = None) -> None:
        self.setTimeout(None)
        if self._sending is not None:
            self._sending.stop()
        factory = getattr(self, "factory", None)
        if isinstance(factory, DnsStreamFactory):
            factory.connections.discard(self)
            factory.release(self.client)

    def stringReceived(self, string: bytes) -> None:
        self.resetTimeout()
        self._pending_mark = -1
        if self._sending is not None:  # answers must not land inside a transfer's messages
            if len(self._waiting) >= MAX_WAITING:
                self.transport.loseConnection()  # type: ignore[union-attr]
            else:
                self._waiting.append(string)
            return
        self.counters.tcp_queries += 1
        if self.transfers is not None and is_transfer(string):
            self._transfer(string)
            return
        try:
            reply = self.responder.respond(string, False, self.client)
        except Exception:
            self.counters.errors += 1
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        if reply is not None:
            self.sendString(reply)

    def _transfer(self, string: bytes) -> None:
        """AXFR/IXFR (rbl.dnsserver.transfer): many messages, from one view of the zone.

        The messages are built and sent cooperatively (``task.cooperate``: about
        10 ms of work, then the reactor answers other queries), and not at all
        while the connection's write buffer is full, so a big transfer neither
        stalls DNS nor piles up in memory. Queries arriving on this connection
        meanwhile wait for the transfer's end (at most ``MAX_WAITING``).
        """
        assert self.transfers is not None
        factory = getattr(self, "factory", None)
        own = factory if isinstance(factory, DnsStreamFactory) else None
        peer = self.transport.getPeer()  # type: ignore[union-attr]
        host = str(getattr(peer, "host", ""))
        if own is not None:
            watch = TransferWatch(own.transfer_stats, string, host, own.transfer_clock)
        else:
            watch = TransferWatch(TransferStats(), string, host)
        self._watch = watch
        try:
            messages = watch.measure(self.transfers.stream(string, host, watch.fell_back))
        except Exception:
            watch.finish(FAILED)
            self.counters.errors += 1
            self.transport.loseConnection()  # type: ignore[union-attr]
            return
        cooperate = own.cooperate if own is not None else task.cooperate
        sending = self._sending = cooperate(self._send_each(messages))
        self._sending_paused = False
        if self.paused:
            sending.pause()
            self._sending_paused = True
        sending.whenDone().addCallbacks(self._transfer_sent, self._transfer_failed)

    def _send_each(self, messages: Iterator[bytes]) -> Iterator[None]:
        for message in messages:
            self.sendString(message)
            yield None

    def _transfer_sent(self, _: object) -> None:
        self._sending = None
        self._transfer_done(COMPLETE)
        waiting, self._waiting = self._waiting, []
        for string in waiting:
            if self._sending is not None:  # a queued query was another transfer
                self._waiting.append(string)
            else:
                self.stringReceived(string)

    def _transfer_failed(self, failure: Failure) -> None:
        self._sending = None
        if failure.check(task.TaskStopped):
            self._transfer_done(ABORTED)
            return  # the connection went away
        self._transfer_done(FAILED)
        self.counters.errors += 1
        if self.transport is not None:
            self.transport.loseConnection()

    def _transfer_done(self, outcome: str) -> None:
        watch, self._watch = self._watch, None
        if watch is not None:
            watch.finish(outcome)

    def pauseProducing(self) -> None:
        """The write buffer is full: stop reading queries, and stop building a transfer."""
        super().pauseProducing()
        if self._sending is not None and not self._sending_paused:
            self._sending.pause()
            self._sending_paused = True

    def resumeProducing(self) -> None:
        if self._sending is not None and self._sending_paused:
            self._sending.resume()
            self._sending_paused = False
        super().resumeProducing()

    def finish(self) -> None:
        """Graceful stop: answer until the client is quiet for ``FINISH_QUIET`` s, then close."""
        self.finishing = True
        self.setTimeout(FINISH_QUIET)

    def timeoutConnection(self) -> None:
        if self._sending is not None and not self.paused:  # a transfer still on its way
            self.setTimeout(FINISH_QUIET if self.finishing else self.idle_timeout)
            return
        if self.finishing:
            if self.paused:  # answers wait for the client to read them: give it time
                self.setTimeout(FINISH_QUIET)
            else:
                self.transport.loseConnection()  # type: ignore[union-attr]
            return
        if self._draining():  # the client is still taking its answers (a long AXFR): not idle
            self.setTimeout(self.idle_timeout)
            return
        self.counters.tcp_timeouts += 1
        if self.paused:  # answers are stuck in a full buffer: don't wait for them to drain
            self.transport.abortConnection()  # type: ignore[union-attr]
        else:
            self.transport.loseConnection()  # type: ignore[union-attr]

    def _draining(self) -> bool:
        """Whether answer bytes left the buffer since the last idle check.

        Reads the write buffer of Twisted's socket transports
        (``abstract.FileDescriptor``); other transports count as drained.
        """
        transport = self.transport
        pending = (
            len(getattr(transport, "dataBuffer", b""))
            - getattr(transport, "offset", 0)
            + getattr(transport, "_tempDataLen", 0)
        )
        mark, self._pending_mark = self._pending_mark, pending
        return pending > 0 and (mark < 0 or pending < mark)


class DnsStreamFactory(Factory):
    """Builds TCP protocols within the connection limits; ``configure`` replaces them."""

    noisy = False

    def __init__(
        self,
        responder: Responder,
        counters: Counters,
        transfers: Transfers | None = None,
        settings: TcpSettings | None = None,
    ) -> None:
        self.responder = responder
        self.counters = counters
        self.transfers = transfers  # None: AXFR/IXFR over TCP are REFUSED by the slow path
        self.settings = settings or TcpSettings()
        self.open = 0
        self.per_client: dict[str, int] = {}
        self.connections: set[DnsStreamProtocol] = set()  # open ones, for a graceful stop
        # Runs zone transfers a step at a time (tests substitute their own cooperator).
        self.cooperate: Callable[[Iterator[None]], task.CooperativeTask[Iterator[None]]] = (
            task.cooperate
        )
        self.transfer_stats = TransferStats()  # every transfer served, for /metrics
        self.transfer_clock: Callable[[], float] = time.monotonic  # times each transfer
        self._closing: defer.Deferred[None] | None = None  # fires when the last one has gone

    def configure(self, settings: TcpSettings) -> None:
        """New limits (SIGHUP reload): open connections stay, new ones are checked."""
        self.settings = settings

    def buildProtocol(self, addr: Any) -> DnsStreamProtocol | None:
        """A protocol, or None over a limit (Twisted then closes the socket at once)."""
        client = str(getattr(addr, "host", ""))
        settings = self.settings
        count = self.per_client.get(client, 0)
        if self.open >= settings.max_connections or count >= settings.max_per_client:
            self.counters.tcp_refused += 1
            return None
        self.open += 1
        self.per_client[client] = count + 1
        protocol = DnsStreamProtocol(
            self.responder, self.counters, self.transfers, settings.idle_timeout, client
        )
        protocol.factory = self
        return protocol

    def close_all(self, clock: Any, grace: float = CLOSE_GRACE) -> defer.Deferred[None]:
        """Let every connection finish (``DnsStreamProtocol.finish``); abort the rest later.

        Closing at once would drop answers still buffered, and closing a socket
        with unread queries makes the kernel send a reset, which can destroy
        answers the client has not read yet. So connections keep being read and
        answered until each client is quiet, then close with a FIN.
        """
        connections = list(self.connections)
        if not connections:
            return defer.succeed(None)
        closing = self._closing = defer.Deferred()
        timer = clock.callLater(grace, self._abort_all)

        def stop_timer(result: object) -> object:
            if timer.active():
                timer.cancel()
            return result

        closing.addBoth(stop_timer)
        for protocol in connections:
            protocol.finish()
        return closing

    def _abort_all(self) -> None:
        for protocol in list(self.connections):
            if protocol.transport is not None:
                protocol.transport.abortConnection()  # type: ignore[attr-defined]
        self._closed()

    def _closed(self) -> None:
        if self._closing is not None and not self.connections:
            closing, self._closing = self._closing, None
            closing.callback(None)

    def release(self, client: str) -> None:
        """A connection counted under ``client`` closed."""
        self.open -= 1
        count = self.per_client.pop(client, 0) - 1
        if count > 0:
            self.per_client[client] = count
        self._closed()
