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

from tests.support.config import database_url_of
from tests.support.processes import rbl_command
from tests.support.server import start_server, stop_server

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


def test_workers_get_the_database_url_in_their_environment_never_in_argv(
    config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any local user reads /proc/PID/cmdline: a PostgreSQL password must not be there."""
    url = database_url_of(config_path)
    secret = url.split("://", 1)[1].split("@", 1)[0] if "@" in url else url.split("///")[1]
    # The file names a database nobody else uses: answering the listing proves the
    # workers use the URL from the environment.
    text = config_path.read_text().replace(repr(url), repr(f"sqlite:///{config_path.parent}/x"))
    config_path.write_text(text)
    monkeypatch.setenv("RBL_DATABASE_URL", url)
    server = start_server(config_path, "--workers", "3")
    try:
        workers = server.info["workers"]
        assert isinstance(workers, list) and len(workers) == 2
        for pid in [server.process.pid, *workers]:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            assert "serve" in cmdline
            assert secret not in cmdline and "--database" not in cmdline, cmdline
        rbl_command(config_path, "list", "add", "45.5.5.6", "--reason", "workers")
        query = dns.message.make_query("6.5.5.45.bl.example.org", "A")

        def answered_by_all() -> bool:
            return all(
                dns.query.udp(query, server.host, port=server.port, timeout=3).rcode()
                == dns.rcode.NOERROR
                for _ in range(30)
            )

        wait(answered_by_all, timeout=10)
    finally:
        stop_server(server)
    assert server.process.returncode == 0
