"""scripts/rsyncd-dumps serves the dump read-only; a mirror's rsync copy verifies."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rbl.dumps.writer import write_dumps
from tests.support.dump_seed import seed
from tests.support.ports import free_port
from tests.support.processes import REPO

pytestmark = pytest.mark.slow


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """A directory the daemon's unprivileged user can read (pytest's tmp_path is 0700)."""
    path = Path(tempfile.mkdtemp(prefix="rbl-rsyncd-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def test_mirror_syncs_and_verifies(tmp_path: Path, public_dir: Path) -> None:
    if shutil.which("rsync") is None:
        if os.environ.get("CI"):
            pytest.fail("rsync is required in CI (apt-get install rsync)")
        pytest.skip("rsync not installed")
    seeded = seed(tmp_path)
    out = public_dir / "dumps"
    write_dumps(seeded.settings, seeded.reader, out, datetime.now(UTC))
    (out / "bl.example.org" / ".bl.example.org.zone.rbl-dump-1-ab.tmp").write_text("partial")
    port = free_port()
    log = (tmp_path / "rsyncd.log").open("wb")
    process = subprocess.Popen(
        [str(REPO / "scripts" / "rsyncd-dumps"), str(out), str(port), "127.0.0.1"],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            with socket.socket() as sock:
                if sock.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert process.poll() is None, (tmp_path / "rsyncd.log").read_text()
            assert time.monotonic() < deadline, "rsync daemon did not listen"
            time.sleep(0.1)
        mirror = tmp_path / "mirror"
        result = subprocess.run(
            ["rsync", "-rt", f"rsync://127.0.0.1:{port}/dumps/", f"{mirror}/"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr + (tmp_path / "rsyncd.log").read_text()
        check = subprocess.run(
            ["sha256sum", "--check", "--strict", "SHA256SUMS"],
            cwd=mirror,
            capture_output=True,
            text=True,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        assert not list(mirror.rglob(".*"))  # temporaries are not served
        upload = subprocess.run(
            ["rsync", "-r", str(tmp_path / "rsyncd.log"), f"rsync://127.0.0.1:{port}/dumps/"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert upload.returncode != 0  # read only
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)
        log.close()


def test_usage_message() -> None:
    result = subprocess.run(
        [str(REPO / "scripts" / "rsyncd-dumps")], capture_output=True, text=True, check=False
    )
    assert result.returncode == 2 and "usage:" in result.stderr
    missing = subprocess.run(
        [str(REPO / "scripts" / "rsyncd-dumps"), "/nonexistent/dumps"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert missing.returncode != 0 and "not a directory" in missing.stderr
