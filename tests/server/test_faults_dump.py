"""The mirror dump under kill -9 and database outages: no partial file is ever served.

A store of 300k listings makes one dump take seconds; ``rbl serve`` is
killed at seeded random moments of it, and ``write_dumps`` in a subprocess
is killed between its renames (the window where two generations meet).
After each kill every file under a final name must parse completely,
temporary files must be invisible over HTTP and rsync, and after a restart
the directory must hold one generation that ``sha256sum -c`` verifies.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from twisted.internet import defer, task
from twisted.web.test.requesthelper import DummyRequest

from rbl.config import load_settings
from rbl.dumps.publish import JOURNAL_NAME, TEMP_MARK, finish_interrupted_commit
from rbl.dumps.resource import DumpResource
from rbl.dumps.service import DumpService
from rbl.store.database import open_engine
from rbl.store.reader import ListingReader
from tests.support.config import write_config
from tests.support.ports import free_port
from tests.support.processes import REPO, rbl_command, subprocess_env
from tests.support.server import start_server, stop_server

pytestmark = pytest.mark.slow

SEED = 5782
LISTINGS = 300_000
IP_ZONE = "bl.example.org"
DOMAIN_ZONE = "dbl.example.org"
SERVED = """
[web]
listen = "127.0.0.1:0"

[dumps]
directory = "{directory}"
interval = "1h"
"""


@pytest.fixture
def public_dir() -> Iterator[Path]:
    """World-readable (tmp_path is 0700): the rsync daemon reads as nobody when run as root."""
    path = Path(tempfile.mkdtemp(prefix="rbl-dump-faults-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def fill(database: Path, count: int, seed: int = SEED) -> None:
    """``count`` random IPv4 /32 listings straight through sqlite3 (``rbl list import``'s rows)."""
    open_engine(f"sqlite:///{database}").dispose()
    rng = random.Random(seed)
    seen: set[int] = set()
    while len(seen) < count:
        address = rng.getrandbits(32)
        if address >> 24 not in (0, 10, 127) and address >> 24 < 224:
            seen.add(address)
    now = datetime(2026, 11, 23, 12, tzinfo=UTC).isoformat(sep=" ")
    rows = [
        (IP_ZONE, f"{v >> 24}.{v >> 16 & 255}.{v >> 8 & 255}.{v & 255}", v.to_bytes(4, "big"))
        for v in sorted(seen)
    ]
    connection = sqlite3.connect(database)
    with connection:
        connection.executemany(
            "INSERT INTO listings (zone, key, family, prefixlen, network, codes, txt, reason, "
            "source, state, created_at, updated_at, hit_count, times_listed) "
            f"VALUES (?, ?, 4, 32, ?, '127.0.0.2', NULL, 'bulk', 'manual', 'active', "
            f"'{now}', '{now}', 0, 1)",
            rows,
        )
        connection.execute(
            "INSERT INTO change_log (zone, key, op, codes, created_at) "
            f"VALUES (?, 'bulk', 'set', '127.0.0.2', '{now}')",
            (IP_ZONE,),
        )
    connection.close()


def final_files(directory: Path) -> list[Path]:
    return sorted(
        p
        for p in directory.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(directory).parts)
    )


def temporaries(directory: Path) -> list[Path]:
    return sorted(p for p in directory.rglob(f"*{TEMP_MARK}*") if p.is_file())


def assert_complete(directory: Path) -> int:
    """Every file under a final name parses to its end; returns how many were checked."""
    checked = 0
    for path in final_files(directory):
        data = path.read_bytes()
        name = path.name
        if name.endswith(".gz"):
            data = gzip.decompress(data)  # raises on a truncated member
            name = name[:-3]
        if name == "summary.json":
            json.loads(data)
        elif name.endswith((".txt", ".ip4set", ".ip6trie", ".dnset", ".zone", ".csv")) or (
            name == "SHA256SUMS"
        ):
            assert data.endswith(b"\n"), f"{path} does not end with a newline"
        if name.endswith(".zone") and not path.name.endswith(".gz"):
            origin = name.removesuffix(".zone")
            check = subprocess.run(
                ["named-checkzone", "-q", origin, str(path)],
                capture_output=True,
                text=True,
                timeout=120,
                check=False,
            )
            assert check.returncode == 0, f"{path}: {check.stdout}{check.stderr}"
        checked += 1
    return checked


def sums_verify(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sha256sum", "--check", "--strict", "--quiet", "SHA256SUMS"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def fetch(url: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=20) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_for(predicate: Any, what: str, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def dump_done(server: Any) -> bool:
    return "dumped 2 zone(s)" in server.log()


KILLS = 5


def test_kill_9_of_serve_mid_dump_never_leaves_a_partial_file(
    tmp_path: Path, public_dir: Path
) -> None:
    out = public_dir / "dumps"
    config = write_config(tmp_path, extra=SERVED.format(directory=out))
    fill(tmp_path / "rbl.sqlite", LISTINGS)
    rbl_command(config, "list", "add", "spam.example", "--zone", DOMAIN_ZONE, "--reason", "x")
    server = start_server(config)  # one complete generation to start from
    try:
        wait_for(lambda: dump_done(server), "the first dump")
        found = re.search(r"dumped 2 zone\(s\) to \S+ in ([0-9.]+)s", server.log())
        assert found is not None, server.log()
        seconds = float(found.group(1))
    finally:
        stop_server(server)
    first = sums_verify(out)
    assert first.returncode == 0, first.stdout
    rng = random.Random(SEED)
    kills_in_window = 0
    left_behind = []  # temporary files each kill left
    for kill in range(KILLS):
        rbl_command(config, "list", "add", f"45.9.{kill}.0/24", "--reason", f"kill {kill}")
        server = start_server(config)
        time.sleep(rng.uniform(0, seconds * 1.2))  # the dump starts with the service
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(timeout=30)
        assert_complete(out)  # raises on any partial file
        left_behind.append(len(temporaries(out)))
        if (out / JOURNAL_NAME).exists():
            kills_in_window += 1  # between the first and the last rename
        elif (out / "SHA256SUMS").exists():
            assert sums_verify(out).returncode == 0, "sums disagree outside the rename window"

    # A temporary file of a live writer (this test's PID), and the killed dumps' leftovers.
    stale = temporaries(out)
    live = out / IP_ZONE / f".{IP_ZONE}.txt{TEMP_MARK}{os.getpid()}-feed.tmp"
    live.write_text("45.9.9.9\n")
    port = free_port()
    rsyncd = subprocess.Popen(
        [str(REPO / "scripts" / "rsyncd-dumps"), str(out), str(port), "127.0.0.1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    server = start_server(config)
    try:
        web = server.info["web"]
        assert isinstance(web, dict)
        base = f"http://127.0.0.1:{web['port']}/dumps"
        assert fetch(f"{base}/")[0] == 404  # no directory listing
        for path in [live, *stale]:
            assert fetch(f"{base}/{path.relative_to(out).as_posix()}")[0] == 404
        status, sums = fetch(f"{base}/SHA256SUMS")
        assert status == 200 and TEMP_MARK.encode() not in sums
        wait_for(lambda: rsync_ready(port), "the rsync daemon")
        listing = subprocess.run(
            ["rsync", "-r", "--list-only", f"rsync://127.0.0.1:{port}/dumps/"],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert f"{IP_ZONE}.txt" in listing.stdout and TEMP_MARK not in listing.stdout
        direct = subprocess.run(
            ["rsync", f"rsync://127.0.0.1:{port}/dumps/{live.relative_to(out)}", str(tmp_path)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert direct.returncode != 0 and not (tmp_path / live.name).exists()
        wait_for(lambda: dump_done(server), "the dump after the restart")
        assert not (out / JOURNAL_NAME).exists()
        assert temporaries(out) == [live]  # the dead writers' files are gone, the live one kept
        live.unlink()
        checked = assert_complete(out)
        verified = sums_verify(out)
        assert verified.returncode == 0, verified.stdout
        status, body = fetch(f"{base}/{IP_ZONE}/{IP_ZONE}.txt")
        assert status == 200 and b"45.9.4.0/24" in body
        assert body.count(b"\n") >= LISTINGS
    finally:
        stop_server(server)
        os.killpg(rsyncd.pid, signal.SIGTERM)
        rsyncd.wait(timeout=30)
    print(
        f"FIGURES kill-9 serve mid-dump: kills={KILLS} in_rename_window={kills_in_window} "
        f"temporaries_after_each_kill={left_behind} files_checked={checked} partial=0 "
        f"dump_seconds={seconds}"
    )


def rsync_ready(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


CRASH_SCRIPT = """
import os, signal, sys
from datetime import UTC, datetime
from pathlib import Path
from rbl.config import load_settings
from rbl.dumps import publish, writer
from rbl.store.reader import ListingReader

config, directory, after = sys.argv[1], Path(sys.argv[2]), int(sys.argv[3])
settings = load_settings(config)
real, renamed = os.replace, [0]

def replace(source, target):
    if not str(target).endswith(publish.JOURNAL_NAME):
        if renamed[0] == after:
            os.kill(os.getpid(), signal.SIGKILL)
        renamed[0] += 1
    real(source, target)

os.replace = replace
writer.write_dumps(settings, ListingReader(settings.database.url), directory, datetime.now(UTC))
"""


@pytest.mark.parametrize("after", [0, 1, 7, 18])
def test_kill_9_between_renames_is_finished_before_anything_else(
    tmp_path: Path, after: int
) -> None:
    config = write_config(tmp_path)
    out = tmp_path / "dumps"
    rbl_command(config, "list", "add", "192.0.2.0/24", "--reason", "old")
    rbl_command(config, "dump", "--directory", str(out))
    old = {p: p.read_bytes() for p in final_files(out)}
    rbl_command(config, "list", "add", "198.51.100.0/24", "--reason", "new")
    crash = subprocess.run(
        [sys.executable, "-c", CRASH_SCRIPT, str(config), str(out), str(after)],
        capture_output=True,
        text=True,
        env=subprocess_env(),
        timeout=120,
        check=False,
    )
    assert crash.returncode == -signal.SIGKILL, crash.stderr
    assert (out / JOURNAL_NAME).exists()
    assert_complete(out)  # a mix of generations, but no partial file
    changed = [p for p, data in old.items() if p.read_bytes() != data]
    assert len(changed) <= after  # only what was renamed before the kill
    if changed:
        # What a mirror syncing now sees: the renamed files disagree with the old SHA256SUMS.
        assert sums_verify(out).returncode != 0
    # The next dump finishes the renames before it reads the database (here: none at all).
    finished = finish_interrupted_commit(out)
    assert not (out / JOURNAL_NAME).exists() and temporaries(out) == []
    assert len(finished) + after == len(old)  # SHA256SUMS and summaries included
    verified = sums_verify(out)
    assert verified.returncode == 0, verified.stdout
    assert b"198.51.100.0/24" in (out / IP_ZONE / f"{IP_ZONE}.txt").read_bytes()
    assert finish_interrupted_commit(out) == []  # idempotent


# -- the database unavailable --------------------------------------------------------------


def synchronous(fn: Any, *args: Any) -> defer.Deferred[Any]:
    return defer.maybeDeferred(fn, *args)


def get(resource: DumpResource, path: str) -> DummyRequest:
    request = DummyRequest([segment.encode() for segment in path.split("/")])
    request.method = b"GET"
    result = resource.render(request)
    if isinstance(result, bytes):
        request.write(result)
        request.finish()
    return request


def test_dump_with_the_database_down_keeps_the_previous_files(
    database_url: str, tmp_path: Path
) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("a SQLite file does not go away; the PostgreSQL server does")
    from tests.support.fault_proxy import Forwarder

    config = write_config(tmp_path, url=database_url)
    rbl_command(config, "list", "add", "192.0.2.0/24", "--reason", "first")
    parts = database_url.split("@", 1)[1].split("/", 1)[0].rsplit(":", 1)
    proxy = Forwarder(parts[0], int(parts[1]))
    reader = ListingReader(proxy.url(database_url))
    settings = load_settings(config)
    out = tmp_path / "dumps"
    clock = task.Clock()
    clock.advance(datetime(2026, 11, 23, 12, tzinfo=UTC).timestamp())
    service = DumpService(settings, reader, out, synchronous, clock, interval=600)
    try:
        service.startService()
        assert service.runs == 1 and sums_verify(out).returncode == 0
        before = {p: p.read_bytes() for p in final_files(out)}
        rbl_command(config, "list", "add", "198.51.100.0/24", "--reason", "second")
        proxy.cut()
        for attempt in range(1, 3):
            clock.advance(600)
            assert service.failures == attempt and service.runs == 1
            assert service.loop is not None and service.loop.running
            assert {p: p.read_bytes() for p in final_files(out)} == before
            assert temporaries(out) == []
            served = get(DumpResource(out), f"{IP_ZONE}/{IP_ZONE}.txt")
            assert served.responseCode in (None, 200)
            assert b"".join(served.written) == before[out / IP_ZONE / f"{IP_ZONE}.txt"]
        proxy.restore()
        clock.advance(600)
        assert service.runs == 2 and service.failures == 2
        assert sums_verify(out).returncode == 0
        assert b"198.51.100.0/24" in (out / IP_ZONE / f"{IP_ZONE}.txt").read_bytes()
    finally:
        service.stopService()
        reader.close()
        proxy.close()
