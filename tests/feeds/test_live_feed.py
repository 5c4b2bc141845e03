"""The whole loop in a real ``rbl serve``: a Postfix policy request for a trap recipient
lists the client in DNS within a second, and the listing expires from DNS on the clock."""

from __future__ import annotations

import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from tests.support.config import LIVE_SETTINGS, write_config
from tests.support.dns_client import server_query
from tests.support.policy_requests import policy_request
from tests.support.processes import rbl_command
from tests.support.server import start_server, stop_server

pytestmark = pytest.mark.slow


def query(host: str, port: int, name: str) -> dns.message.Message:
    return server_query(host, port, name, timeout=3)


def wait_rcode(host: str, port: int, name: str, rcode: int, timeout: float) -> float:
    start = time.monotonic()
    while query(host, port, name).rcode() != rcode:
        assert time.monotonic() - start < timeout, f"{name} not {rcode} within {timeout}s"
        time.sleep(0.02)
    return time.monotonic() - start


def test_policy_hit_lists_within_a_second_and_expires(tmp_path: Path) -> None:
    config = write_config(tmp_path, extra=LIVE_SETTINGS)
    rbl_command(config, "traps", "add", "trap@example.org")
    server = start_server(config)
    try:
        policy = server.info["policy"]
        assert isinstance(policy, dict)
        name = "8.7.6.45.bl.example.org"
        assert query(server.host, server.port, name).rcode() == dns.rcode.NXDOMAIN
        answer = policy_request(
            policy["host"],
            policy["port"],
            client_address="45.6.7.8",
            client_name="mail.spam.example",
            helo_name="mail.spam.example",
            sender="offer@spam.example",
            recipient="Trap@Example.org",
        )
        assert answer == b"action=DUNNO\n\n"
        waited = wait_rcode(server.host, server.port, name, dns.rcode.NOERROR, timeout=1.0)
        assert waited < 1.0
        domain = "spam.example.dbl.example.org"
        assert query(server.host, server.port, domain).rcode() == dns.rcode.NOERROR
        # Not a trap: answered DUNNO, nothing listed.
        assert policy_request(
            policy["host"],
            policy["port"],
            client_address="45.9.9.9",
            sender="a@b.example",
            recipient="user@example.org",
        ) == (b"action=DUNNO\n\n")
        # The listing lives 3 s after its hit; the sweep runs every 0.2 s.
        wait_rcode(server.host, server.port, name, dns.rcode.NXDOMAIN, timeout=6.0)
        assert query(server.host, server.port, "9.9.9.45.bl.example.org").rcode() == (
            dns.rcode.NXDOMAIN
        )
    finally:
        stop_server(server)
    shown = rbl_command(config, "show", "45.6.7.8")
    assert "45.6.7.8 in bl.example.org: expired" in shown.stdout
    assert "feed=policy" in shown.stdout and "to=<trap@example.org>" in shown.stdout
