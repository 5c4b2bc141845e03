"""Who may use the policy feed, and how many connections it holds.

A policy request names its client address and recipient and the feed believes them: a
stranger who can connect lists any address. So only ``allow`` (loopback by default) is
served, connections are capped in total and per client, and listening beyond loopback
is said in the log.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.logger import ILogObserver, Logger

from rbl.config import parse_settings
from rbl.errors import ConfigError
from rbl.feeds.policyd import PolicyServerFactory
from tests.support.config import write_config
from tests.support.processes import rbl_command
from tests.support.server import start_server, stop_server

DUNNO = b"action=DUNNO\n\n"


def address(host: str, port: int = 40000) -> IPv4Address | IPv6Address:
    return (IPv6Address if ":" in host else IPv4Address)("TCP", host, port)


def factory(**limits: Any) -> PolicyServerFactory:
    clock = Clock()
    clock.advance(1_700_000_000)
    return PolicyServerFactory(lambda _rcpt: False, lambda _hit: None, clock, **limits)


def connect(f: PolicyServerFactory, host: str) -> Any:
    protocol = f.buildProtocol(address(host))
    if protocol is not None:
        protocol.makeConnection(StringTransport())  # type: ignore[no-untyped-call]
    return protocol


def test_only_loopback_is_served_by_default() -> None:
    f = factory()
    assert connect(f, "127.0.0.1") is not None
    assert connect(f, "::1") is not None
    assert connect(f, "::ffff:127.0.0.1") is not None  # IPv4-mapped counts as IPv4
    assert connect(f, "192.0.2.1") is None
    assert connect(f, "2001:db8::1") is None
    assert (f.refused_unallowed, f.refused_busy, f.open) == (2, 0, 3)


def test_allow_names_the_postfix_hosts() -> None:
    f = factory(allow=["192.0.2.0/28", "2001:db8::25/128"])
    assert connect(f, "192.0.2.14") is not None
    assert connect(f, "2001:db8::25") is not None
    assert connect(f, "192.0.2.16") is None
    assert connect(f, "127.0.0.1") is None  # not even loopback once allow is set
    f.configure(["0.0.0.0/0"])  # a reload: new connections are checked against it
    assert connect(f, "198.51.100.9") is not None


def test_total_and_per_client_caps_and_release_on_close() -> None:
    f = factory(max_connections=5, max_per_client=3)
    first = [connect(f, "127.0.0.1") for _ in range(4)]
    assert first[3] is None and f.refused_busy == 1  # the fourth from one client
    others = [connect(f, "127.0.0.2") for _ in range(3)]
    assert others[2] is None and f.refused_busy == 2  # the sixth in total
    first[0].transport.loseConnection()
    first[0].connectionLost()
    assert f.per_client == {"127.0.0.1": 2, "127.0.0.2": 2} and f.open == 4
    assert connect(f, "127.0.0.1") is not None


def test_refusals_are_logged_once_a_minute_not_per_connection() -> None:
    events: list[dict[str, Any]] = []
    f = factory()
    f.log = Logger(observer=cast(ILogObserver, events.append))
    for _ in range(100):
        connect(f, "203.0.113.7")
    assert len(events) == 1 and "203.0.113.7" in str(events[0]["client"])
    f.clock.advance(61)  # type: ignore[attr-defined]
    connect(f, "203.0.113.8")
    assert len(events) == 2 and events[1]["unlogged"] == 99


def test_idle_timeout_is_configurable() -> None:
    f = factory(idle_timeout=20.0)
    protocol = connect(f, "127.0.0.1")
    f.clock.advance(19)  # type: ignore[attr-defined]
    assert not protocol.transport.disconnecting
    f.clock.advance(1)  # type: ignore[attr-defined]
    assert protocol.transport.disconnecting


@pytest.mark.parametrize(
    ("policy", "fragment"),
    [
        ({"allow": ["example.org"]}, "allow entry 'example.org'"),
        ({"allow": "127.0.0.1"}, "allow must be a list"),
        ({"max_connections": 0}, "max_connections 0 is outside 1..100000"),
        ({"max_per_client": 10**9}, "max_per_client 1000000000 is outside"),
        ({"idle_timeout": "1s"}, "idle_timeout 1s is under 10 seconds"),
        ({"idle_timeout": "3000000d"}, "'3000000d' is longer than the bound of 1d"),
    ],
)
def test_policy_settings_are_checked(policy: dict[str, Any], fragment: str) -> None:
    data = {
        "zones": [{"name": "bl.example.org", "ns": ["ns1.example.org"]}],
        "feeds": {"policy": policy},
    }
    with pytest.raises(ConfigError) as caught:
        parse_settings(data, source=Path("/etc/rbl/rbl.toml"))
    assert "[feeds].policy" in str(caught.value) and fragment in str(caught.value)


# -- against the real ``rbl serve`` ---------------------------------------------------------


def policy_config(tmp_path: Path, feed: str) -> Path:
    listing = '\n[listing]\nip_zone = "bl.example.org"\n'
    config = write_config(tmp_path, extra=listing + feed)
    rbl_command(config, "traps", "add", "trap@example.org")
    return config


def ask(host: str, port: int, source: str = "127.0.0.1", timeout: float = 5) -> bytes:
    """One RCPT request from ``source``; what came back before the server closed."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as conn:
        conn.settimeout(timeout)
        conn.bind((source, 0))
        conn.connect((host, port))
        try:
            conn.sendall(
                b"request=smtpd_access_policy\nprotocol_state=RCPT\n"
                b"client_address=45.9.8.7\nsender=a@spam.example\nrecipient=user@example.org\n\n"
            )
        except (BrokenPipeError, ConnectionResetError):
            return b""
        answer = b""
        while not answer.endswith(b"\n\n"):
            try:
                chunk = conn.recv(512)
            except ConnectionResetError:
                break
            if not chunk:
                break
            answer += chunk
        return answer


def closed_by_peer(conn: socket.socket) -> bool:
    conn.setblocking(False)  # a timeout socket would wait for data before peeking
    try:
        return conn.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:  # nothing to read: still open
        return False
    except ConnectionResetError:
        return True


@pytest.fixture
def many_sockets() -> Iterator[list[socket.socket]]:
    sockets: list[socket.socket] = []
    try:
        yield sockets
    finally:
        for conn in sockets:
            conn.close()


@pytest.mark.slow
def test_3000_idle_connections_are_capped_and_others_still_served(
    tmp_path: Path, many_sockets: list[socket.socket]
) -> None:
    feed = (
        '\n[feeds.policy]\nlisten = "127.0.0.1:0"\nmax_connections = 100\nmax_per_client = 50\n'
        'idle_timeout = "1h"\n'  # the held ones stay however slow this machine is
    )
    server = start_server(policy_config(tmp_path, feed))
    try:
        policy = server.info["policy"]
        assert isinstance(policy, dict)
        host, port = policy["host"], policy["port"]
        pid = server.process.pid
        descriptors_before = len(os.listdir(f"/proc/{pid}/fd"))
        started = time.monotonic()
        for _ in range(3000):
            conn = socket.create_connection((host, port), timeout=10)
            many_sockets.append(conn)
        print(f"3000 connections in {time.monotonic() - started:.1f}s")
        deadline = time.monotonic() + 20
        while sum(not closed_by_peer(c) for c in many_sockets) > 50:
            assert time.monotonic() < deadline, "the server still holds over 50 of one client"
            time.sleep(0.1)
        time.sleep(0.5)
        held = [c for c in many_sockets if not closed_by_peer(c)]
        assert len(held) == 50  # max_per_client, the rest were closed at once
        descriptors = len(os.listdir(f"/proc/{pid}/fd"))
        assert descriptors - descriptors_before <= 60, (descriptors_before, descriptors)
        # Another Postfix host is still served, and so is a held connection.
        assert ask(host, port, source="127.0.0.2") == DUNNO
        held[0].settimeout(5)
        held[0].sendall(
            b"request=smtpd_access_policy\nprotocol_state=RCPT\nclient_address=45.9.8.7\n"
            b"recipient=user@example.org\n\n"
        )
        assert held[0].recv(512) == DUNNO
        metrics_log = server.log()
        assert "Traceback" not in metrics_log
    finally:
        stop_server(server)


@pytest.mark.slow
def test_a_client_outside_allow_is_closed_and_beyond_loopback_is_warned(tmp_path: Path) -> None:
    feed = '\n[feeds.policy]\nlisten = "0.0.0.0:0"\nallow = ["127.0.0.2/32"]\n'
    server = start_server(policy_config(tmp_path, feed))
    try:
        policy = server.info["policy"]
        assert isinstance(policy, dict)
        port = policy["port"]
        assert ask("127.0.0.1", port, source="127.0.0.1") == b""  # closed, no answer
        assert ask("127.0.0.1", port, source="127.0.0.2") == DUNNO
        log = server.log()
        assert "policy feed listens on 0.0.0.0 port" in log and "beyond loopback" in log
        assert "set allow to exactly your Postfix hosts" in log
        assert "closed a connection from 127.0.0.1, which is not in [feeds.policy] allow" in log
    finally:
        stop_server(server)
    assert server.process.returncode == 0


def test_doctor_fails_an_allow_that_lets_anyone_in(tmp_path: Path) -> None:
    feed = '\n[feeds.policy]\nlisten = "0.0.0.0:0"\nallow = ["192.0.2.25/32", "0.0.0.0/0"]\n'
    config = policy_config(tmp_path, feed)
    result = rbl_command(config, "doctor", "--timeout", "0.1", check=False)
    assert "FAIL  policy feed clients: [feeds.policy] allow = ['192.0.2.25/32', '0.0.0.0/0']" in (
        result.stdout
    )
    config.write_text(config.read_text().replace(', "0.0.0.0/0"', ""))
    result = rbl_command(config, "doctor", "--timeout", "0.1", check=False)
    assert "OK    policy feed clients: served to 192.0.2.25/32 only" in result.stdout
