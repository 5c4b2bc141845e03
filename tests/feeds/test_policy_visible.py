"""A trap hit's policy answer comes once its listing is in DNS, in every process.

A real ``rbl serve`` (one process, and ``--workers 2``) follows the change log
only every 30 s here, far longer than ``commit_timeout``: the answer can only
come in time, with the listing visible, if the hit's write has every DNS
process read the change log at once. Right after each answer, many queries
from fresh source ports (SO_REUSEPORT spreads them over the processes) all
see the listing, and /metrics shows every process's index at the hit's
change-log id.
"""

from __future__ import annotations

import statistics
import time
import urllib.request
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support import policy_requests
from tests.support.database import db_scalar
from tests.support.processes import rbl_command
from tests.support.server import start_server, stop_server

pytestmark = pytest.mark.slow

SETTINGS = """
[feeds.policy]
listen = "127.0.0.1:0"
commit_timeout = "5s"

[metrics]
listen = "127.0.0.1:0"
"""
HITS = 20
QUERIES = 20  # per hit: 2 processes all missed by chance once in 500,000 hits


def policy_request(host: str, port: int, **attributes: str) -> bytes:
    return policy_requests.policy_request(host, port, timeout=10, **attributes)


def metrics(address: dict[str, object]) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    url = f"http://{address['host']}:{address['port']}/metrics"
    with urllib.request.urlopen(url, timeout=10) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


@pytest.mark.parametrize("workers", [1, 2])
def test_a_trap_hit_is_answered_once_every_dns_process_shows_its_listing(
    config_path: Path, workers: int
) -> None:
    text = config_path.read_text().replace("poll_interval = 0.1", "poll_interval = 30")
    config_path.write_text(text + SETTINGS)
    rbl_command(config_path, "traps", "add", "trap@example.org")
    server = start_server(config_path, "--workers", str(workers))
    try:
        policy, address = server.info["policy"], server.info["metrics"]
        assert isinstance(policy, dict) and isinstance(address, dict)

        def processes_ready() -> bool:
            positions = [
                v for (n, _), v in metrics(address).items() if n == "rbl_change_log_position"
            ]
            return len(positions) == workers

        deadline = time.monotonic() + 30
        while not processes_ready():  # each worker's first report
            assert time.monotonic() < deadline, "workers never reported"
            time.sleep(0.1)
        latencies = []
        for n in range(HITS):
            ip = f"45.7.{n}.9"
            name = f"9.{n}.7.45.bl.example.org"
            query = dns.message.make_query(name, "A")
            assert dns.query.udp(query, server.host, port=server.port, timeout=3).rcode() == (
                dns.rcode.NXDOMAIN
            )
            started = time.monotonic()
            answer = policy_request(
                policy["host"],
                policy["port"],
                client_address=ip,
                sender="offer@spam.example",
                recipient="trap@example.org",
            )
            latencies.append(time.monotonic() - started)
            assert answer == b"action=DUNNO\n\n"
            rcodes = [
                dns.query.udp(query, server.host, port=server.port, timeout=3).rcode()
                for _ in range(QUERIES)
            ]
            assert rcodes == [dns.rcode.NOERROR] * QUERIES, (n, rcodes)
        assert max(latencies) < 5.0, latencies  # none waited out commit_timeout
        newest = db_scalar(config_path, "SELECT max(id) FROM change_log")
        samples = metrics(address)
        positions = {
            dict(labels)["worker"]: v
            for (n, labels), v in samples.items()
            if n == "rbl_change_log_position"
        }
        assert len(positions) == workers and set(positions.values()) == {newest}, positions
        assert samples[("rbl_policy_visibility_waits_total", frozenset())] == HITS
        assert samples[("rbl_policy_visibility_timeouts_total", frozenset())] == 0
        assert samples[("rbl_policy_deferred_total", frozenset())] == 0
        # A second hit from a listed address changes nothing in DNS: answered at commit.
        answer = policy_request(
            policy["host"],
            policy["port"],
            client_address="45.7.0.9",
            sender="again@spam.example",
            recipient="trap@example.org",
        )
        assert answer == b"action=DUNNO\n\n"
        samples = metrics(address)
        assert samples[("rbl_policy_visibility_waits_total", frozenset())] == HITS
        print(
            f"workers={workers}: hit answered and visible after median "
            f"{statistics.median(latencies) * 1000:.1f} ms, max {max(latencies) * 1000:.1f} ms"
        )
    finally:
        stop_server(server)
    assert server.process.returncode == 0
