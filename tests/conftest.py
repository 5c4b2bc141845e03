"""Shared fixtures: configuration files, a real SQLite store, a real ``rbl serve`` on loopback."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

CONFIG_TEMPLATE = """
[dns]
listen = ["127.0.0.1:0"]

[database]
url = "sqlite:///{db}"

[sync]
poll_interval = 0.1

[[zones]]
name = "bl.example.org"
kind = "ip"
ttl = 300
ns = ["ns1.example.org", "ns2.example.net"]
default_code = "127.0.0.2"
txt = "Listed: {{url}}"
lookup_url = "https://www.example.org/lookup/{{key}}"

[zones.soa]
rname = "hostmaster@example.org"
minimum = 120

[[zones]]
name = "dbl.example.org"
kind = "domain"
ttl = 600
ns = ["ns1.example.org"]
default_code = "127.0.1.2"
txt = "Domain {{key}} listed"
"""


def write_config(directory: Path, db_name: str = "rbl.sqlite") -> Path:
    path = directory / "rbl.toml"
    path.write_text(CONFIG_TEMPLATE.format(db=directory / db_name))
    return path


@pytest.fixture
def config_path(tmp_path: Path) -> Path:
    return write_config(tmp_path)


def rbl_command(
    config: Path, *args: str, check: bool = True, stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real ``rbl`` CLI in a subprocess."""
    return subprocess.run(
        [sys.executable, "-m", "rbl", "-c", str(config), "--actor", "tester", *args],
        capture_output=True,
        text=True,
        check=check,
        input=stdin,
        env=subprocess_env(),
        timeout=120,
    )


def subprocess_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    host: str
    port: int
    info: dict[str, object]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def start_server(config: Path, *extra: str, timeout: float = 60.0) -> RunningServer:
    ready = config.parent / f"ready-{time.monotonic_ns()}.json"
    log_path = config.parent / f"serve-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rbl",
                "-c",
                str(config),
                "serve",
                "--ready-file",
                str(ready),
                *extra,
            ],
            stdout=log_file,
            stderr=subprocess.STDOUT,
            env=subprocess_env(),
        )
    deadline = time.monotonic() + timeout
    while not ready.exists():
        if process.poll() is not None:
            raise AssertionError(f"rbl serve exited {process.returncode}:\n{log_path.read_text()}")
        if time.monotonic() > deadline:
            process.kill()
            raise AssertionError(f"rbl serve not ready in {timeout}s:\n{log_path.read_text()}")
        time.sleep(0.05)
    info = json.loads(ready.read_text())
    endpoint = info["dns"][0]
    return RunningServer(process, endpoint["host"], endpoint["port"], info, log_path)


def stop_server(server: RunningServer) -> None:
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=15)


@pytest.fixture
def serve(config_path: Path) -> Iterator[RunningServer]:
    """A real ``rbl serve`` on 127.0.0.1 with an ephemeral port (same number for UDP and TCP)."""
    server = start_server(config_path)
    try:
        yield server
    finally:
        stop_server(server)
