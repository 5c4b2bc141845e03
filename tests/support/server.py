"""A real ``rbl serve`` on loopback, as an object a test can ask (dnspython's nanonameserver).

``start_server`` runs ``rbl serve --ready-file`` on a configuration (every
listener on an ephemeral port, UDP and TCP on the same number) and returns once
the ready file names its endpoints; ``RunningServer.query`` asks its DNS port
through tests/support/dns_client.py. ``stop_server`` ends it with SIGTERM, as
an operator would.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import dns.message
import dns.name

from tests.support.dns_client import server_query
from tests.support.processes import stop, subprocess_env


@dataclass
class RunningServer:
    process: subprocess.Popen[bytes]
    host: str
    port: int
    info: dict[str, object]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def endpoint(self, name: str) -> tuple[str, int]:
        """Where the ready file says listener ``name`` (dns, policy, web, metrics...) is."""
        info = self.info[name]
        if isinstance(info, list):  # dns: one per listen address
            info = info[0]
        assert isinstance(info, dict), self.info
        return str(info["host"]), int(info["port"])

    def query(
        self,
        qname: dns.name.Name | str,
        rdtype: str | int = "A",
        *,
        tcp: bool = False,
        timeout: float = 3.0,
    ) -> dns.message.Message:
        """One query to the server's (first) DNS port, over UDP or TCP."""
        return server_query(self.host, self.port, qname, rdtype, tcp=tcp, timeout=timeout)


def start_server(
    config: Path, *extra: str, timeout: float = 60.0, env: dict[str, str] | None = None
) -> RunningServer:
    """``env``: variables added to the server's environment (``RBL_HOTPATH=0``, say)."""
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
            env=subprocess_env() | (env or {}),
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
    stop(server.process, timeout=15)
