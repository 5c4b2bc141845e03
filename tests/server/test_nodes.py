"""Two ``rbl serve --dns-only`` nodes on one database converge within 2 s."""

from __future__ import annotations

import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from tests.support.processes import rbl_command
from tests.support.server import RunningServer, start_server, stop_server

pytestmark = pytest.mark.slow
NAME = "9.9.9.45.bl.example.org"


def rcode(server: RunningServer, name: str) -> int:
    return server.query(name).rcode()


def converge(nodes: list[RunningServer], name: str, wanted: int, timeout: float = 2.0) -> float:
    start = time.monotonic()
    while not all(rcode(node, name) == wanted for node in nodes):
        assert time.monotonic() - start < timeout, f"{name} not {wanted} on every node"
        time.sleep(0.02)
    return time.monotonic() - start


def test_listing_and_delisting_reach_every_node_within_two_seconds(config_path: Path) -> None:
    nodes = [start_server(config_path, "--dns-only") for _ in range(2)]
    try:
        assert nodes[0].port != nodes[1].port
        assert all(rcode(node, NAME) == dns.rcode.NXDOMAIN for node in nodes)
        rbl_command(config_path, "list", "add", "45.9.9.9", "--reason", "node test")
        converge(nodes, NAME, dns.rcode.NOERROR)
        rbl_command(config_path, "delist", "45.9.9.9", "--reason", "node test", "--yes")
        converge(nodes, NAME, dns.rcode.NXDOMAIN)
        soa = [
            dns.query.udp(
                dns.message.make_query("bl.example.org", "SOA"),
                node.host,
                port=node.port,
                timeout=3,
            )
            .answer[0][0]
            .serial
            for node in nodes
        ]
        assert soa[0] == soa[1] > 0  # serials follow the shared change log
    finally:
        for node in nodes:
            stop_server(node)
