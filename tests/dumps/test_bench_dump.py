"""scripts/bench-dump stays runnable; its figures belong in docs/BENCHMARKS.md."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import REPO, subprocess_env

pytestmark = pytest.mark.slow


def test_small_bench_dump_run(tmp_path: Path) -> None:
    argv = [sys.executable, str(REPO / "scripts" / "bench-dump"), "--listings", "2000"]
    argv += ["--rounds", "1", "--json", str(tmp_path / "out.json")]
    result = subprocess.run(
        argv,
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    results = json.loads((tmp_path / "out.json").read_text())
    assert results["listings"] == 2000
    assert results["bytes"]["bl.example.org.zone"] > 2000 * 40
