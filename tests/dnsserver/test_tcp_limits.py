"""DNS over TCP under abuse: connection limits, idle timeout, write back-pressure.

A real ``rbl serve`` on loopback; clients are raw sockets bound to distinct
loopback addresses (127.0.0.0/8 is all local), so each is its own client.
"""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest
from twisted.internet.task import Clock

from rbl.config import TcpSettings
from rbl.dnsserver.protocol import Counters, DnsStreamProtocol
from rbl.errors import ConfigError
from tests.support.dns_zones import CONFIG, make_responder, make_settings
from tests.support.server import RunningServer, start_server, stop_server

LISTED_NAME = "2.0.0.127.bl.example.org."


def serve_with_tcp(config: Path, table: str) -> Iterator[RunningServer]:
    text = config.read_text()
    config.write_text(
        text.replace(
            'listen = ["127.0.0.1:0"]\n', f'listen = ["127.0.0.1:0"]\n\n[dns.tcp]\n{table}\n', 1
        )
    )
    server = start_server(config)
    try:
        yield server
    finally:
        stop_server(server)


def wait_for(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(0.05)


def connect(server: RunningServer, source: str) -> socket.socket:
    sock = socket.create_connection(
        (server.host, server.port), timeout=5, source_address=(source, 0)
    )
    return sock


def frame(name: str = LISTED_NAME, rdtype: str = "A", qid: int = 1) -> bytes:
    data = dns.message.make_query(name, rdtype, id=qid).to_wire()
    return struct.pack(">H", len(data)) + data


def read_answer(sock: socket.socket) -> dns.message.Message | None:
    """One framed answer, or None when the server closed the connection."""
    try:
        head = sock.recv(2, socket.MSG_WAITALL)
        if len(head) < 2:
            return None
        (size,) = struct.unpack(">H", head)
        return dns.message.from_wire(sock.recv(size, socket.MSG_WAITALL))
    except ConnectionResetError:
        return None


def answered(server: RunningServer, source: str) -> bool:
    """A new connection from ``source`` gets an answer (False: closed at once)."""
    try:
        with connect(server, source) as sock:
            sock.sendall(frame())
            reply = read_answer(sock)
    except (ConnectionResetError, BrokenPipeError):
        return False
    return reply is not None and reply.rcode() == dns.rcode.NOERROR


def closed_by_server(sock: socket.socket, timeout: float = 10.0) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


def vm_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


# -- settings ---------------------------------------------------------------------------


def test_tcp_settings_defaults_values_and_errors() -> None:
    assert make_settings().dns.tcp == TcpSettings(1000, 32, 10.0)
    given = make_settings(
        {**CONFIG, "dns": {"tcp": {"max_connections": 5, "max_per_client": 2, "idle_timeout": 1}}}
    )
    assert given.dns.tcp == TcpSettings(5, 2, 1.0)
    for table, message in [
        ({"max_connections": 0}, "max_connections 0 is outside 1..1000000"),
        ({"max_per_client": -3}, "max_per_client -3 is outside 1..1000000"),
        ({"idle_timeout": 0}, "idle_timeout 0 is outside 0.1..3600 seconds"),
        ({"idle_timeout": "10s"}, "idle_timeout must be a number, not '10s'"),
        ({"keepalive": 1}, "unknown setting(s) keepalive"),
    ]:
        with pytest.raises(ConfigError) as caught:
            make_settings({**CONFIG, "dns": {"tcp": table}})
        assert "[dns.tcp]" in str(caught.value) and message in str(caught.value)


# -- connection limits ------------------------------------------------------------------


@pytest.fixture
def small_limits(config_path: Path) -> Iterator[RunningServer]:
    yield from serve_with_tcp(config_path, "max_connections = 4\nmax_per_client = 2")


@pytest.mark.slow
def test_the_connection_over_the_per_client_limit_is_closed_at_once(
    small_limits: RunningServer,
) -> None:
    server = small_limits
    first, second = connect(server, "127.0.0.2"), connect(server, "127.0.0.2")
    try:
        for sock in (first, second):
            sock.sendall(frame())
            assert read_answer(sock) is not None
        assert not answered(server, "127.0.0.2")  # the third from this address
        assert answered(server, "127.0.0.3")  # another client is not affected
        # Once one closes, the address may connect again.
        first.close()
        wait_for(lambda: answered(server, "127.0.0.2"))
        # The connection still open keeps working.
        second.sendall(frame(qid=7))
        reply = read_answer(second)
        assert reply is not None and reply.id == 7
    finally:
        first.close()
        second.close()


@pytest.mark.slow
def test_the_total_connection_limit(small_limits: RunningServer) -> None:
    server = small_limits
    held = [connect(server, f"127.0.0.{10 + i}") for i in range(4)]
    try:
        for sock in held:
            sock.sendall(frame())
            assert read_answer(sock) is not None
        assert not answered(server, "127.0.0.20")
        # UDP is not affected by TCP limits.
        reply = dns.query.udp(
            dns.message.make_query(LISTED_NAME, "A"), server.host, port=server.port, timeout=3
        )
        assert reply.rcode() == dns.rcode.NOERROR
        held.pop().close()
        wait_for(lambda: answered(server, "127.0.0.20"))
    finally:
        for sock in held:
            sock.close()


# -- idle timeout -----------------------------------------------------------------------


@pytest.fixture
def short_idle(config_path: Path) -> Iterator[RunningServer]:
    yield from serve_with_tcp(config_path, "idle_timeout = 0.5\nmax_per_client = 1")


@pytest.mark.slow
def test_idle_connections_are_closed(short_idle: RunningServer) -> None:
    server = short_idle
    with connect(server, "127.0.0.2") as silent:
        assert closed_by_server(silent)
    with connect(server, "127.0.0.3") as used:
        used.sendall(frame())
        assert read_answer(used) is not None
        assert closed_by_server(used)  # idle after its answer
    # Both slots were released: each address may connect again.
    assert answered(server, "127.0.0.2") and answered(server, "127.0.0.3")


# -- back-pressure ----------------------------------------------------------------------


@pytest.fixture
def pressure_server(config_path: Path) -> Iterator[RunningServer]:
    yield from serve_with_tcp(config_path, "idle_timeout = 3.0\nmax_per_client = 1")


QUERIES = 200_000  # ~10 MB of queries; their TXT answers would be ~25 MB


@pytest.mark.slow
def test_a_client_that_never_reads_cannot_grow_server_memory(
    pressure_server: RunningServer,
) -> None:
    server = pressure_server
    pid = server.process.pid
    assert answered(server, "127.0.0.9")  # warm up the TCP path
    before = vm_rss_kib(pid)
    query = frame(LISTED_NAME, "TXT")
    payload = query * QUERIES
    greedy = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    greedy.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # and never read it
    greedy.bind(("127.0.0.2", 0))
    greedy.connect((server.host, server.port))
    greedy.setblocking(False)
    sent = 0
    stuck_since = time.monotonic()
    deadline = time.monotonic() + 30
    try:
        # Push queries until the server stops reading them (the kernel buffers
        # fill and stay full for a second) or all are sent.
        while sent < len(payload) and time.monotonic() < deadline:
            try:
                sent += greedy.send(payload[sent : sent + 65536])
                stuck_since = time.monotonic()
            except BlockingIOError:
                if time.monotonic() - stuck_since > 1.0:
                    break
                time.sleep(0.01)
        assert sent < len(payload), "the server read every query without its answers being read"
        grown = vm_rss_kib(pid) - before
        # Answers to the queries the server did read: at most one read (64 KiB of
        # queries) past a full 64 KiB write buffer, plus what the kernel holds.
        assert grown < 8 * 1024, f"server RSS grew by {grown} KiB"
        # Other clients are still served, over UDP and TCP.
        reply = dns.query.udp(
            dns.message.make_query(LISTED_NAME, "A"), server.host, port=server.port, timeout=3
        )
        assert reply.rcode() == dns.rcode.NOERROR
        assert answered(server, "127.0.0.3")
        # The stuck connection is aborted after idle_timeout, releasing its slot.
        wait_for(lambda: answered(server, "127.0.0.2"), timeout=20)
    finally:
        greedy.close()


# -- idle checks while answers drain (unit) ----------------------------------------------


class SlowReaderTransport:
    """The parts of a socket transport the idle check reads: its write buffer."""

    def __init__(self) -> None:
        self.dataBuffer = b""
        self.offset = 0
        self._tempDataLen = 0
        self.closed = ""

    def registerProducer(self, producer: object, streaming: bool) -> None:
        pass

    def pauseProducing(self) -> None:
        pass

    def loseConnection(self) -> None:
        self.closed = "closed"

    def abortConnection(self) -> None:
        self.closed = "aborted"


def idle_protocol(clock: Clock) -> tuple[DnsStreamProtocol, SlowReaderTransport]:
    protocol = DnsStreamProtocol(make_responder(), Counters(), idle_timeout=1.0)
    protocol.callLater = clock.callLater  # type: ignore[method-assign]
    transport = SlowReaderTransport()
    protocol.makeConnection(transport)  # type: ignore[arg-type]
    return protocol, transport


def test_a_client_still_taking_a_long_answer_is_not_idle() -> None:
    clock = Clock()
    protocol, transport = idle_protocol(clock)
    transport.dataBuffer = b"x" * 1_000_000  # a big transfer queued, being read slowly
    protocol.pauseProducing()
    for _ in range(10):
        clock.advance(1.0)
        transport.offset += 50_000
        assert transport.closed == ""
    clock.advance(1.0)  # sees the progress made in the last period
    assert transport.closed == ""
    clock.advance(1.0)  # no progress for a whole idle period: cut off, not waited for
    assert transport.closed == "aborted"
    assert protocol.counters.tcp_timeouts == 1


def test_an_idle_connection_with_nothing_queued_is_closed_cleanly() -> None:
    clock = Clock()
    protocol, transport = idle_protocol(clock)
    clock.advance(1.0)
    assert transport.closed == "closed"
    assert protocol.counters.tcp_timeouts == 1
