"""scripts/bench-dns on a small list: rbl and Debian's rbldnsd must give the same answers.

This keeps the benchmark runnable and is the suite's fidelity check against
the reference implementation; speed figures belong in docs/BENCHMARKS.md,
so nothing here asserts a rate.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import REPO, subprocess_env

pytestmark = pytest.mark.slow

RBLDNSD = shutil.which("rbldnsd") or (
    "/usr/sbin/rbldnsd" if Path("/usr/sbin/rbldnsd").exists() else None
)
DNSPERF = shutil.which("dnsperf")


def test_small_benchmark_run_gives_identical_answers(tmp_path: Path) -> None:
    if RBLDNSD is None or DNSPERF is None:
        if os.environ.get("CI"):
            pytest.fail("rbldnsd and dnsperf must be installed in CI (scripts/test does it)")
        pytest.skip("rbldnsd or dnsperf not installed")
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "bench-dns"),
            "--listings",
            "3000",
            "--sample",
            "300",
            "--queries",
            "2000",
            "-l",
            "1",
            "--rounds",
            "1",
            "--pause",
            "0",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=subprocess_env(),
        cwd=REPO,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(out.read_text())
    assert report["answers"]["mismatches"] == 0
    assert report["answers"]["unexpected"] == 0
    assert report["answers"]["questions"] >= 300
    for server in ("rbl", "rbldnsd"):
        assert report["dnsperf"][server]["qps_median"] > 0
        assert report["dnsperf"][server]["lost_pct_max"] < 50
    assert report["load"]["rbl_listings_loaded"] == 3000
