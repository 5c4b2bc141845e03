"""``rbl doctor`` against a real running server, and against nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.ports import free_port
from tests.support.processes import rbl_command
from tests.support.server import RunningServer

pytestmark = pytest.mark.slow


def test_doctor_passes_against_a_running_server(serve: RunningServer, config_path: Path) -> None:
    result = rbl_command(config_path, "doctor", "--server", f"{serve.host}:{serve.port}")
    assert result.returncode == 0, result.stdout
    assert "OK    database: schema revision" in result.stdout
    assert "OK    2.0.0.127.bl.example.org A" in result.stdout
    assert "OK    invalid.dbl.example.org A" in result.stdout
    assert result.stdout.rstrip().endswith("all checks passed")


def test_doctor_fails_when_nothing_answers(config_path: Path) -> None:
    result = rbl_command(
        config_path, "doctor", "--server", "127.0.0.1:9", "--timeout", "0.2", check=False
    )
    assert result.returncode == 1
    assert "FAIL  2.0.0.127.bl.example.org A at 127.0.0.1:9" in result.stdout
    assert "check(s) failed" in result.stdout


def test_doctor_checks_every_configured_port(config_path: Path) -> None:
    from tests.support.server import start_server, stop_server

    web, policy, metrics = free_port(), free_port(), free_port()
    config_path.write_text(
        config_path.read_text()
        + f'\n[web]\nlisten = "127.0.0.1:{web}"\n'
        + f'\n[feeds.policy]\nlisten = "127.0.0.1:{policy}"\n'
        + f'\n[metrics]\nlisten = "127.0.0.1:{metrics}"\n'
    )
    server = start_server(config_path)
    try:
        dns_at = f"{server.host}:{server.port}"
        result = rbl_command(config_path, "doctor", "--server", dns_at)
        assert result.returncode == 0, result.stdout
        for line in (
            f"OK    bl.example.org SOA over TCP at {dns_at}: serial",
            f"OK    lookup site at 127.0.0.1:{web}: GET / answered 200",
            f"OK    policy feed at 127.0.0.1:{policy}: answered action=DUNNO",
            f"OK    metrics at 127.0.0.1:{metrics}: GET /metrics answered 200",
        ):
            assert line in result.stdout, result.stdout
    finally:
        stop_server(server)
    # The same checks against nothing: each port fails by name.
    result = rbl_command(config_path, "doctor", "--server", dns_at, "--timeout", "0.3", check=False)
    assert result.returncode == 1
    assert f"FAIL  lookup site at 127.0.0.1:{web}" in result.stdout
    assert f"FAIL  policy feed at 127.0.0.1:{policy}" in result.stdout
    assert f"FAIL  metrics at 127.0.0.1:{metrics}" in result.stdout
    assert f"FAIL  bl.example.org SOA over TCP at {dns_at}" in result.stdout
