"""SIGTERM stops ``rbl serve`` gracefully: queries already sent get their answers.

Loopback delivery is synchronous, so queries sent before the signal are in
the server's socket buffers (or already read) when it starts to stop; every
one of them must be answered before the sockets close.
"""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import struct
import threading
import time
from pathlib import Path

import dns.message
import dns.rcode
import pytest

from tests.support.processes import rbl_command
from tests.support.server import RunningServer, start_server

pytestmark = pytest.mark.slow

COUNT = 400
UDP_COUNT = 100  # UDP replies queue in the client's socket buffer: keep it well below its size


def kill_if_running(server: RunningServer) -> None:
    """Cleanup after a failed assertion: the test's own stop did not happen."""
    if server.process.poll() is None:
        server.process.kill()
        server.process.wait()


def query_wire(index: int) -> bytes:
    query = dns.message.make_query(f"{index % 250}.1.1.45.bl.example.org", "A")
    query.id = index
    return query.to_wire()


def read_answers(sock: socket.socket) -> list[dns.message.Message]:
    """Length-prefixed answers until the server closes the connection."""
    data = b""
    sock.settimeout(20)
    while chunk := sock.recv(65536):
        data += chunk
    answers = []
    while len(data) >= 2:
        (length,) = struct.unpack(">H", data[:2])
        assert len(data) >= 2 + length, "a truncated answer: the server cut a reply short"
        answers.append(dns.message.from_wire(data[2 : 2 + length]))
        data = data[2 + length :]
    assert data == b""
    return answers


def test_sigterm_answers_queries_already_sent(config_path: Path) -> None:
    rbl_command(config_path, "list", "add", "45.1.1.7", "--reason", "graceful")
    server = start_server(config_path)
    tcp = socket.create_connection((server.host, server.port), timeout=10)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        # Pipelined TCP queries, not read yet; then a UDP burst; then the signal.
        tcp.sendall(b"".join(struct.pack(">H", len(w)) + w for w in map(query_wire, range(COUNT))))
        time.sleep(0.3)  # the queries reach the server (read or still in its buffer)
        for index in range(UDP_COUNT):
            udp.sendto(query_wire(index), (server.host, server.port))
        server.process.send_signal(signal.SIGTERM)
        answers = read_answers(tcp)
        assert sorted(a.id for a in answers) == list(range(COUNT))
        listed = [a for a in answers if a.id % 250 == 7]
        assert listed and all(a.rcode() == dns.rcode.NOERROR for a in listed)
        udp.settimeout(5)
        udp_ids = set()
        while len(udp_ids) < UDP_COUNT:
            udp_ids.add(dns.message.from_wire(udp.recv(4096)).id)
        assert udp_ids == set(range(UDP_COUNT))
        assert server.process.wait(timeout=30) == 0
    finally:
        tcp.close()
        udp.close()
        kill_if_running(server)
    assert "Main loop terminated" in server.log()


def test_sigterm_sends_answers_a_slow_reader_has_not_taken(config_path: Path) -> None:
    """A client pipelines many queries and reads nothing until after the signal: the
    server stops reading, but every query it did read gets its whole answer."""
    server = start_server(config_path)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # little room in the kernel
    sock.connect((server.host, server.port))
    total = 30_000
    payload = b"".join(struct.pack(">H", len(w)) + w for w in map(query_wire, range(total)))

    def send() -> None:
        with contextlib.suppress(OSError):  # the server stops reading and closes
            sock.sendall(payload)

    sender = threading.Thread(target=send, daemon=True)
    try:
        sender.start()
        time.sleep(1.0)  # the server answers until its send buffer is full, then pauses
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        answers = read_answers(sock)
        assert server.process.wait(timeout=30) == 0
    finally:
        sock.close()
        kill_if_running(server)
    ids = [a.id for a in answers]
    assert ids == list(range(len(ids)))  # in order, none missing, none cut short
    received = re.search(r"DNS stopped: \d+ UDP and (\d+) TCP queries", server.log())
    assert received is not None, server.log()
    assert len(ids) == int(received.group(1)) > 0  # every query read was answered


def test_sigterm_finishes_a_lookup_waiting_on_the_database(
    config_path: Path, database_url: str
) -> None:
    """A lookup is held by a table lock (PostgreSQL) when the signal comes: the server
    stops listening but answers it, in full, once the lock goes, then exits."""
    import urllib.request

    from sqlalchemy import create_engine, text
    from sqlalchemy.pool import NullPool

    if not database_url.startswith("postgresql"):
        pytest.skip("SQLite's WAL never blocks a reader; a PostgreSQL lock holds one")
    rbl_command(config_path, "list", "add", "45.1.1.7", "--reason", "graceful")
    config_path.write_text(config_path.read_text() + '\n[web]\nlisten = "127.0.0.1:0"\n')
    server = start_server(config_path)
    web = server.info["web"]
    assert isinstance(web, dict)
    engine = create_engine(database_url, poolclass=NullPool)
    pages: list[tuple[int, bytes]] = []

    def lookup() -> None:
        url = f"http://{web['host']}:{web['port']}/lookup/45.1.1.7"
        with urllib.request.urlopen(url, timeout=30) as response:
            pages.append((response.status, response.read()))

    try:
        with engine.connect() as conn:
            transaction = conn.begin()
            conn.execute(text("LOCK TABLE listings IN ACCESS EXCLUSIVE MODE"))
            reader = threading.Thread(target=lookup)
            reader.start()
            time.sleep(1.0)  # the lookup now waits on the lock
            assert not pages
            server.process.send_signal(signal.SIGTERM)
            time.sleep(1.0)
            assert server.process.poll() is None, "exited with a lookup still being answered"
            transaction.rollback()
        reader.join(timeout=30)
        assert server.process.wait(timeout=30) == 0
    finally:
        engine.dispose()
        kill_if_running(server)
    assert len(pages) == 1, server.log()
    status, body = pages[0]
    assert status == 200 and b"45.1.1.7" in body and b"</html>" in body
