"""``rbl doctor`` against a real running server, and against nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import RunningServer, rbl_command

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
