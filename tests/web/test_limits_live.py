"""HTTP limits of a real ``rbl serve`` over raw loopback sockets.

The 100 MB body, the slow client and the connection cap are about what the
server process does with its sockets and memory, so they run against the
real process. They do not depend on the database, so they run on SQLite
only; the same code paths are covered on both backends in test_abuse.py.
"""

from __future__ import annotations

import re
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.config import write_config
from tests.support.server import RunningServer, start_server, stop_server

MB = 1024 * 1024


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RunningServer]:
    config = write_config(tmp_path)
    with config.open("a") as f:
        f.write('\n[web]\nlisten = "127.0.0.1:0"\nmax_connections = 3\nrequest_timeout = 2\n')
    running = start_server(config)
    try:
        yield running
    finally:
        stop_server(running)


def web_address(server: RunningServer) -> tuple[str, int]:
    web = server.info["web"]
    assert isinstance(web, dict)
    return str(web["host"]), int(web["port"])


def connect(server: RunningServer) -> socket.socket:
    sock = socket.create_connection(web_address(server), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_until_closed(sock: socket.socket, timeout: float = 15.0) -> bytes:
    """Everything the server sends until it closes (or resets) the connection."""
    deadline = time.monotonic() + timeout
    data = b""
    while time.monotonic() < deadline:
        ready, _, _ = select.select([sock], [], [], 0.2)
        if not ready:
            continue
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            return data
        if not chunk:
            return data
        data += chunk
    raise AssertionError(f"the server did not close the connection; got {data[:200]!r}")


def read_response(sock: socket.socket, timeout: float = 15.0) -> bytes:
    """One response on a kept-alive connection (headers plus Content-Length bytes)."""
    deadline = time.monotonic() + timeout
    data = b""
    while time.monotonic() < deadline:
        head, sep, body = data.partition(b"\r\n\r\n")
        if sep:
            match = re.search(rb"(?i)content-length: (\d+)", head)
            if match and len(body) >= int(match.group(1)):
                return data
        ready, _, _ = select.select([sock], [], [], 0.2)
        if ready:
            chunk = sock.recv(65536)
            if not chunk:
                return data
            data += chunk
    raise AssertionError(f"no complete response; got {data[:200]!r}")


def rss_kib(server: RunningServer) -> int:
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    assert match
    return int(match.group(1))


def test_a_100_mb_body_is_refused_before_it_is_sent_and_never_read(
    server: RunningServer,
) -> None:
    rss_before = rss_kib(server)
    sock = connect(server)
    sock.sendall(
        b"POST /remove/192.0.2.1 HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\n\r\n" % (100 * MB)
    )
    # The answer comes while not one byte of the body has been sent.
    answer = read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 413 "), answer
    assert b"at most 16 KiB" in answer and b"Connection: close" in answer
    # Sending the body anyway fails long before 100 MB: the server stopped reading.
    sent = 0
    chunk = b"x" * 65536
    sock.settimeout(10)
    with pytest.raises(OSError):  # EPIPE or ECONNRESET once the server has aborted
        while sent < 100 * MB:
            sock.sendall(chunk)
            sent += len(chunk)
    sock.close()
    assert sent < 20 * MB, sent
    assert rss_kib(server) - rss_before < 20 * 1024
    # And the site still answers.
    fresh = connect(server)
    fresh.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert read_until_closed(fresh).startswith(b"HTTP/1.1 200 ")
    fresh.close()


def test_an_oversize_body_sent_at_once_still_gets_its_413(server: RunningServer) -> None:
    """A client that does not wait (no Expect: 100-continue) reads the 413, not a reset."""
    sock = connect(server)
    sock.sendall(
        b"POST /remove/192.0.2.1 HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (100 * MB)
        + b"x" * 200_000
    )
    answer = read_until_closed(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 413 "), answer


def test_a_chunked_body_is_cut_off_at_the_limit(server: RunningServer) -> None:
    sock = connect(server)
    sock.sendall(
        b"POST /remove/192.0.2.1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n\r\n"
    )
    sent = 0
    answer = b""
    chunk = b"1000\r\n" + b"m" * 4096 + b"\r\n"
    while sent < 4 * MB:
        try:
            sock.sendall(chunk)
        except OSError:
            break
        sent += 4096
        ready, _, _ = select.select([sock], [], [], 0.01)
        if ready:
            break
    answer = read_until_closed(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 413 "), answer
    assert sent < 4 * MB


def test_a_slowloris_client_is_dropped(server: RunningServer) -> None:
    sock = connect(server)
    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    answer = b""
    deadline = time.monotonic() + 30  # request_timeout is 2 s; the idle timeout 15 s
    while time.monotonic() < deadline:
        try:
            sock.sendall(b"z")  # a byte every 0.2 s: never idle
        except OSError:
            break
        ready, _, _ = select.select([sock], [], [], 0.2)
        if ready:
            answer = read_until_closed(sock)
            break
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408 "), answer
    assert b"not complete within 2 seconds" in answer


def test_connections_past_max_connections_get_503(server: RunningServer) -> None:
    held = []
    for _ in range(3):  # kept alive after a full answer, so certainly accepted
        sock = connect(server)
        sock.sendall(b"GET /static/site.css HTTP/1.1\r\nHost: x\r\n\r\n")
        assert read_response(sock).startswith(b"HTTP/1.1 200 ")
        held.append(sock)
    extra = connect(server)
    extra.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    answer = read_until_closed(extra)
    extra.close()
    assert answer.startswith(b"HTTP/1.1 503 "), answer
    assert b"Retry-After: 10" in answer
    held.pop().close()
    deadline = time.monotonic() + 15
    while True:  # the slot frees once the server has seen the close
        sock = connect(server)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = read_until_closed(sock)
        sock.close()
        if answer.startswith(b"HTTP/1.1 200 "):
            break
        assert answer.startswith(b"HTTP/1.1 503 ") and time.monotonic() < deadline, answer
        time.sleep(0.05)
    for sock in held:
        sock.close()


def connect_from(address: tuple[str, int], source: str) -> socket.socket:
    """A connection whose source is ``source`` (Linux routes all of 127/8 to loopback)."""
    sock = socket.create_connection(address, timeout=10, source_address=(source, 0))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def closed_at_once(sock: socket.socket, timeout: float = 3.0) -> bool:
    """Whether the server closed (or reset) ``sock`` within ``timeout`` without a word."""
    ready, _, _ = select.select([sock], [], [], timeout)
    if not ready:
        return False
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


@pytest.mark.slow
def test_one_client_holding_many_slow_connections_does_not_shut_out_others(
    tmp_path: Path,
) -> None:
    """210 slow connections from one address (the default limits): others are still served."""
    config = write_config(tmp_path)
    with config.open("a") as f:
        f.write('\n[web]\nlisten = "127.0.0.1:0"\n')
    running = start_server(config)
    held: list[socket.socket] = []
    try:
        address = web_address(running)
        for _ in range(210):  # each one a request that never ends
            sock = connect_from(address, "127.0.0.1")
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            held.append(sock)
        other = connect_from(address, "127.0.0.2")
        other.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        answer = read_until_closed(other)
        other.close()
        assert answer.startswith(b"HTTP/1.1 200 "), answer[:200]
        # The first 20 (max_connections_per_client) are still open, the rest were closed.
        closed = [closed_at_once(sock, 0.5 if i < 20 else 3.0) for i, sock in enumerate(held)]
        assert closed == [False] * 20 + [True] * 190
    finally:
        for sock in held:
            sock.close()
        stop_server(running)
