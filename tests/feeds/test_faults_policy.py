"""The live trap feed under faults: an answered trap hit is stored exactly once.

Real ``rbl serve`` processes, real Postfix-format policy requests over TCP, a
real store. Each request names its own recipient on the trap domain
(``q<N>@trap.example.org``), so the ``hits`` table says exactly which ones
were kept. Faults: a SQLite write lock held past the busy timeout, a
PostgreSQL server cut off by ``tests.support.fault_proxy``, ``kill -9`` at random
moments, and SIGTERM while requests wait. After each: every request answered
DUNNO is stored once; nothing is stored twice; only unanswered or deferred
requests may be missing. DNS answers from memory throughout.

Each test prints one ``FIGURES`` line (run with ``-s``) for docs/RELIABILITY.md.
"""

from __future__ import annotations

import random
import signal
import socket
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rcode
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.pool import NullPool

from rbl.store.database import SQLITE_BUSY_TIMEOUT_MS
from tests.support.config import database_url_of, write_config
from tests.support.fault_proxy import FaultProxy
from tests.support.pg_databases import PgDatabases
from tests.support.processes import rbl_command
from tests.support.server import RunningServer, start_server, stop_server

pytestmark = pytest.mark.slow

DUNNO = b"action=DUNNO\n\n"
DEFER = b"action=DEFER_IF_PERMIT Service temporarily unavailable\n\n"
TRAP_DOMAIN = "trap.example.org"
LISTED, UNLISTED = "192.0.2.99", "192.0.2.100"

FEED = """
[listing]
ip_zone = "bl.example.org"

[feeds.policy]
listen = "127.0.0.1:0"
commit_timeout = "{timeout}"
"""


def feed_config(directory: Path, url: str, timeout: str = "1s") -> Path:
    directory.mkdir(exist_ok=True)
    config = write_config(directory, url=url)
    with config.open("a") as f:
        f.write(FEED.format(timeout=timeout))
    return config


def prepare(config: Path) -> None:
    """The trap domain, and one manual listing DNS must keep answering for."""
    rbl_command(config, "traps", "add", "@" + TRAP_DOMAIN)
    rbl_command(config, "list", "add", LISTED, "--reason", "fault test")


def request(n: int) -> bytes:
    """Request ``n``: a RCPT to its own trap recipient, as Postfix frames it."""
    attributes = {
        "request": "smtpd_access_policy",
        "protocol_state": "RCPT",
        "protocol_name": "ESMTP",
        "client_address": f"198.51.100.{n % 200 + 1}",
        "client_name": "unknown",
        "helo_name": "spam.example",
        "sender": "offer@spam.example",
        "recipient": f"q{n}@{TRAP_DOMAIN}",
        "queue_id": "",
        "instance": f"{n:x}.0",
        "size": "0",
    }
    return "".join(f"{k}={v}\n" for k, v in attributes.items()).encode() + b"\n"


@dataclass
class Ledger:
    """What was sent and answered, by request number, across client threads."""

    answers: dict[int, bytes | None] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    _next: int = 0

    def take(self) -> int:
        with self.lock:
            n = self._next
            self._next += 1
            self.answers[n] = None  # sent, not answered
            return n

    def answer(self, n: int, reply: bytes) -> None:
        with self.lock:
            self.answers[n] = reply

    def with_answer(self, reply: bytes | None) -> set[int]:
        with self.lock:
            return {n for n, got in self.answers.items() if got == reply}


class Client:
    """One policy connection, one request at a time, as Postfix uses it."""

    def __init__(self, server: RunningServer, ledger: Ledger, timeout: float = 30.0) -> None:
        policy = server.info["policy"]
        assert isinstance(policy, dict)
        self.sock = socket.create_connection((policy["host"], policy["port"]), timeout=timeout)
        self.ledger = ledger
        self.buffer = b""

    def ask(self) -> bytes | None:
        """Send the next request; its answer, or None if the connection ended first."""
        n = self.ledger.take()
        try:
            self.sock.sendall(request(n))
            while b"\n\n" not in self.buffer:
                chunk = self.sock.recv(4096)
                if not chunk:
                    return None
                self.buffer += chunk
        except OSError:
            return None
        reply, _, self.buffer = self.buffer.partition(b"\n\n")
        reply += b"\n\n"
        assert reply in (DUNNO, DEFER), reply
        self.ledger.answer(n, reply)
        return reply

    def close(self) -> None:
        self.sock.close()


def acknowledge(client: Client, timeout: float = 20.0) -> None:
    """Ask until a request is acknowledged: the store is back and the writer noticed."""
    deadline = time.monotonic() + timeout
    while client.ask() != DUNNO:
        assert time.monotonic() < deadline, "no request acknowledged after the fault"


def in_threads(count: int, job: Callable[[int], None]) -> list[threading.Thread]:
    threads = [threading.Thread(target=job, args=(i,), daemon=True) for i in range(count)]
    for thread in threads:
        thread.start()
    return threads


def stored(url: str) -> Counter[int]:
    """How many times each request number is in the hits table."""
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text("SELECT rcpt_to FROM hits")).scalars().all()
    finally:
        engine.dispose()
    found: Counter[int] = Counter()
    for rcpt in rows:
        local, _, domain = rcpt.partition("@")
        assert domain == TRAP_DOMAIN and local.startswith("q"), rcpt
        found[int(local[1:])] += 1
    return found


def wait_stored(url: str, wanted: set[int], timeout: float) -> Counter[int]:
    deadline = time.monotonic() + timeout
    while True:
        found = stored(url)
        if wanted <= set(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def verify(ledger: Ledger, found: Counter[int], *, faults: int, name: str) -> dict[str, int]:
    """Acknowledged ⊆ stored, each once; stored ⊆ sent; the figures for the report."""
    acked = ledger.with_answer(DUNNO)
    deferred = ledger.with_answer(DEFER)
    unanswered = ledger.with_answer(None)
    lost = sorted(acked - set(found))
    duplicated = sorted(n for n, times in found.items() if times > 1)
    unknown = sorted(set(found) - set(ledger.answers))
    assert lost == [], f"acknowledged but not stored: {lost}"
    assert duplicated == [], f"stored more than once: {duplicated}"
    assert unknown == [], f"stored but never sent: {unknown}"
    assert set(found) - acked <= deferred | unanswered
    figures = {
        "faults": faults,
        "sent": len(ledger.answers),
        "acknowledged": len(acked),
        "deferred": len(deferred),
        "unanswered": len(unanswered),
        "stored": len(found),
        "lost": len(lost),
        "duplicated": len(duplicated),
    }
    print(f"\nFIGURES {name}: " + " ".join(f"{k}={v}" for k, v in figures.items()))
    return figures


def rcode_and_a(server: RunningServer, address: str) -> tuple[int, list[str]]:
    name = ".".join(reversed(address.split("."))) + ".bl.example.org"
    reply = dns.query.udp(
        dns.message.make_query(name, "A"), server.host, port=server.port, timeout=3
    )
    addresses = [item.address for rrset in reply.answer for item in rrset]
    return reply.rcode(), addresses


def assert_dns_from_memory(server: RunningServer) -> None:
    assert rcode_and_a(server, LISTED) == (dns.rcode.NOERROR, ["127.0.0.2"])
    assert rcode_and_a(server, UNLISTED) == (dns.rcode.NXDOMAIN, [])


@contextmanager
def write_lock(url: str) -> Iterator[None]:
    """Block every writer: SQLite ``BEGIN EXCLUSIVE``, PostgreSQL an exclusive table lock."""
    if url.startswith("sqlite"):
        conn = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN EXCLUSIVE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    engine = create_engine(url, poolclass=NullPool)
    try:
        with engine.connect() as locker:
            locker.execute(text("LOCK TABLE hits IN ACCESS EXCLUSIVE MODE"))
            yield
            locker.rollback()
    finally:
        engine.dispose()


@pytest.fixture
def pg_url(pg_databases: PgDatabases | None) -> Iterator[str]:
    if pg_databases is None:
        pytest.skip("PostgreSQL: set RBL_TEST_PG_URL (scripts/pg-test-server start prints one)")
    name = pg_databases.create()
    try:
        yield pg_databases.url_of(name)
    finally:
        pg_databases.drop(name)


def test_sqlite_locked_past_the_busy_timeout(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rbl.sqlite'}"
    config = feed_config(tmp_path, url, timeout="1s")
    prepare(config)
    server = start_server(config)
    ledger = Ledger()
    try:
        before = Client(server, ledger)
        assert [before.ask() for _ in range(3)] == [DUNNO] * 3
        held = SQLITE_BUSY_TIMEOUT_MS / 1000 + 1.5
        with write_lock(url):
            locked_at = time.monotonic()

            def during(_: int) -> None:
                client = Client(server, ledger)
                try:
                    while time.monotonic() - locked_at < held - 2.0:
                        assert client.ask() in (DEFER, DUNNO)
                finally:
                    client.close()

            threads = in_threads(3, during)
            while time.monotonic() - locked_at < held:
                assert_dns_from_memory(server)
                time.sleep(0.2)
            for thread in threads:
                thread.join(timeout=30)
            during_lock = set(ledger.answers) - {0, 1, 2}
            assert during_lock and ledger.with_answer(DEFER) == during_lock
        # Lock released: the queued (deferred) hits are written, new ones acknowledged.
        acknowledge(before)
        found = wait_stored(url, set(ledger.answers), timeout=20)
        assert set(found) == set(ledger.answers)  # deferred, yet queued: written later
        assert_dns_from_memory(server)
        assert "cannot write trap hits" in server.log()
        before.close()
    finally:
        stop_server(server)
    verify(ledger, stored(url), faults=1, name="sqlite-locked")


def test_postgresql_cut_off_and_back(tmp_path: Path, pg_url: str) -> None:
    proxy, proxied = FaultProxy.for_url(pg_url)
    direct = feed_config(tmp_path / "direct", pg_url)
    config = feed_config(tmp_path / "proxied", proxied, timeout="1s")
    prepare(direct)
    server = start_server(config)
    ledger = Ledger()
    late_listing = "192.0.2.77"
    try:
        client = Client(server, ledger)
        assert [client.ask() for _ in range(3)] == [DUNNO] * 3
        proxy.cut()
        assert_dns_from_memory(server)

        def during(_: int) -> None:
            one = Client(server, ledger)
            try:
                for _ in range(3):
                    assert one.ask() == DEFER
            finally:
                one.close()

        for thread in in_threads(3, during):
            thread.join(timeout=30)
        assert len(ledger.with_answer(DEFER)) == 9
        # A listing made while this node cannot reach the database...
        rbl_command(direct, "list", "add", late_listing, "--reason", "during the outage")
        assert_dns_from_memory(server)
        assert rcode_and_a(server, late_listing)[0] == dns.rcode.NXDOMAIN
        # ...a request held across the restore is answered either way...
        held = threading.Thread(target=client.ask, daemon=True)
        held.start()
        time.sleep(0.3)
        proxy.restore()
        held.join(timeout=30)
        assert not held.is_alive()
        # ...and after the restore (and the writer's backoff) everything converges.
        acknowledge(client)
        found = wait_stored(pg_url, set(ledger.answers), timeout=20)
        assert set(found) == set(ledger.answers)
        deadline = time.monotonic() + 15
        while rcode_and_a(server, late_listing) != (dns.rcode.NOERROR, ["127.0.0.2"]):
            assert time.monotonic() < deadline, "listing made during the outage not in DNS"
            time.sleep(0.1)
        assert_dns_from_memory(server)
        client.close()
    finally:
        stop_server(server)
        proxy.close()
    assert proxy.refused > 0  # the server did try, and was refused, while cut
    verify(ledger, stored(pg_url), faults=proxy.faults, name="postgresql-cut")


ROUNDS = 4
CLIENTS = 4


def test_kill_9_while_streaming_loses_no_acknowledged_hit(config_path: Path) -> None:
    with config_path.open("a") as f:
        f.write(FEED.format(timeout="5s"))
    prepare(config_path)
    url = database_url_of(config_path)
    rng = random.Random(7)
    ledger = Ledger()
    kills = 0
    for _round in range(ROUNDS):
        server = start_server(config_path)
        stop = threading.Event()
        answered: list[int] = []

        def stream(
            _: int,
            server: RunningServer = server,
            stop: threading.Event = stop,
            answered: list[int] = answered,
        ) -> None:
            client = Client(server, ledger, timeout=10)
            try:
                while not stop.is_set():
                    if client.ask() is None:
                        return  # killed
                    answered.append(1)
            finally:
                client.close()

        threads = in_threads(CLIENTS, stream)
        try:
            deadline = time.monotonic() + 30
            while len(answered) < 20:  # streaming for real before the kill
                assert time.monotonic() < deadline, server.log()
                time.sleep(0.01)
            time.sleep(rng.uniform(0.05, 0.8))
            server.process.send_signal(signal.SIGKILL)
            server.process.wait(timeout=15)
            kills += 1
        finally:
            stop.set()
            stop_server(server)
        for thread in threads:
            thread.join(timeout=30)
            assert not thread.is_alive()
    # One more start: nothing is replayed or lost by starting again.
    server = start_server(config_path)
    try:
        client = Client(server, ledger)
        assert client.ask() == DUNNO
        client.close()
    finally:
        stop_server(server)
    figures = verify(
        ledger, stored(url), faults=kills, name=f"kill-9 {url.split(':')[0].split('+')[0]}"
    )
    assert figures["acknowledged"] > ROUNDS * 20
    assert figures["unanswered"] <= kills * CLIENTS  # one in flight per connection at most


def test_sigterm_answers_and_stores_every_waiting_request(config_path: Path) -> None:
    with config_path.open("a") as f:
        f.write(FEED.format(timeout="10s"))
    prepare(config_path)
    url = database_url_of(config_path)
    server = start_server(config_path)
    ledger = Ledger()
    replies: list[bytes | None] = []
    try:
        with write_lock(url):

            def waiting(_: int) -> None:
                client = Client(server, ledger)
                try:
                    replies.append(client.ask())
                finally:
                    client.close()

            threads = in_threads(6, waiting)
            deadline = time.monotonic() + 10
            while len(ledger.answers) < 6:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            time.sleep(0.3)  # the requests reach the server and queue behind the lock
            assert replies == []
            server.process.send_signal(signal.SIGTERM)
            time.sleep(0.5)
            assert server.process.poll() is None  # draining, not gone
        for thread in threads:
            thread.join(timeout=30)
        assert server.process.wait(timeout=30) == 0
    finally:
        stop_server(server)
    assert replies == [DUNNO] * 6
    found = stored(url)
    assert set(found) == set(range(6))
    verify(ledger, found, faults=1, name=f"sigterm {url.split(':')[0].split('+')[0]}")


def test_sigterm_with_the_store_down_defers_and_exits(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rbl.sqlite'}"
    config = feed_config(tmp_path, url, timeout="1s")
    prepare(config)
    server = start_server(config)
    ledger = Ledger()
    replies: list[Any] = []
    try:
        with write_lock(url):
            client = Client(server, ledger)
            waiter = threading.Thread(target=lambda: replies.append(client.ask()), daemon=True)
            waiter.start()
            time.sleep(0.3)
            server.process.send_signal(signal.SIGTERM)
            waiter.join(timeout=10)
            assert replies == [DEFER]  # answered within commit_timeout, not left hanging
        assert server.process.wait(timeout=30) == 0
        client.close()
    finally:
        stop_server(server)
    verify(ledger, stored(url), faults=1, name="sigterm store down")
