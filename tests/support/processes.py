"""Running ``rbl`` and its peers as subprocesses: the repository, their environment, the CLI.

A test that starts a process starts it from here, so every child finds this
checkout's ``rbl`` and ``tests`` packages; a test whose real peer (Postfix, Exim,
sendmail, NSD) this machine lacks skips through ``require_peer``, or fails in CI.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def subprocess_env() -> dict[str, str]:
    """This environment, with the checkout first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def rbl_process(config: Path, *args: str, output: bool = False) -> subprocess.Popen[str]:
    """The real ``rbl`` CLI started in the background (a follower, a long import): its
    output discarded, or piped as text with ``output``."""
    stream = subprocess.PIPE if output else subprocess.DEVNULL
    return subprocess.Popen(
        [sys.executable, "-m", "rbl", "-c", str(config), *args],
        stdout=stream,
        stderr=stream,
        text=True,
        env=subprocess_env(),
    )


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


def require_peer(reason: str | None, peer: str) -> None:
    """Skip a test whose real peer this machine lacks, but fail it in CI, which must run it."""
    if reason is None:
        return
    if os.environ.get("CI"):
        pytest.fail(f"CI must run the live {peer} test: {reason}")
    pytest.skip(reason)


def stop(process: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
    """SIGTERM, as an operator would; SIGKILL when it has not exited after ``timeout``."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=timeout)
