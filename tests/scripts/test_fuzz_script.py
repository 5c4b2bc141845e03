"""scripts/fuzz-dns on a small count: the server survives, and the script notices when it does not.

The million-packet run is for docs/RELIABILITY.md; here 20,000 packets keep
the script and its checks working. The control kills the server mid-run and
expects the script to fail and say so, so a script that always passed would
fail this test.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.processes import REPO, subprocess_env

pytestmark = pytest.mark.slow

SCRIPT = REPO / "scripts" / "fuzz-dns"


def run_script(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=300,
        env=subprocess_env(),
        cwd=REPO,
    )


def test_small_run_survives_and_reports(tmp_path: Path) -> None:
    result = run_script("--count", "20000", "--tcp-connections", "60", "--json")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert report["failures"] == []
    assert report["server_alive"] is True
    assert report["answers_after"] == "correct"
    udp = report["udp"]
    assert udp["packets_sent"] == 20_000
    assert sum(udp["kinds"].values()) == 20_000
    assert set(udp["kinds"]) >= {"random", "mutated", "truncated", "crafted"}
    assert udp["probes_answered"] == 100  # one every 200 packets, each one correct
    assert udp["replies_checked_by_dnspython"] > 0
    assert udp["malformed_replies"] == 0
    assert 0 < udp["replies_expected"] < 20_000  # responses and runts get no reply
    tcp = report["tcp"]
    assert tcp["connections"] == 60
    assert tcp["messages_sent"] >= 60
    assert tcp["pipelined_answers"] == "240/240"  # 12 pipelining connections x 20 queries
    rss = report["rss_mib"]
    assert rss["samples"] > 0
    assert 0 < rss["start"] <= rss["max"] <= rss["vmhwm"]
    assert rss["growth"] <= rss["max_growth_allowed"]


def test_the_same_seed_sends_the_same_mix() -> None:
    fuzz = load_script()
    seeds = [b"\x00\x01\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01a\x00\x00\x01\x00\x01"]
    one = fuzz.Fuzzer(fuzz.random.Random(7), seeds)
    two = fuzz.Fuzzer(fuzz.random.Random(7), seeds)
    assert [one.packet() for _ in range(2000)] == [two.packet() for _ in range(2000)]
    assert one.kinds == two.kinds


def test_a_server_killed_mid_run_fails_the_run(tmp_path: Path) -> None:
    """Control: kill rbl serve while the script sends; it must exit 1 and name the cause."""
    workdir = tmp_path / "work"
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--count", "5000000", "--json", "--workdir", str(workdir)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
        cwd=REPO,
    )
    try:
        assert process.stderr is not None
        for line in process.stderr:  # wait until the UDP phase has begun
            if "fuzzing started" in line:
                break
        else:
            pytest.fail(f"the script never started fuzzing (exit {process.wait()})")
        pid = json.loads((workdir / "rbl.ready").read_text())["pid"]
        time.sleep(0.5)  # let some packets through first; the outcome does not depend on it
        os.kill(pid, signal.SIGKILL)
        stdout, _ = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 1
    report = json.loads(stdout)
    assert report["ok"] is False
    assert report["server_alive"] is False
    assert any("killed by signal 9" in failure for failure in report["failures"])
    assert 0 < report["udp"]["packets_sent"] < 5_000_000


def test_growth_over_the_limit_fails_the_run() -> None:
    """Control for the memory check: a limit below any growth (-1 MiB) must fail the run."""
    result = run_script(
        "--count", "3000", "--tcp-connections", "50", "--json", "--max-growth-mib", "-1"
    )
    assert result.returncode == 1, result.stderr[-3000:]
    report = json.loads(result.stdout)
    assert report["server_alive"] is True
    assert report["answers_after"] == "correct"
    (failure,) = report["failures"]
    assert "over --max-growth-mib -1" in failure


def load_script() -> ModuleType:
    loader = importlib.machinery.SourceFileLoader("fuzz_dns", str(SCRIPT))
    spec = importlib.util.spec_from_loader("fuzz_dns", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_dns"] = module  # dataclasses look their module up there
    loader.exec_module(module)
    return module
