"""``rbl serve --workers N``: several processes share the DNS ports and stay supervised."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import dns.message
import dns.query
import dns.rcode
import pytest

from tests.conftest import rbl_command, start_server, stop_server

pytestmark = pytest.mark.slow


def children(pid: int) -> set[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return {int(line) for line in found.stdout.split()}


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def wait(predicate, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met"
        time.sleep(0.05)


def test_workers_share_the_port_follow_changes_and_are_supervised(config_path: Path) -> None:
    server = start_server(config_path, "--workers", "3")
    try:
        workers = server.info["workers"]
        assert isinstance(workers, list) and len(workers) == 2
        wait(lambda: all(w in children(server.process.pid) for w in workers))
        name = "5.5.5.45.bl.example.org"
        rbl_command(config_path, "list", "add", "45.5.5.5", "--reason", "workers")

        def answered_by_all() -> bool:
            # Fresh source ports spread queries over the workers; all must agree.
            return all(
                dns.query.udp(
                    dns.message.make_query(name, "A"), server.host, port=server.port, timeout=3
                ).rcode()
                == dns.rcode.NOERROR
                for _ in range(30)
            )

        wait(answered_by_all, timeout=5)
        os.kill(workers[0], signal.SIGKILL)
        wait(lambda: len(children(server.process.pid) - {workers[0]}) == 2)  # restarted
        wait(answered_by_all, timeout=10)
    finally:
        stop_server(server)
    assert server.process.returncode == 0
    wait(lambda: not any(alive(w) for w in workers), timeout=15)
