"""``rbl ingest`` as a real subprocess against a real store: counts, resume, kill -9, rotation."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy.exc import DBAPIError

from tests.support.database import db_scalar
from tests.support.processes import rbl_command, rbl_process, subprocess_env

pytestmark = pytest.mark.slow
START = datetime.now(UTC) - timedelta(hours=1)


def json_line(n: int, *, trap: bool = True) -> str:
    """A hit from a distinct public address; every other one to a non-trap recipient."""
    return json.dumps(
        {
            "time": (START + timedelta(seconds=n % 3000)).isoformat(),
            "ip": f"45.{(n >> 16) & 255}.{(n >> 8) & 255}.{n & 255}",
            "helo": f"host{n}.example.net",
            "from": f"seller{n}@spam.example",
            "to": "trap@example.org" if trap else "user@example.org",
        }
    )


def db_count(config: Path, sql: str) -> int:
    return int(db_scalar(config, sql))  # type: ignore[call-overload]


@pytest.fixture
def trapped(config_path: Path) -> Path:
    rbl_command(config_path, "traps", "add", "trap@example.org", "@abandoned.example")
    return config_path


def test_ingest_counts_reports_malformed_lines_and_lists(trapped: Path, tmp_path: Path) -> None:
    log = tmp_path / "feed.jsonl"
    lines = [
        json_line(1),
        json_line(2, trap=False),
        "{not json",
        "",
        json_line(3),
        json.dumps({"time": START.isoformat(), "ip": "300.1.1.1", "to": "trap@example.org"}),
    ]
    log.write_text("\n".join(lines) + "\n")
    result = rbl_command(trapped, "ingest", "--format", "json", str(log))
    assert "lines: 6  hits parsed: 3  malformed: 2" in result.stdout, result.stdout
    assert "not traps: 1  recorded: 0  listed: 2" in result.stdout
    assert f"malformed: {log}:3:" in result.stderr
    assert f"malformed: {log}:6:" in result.stderr and "300.1.1.1" in result.stderr
    assert db_count(trapped, "SELECT COUNT(*) FROM hits") == 2
    assert db_count(trapped, "SELECT COUNT(*) FROM listings WHERE state='active'") == 2
    shown = rbl_command(trapped, "show", "45.0.0.1")
    assert "45.0.0.1 in bl.example.org: active" in shown.stdout
    assert "to=<trap@example.org>" in shown.stdout and "host1.example.net" in shown.stdout
    again = rbl_command(trapped, "ingest", "--format", "json", str(log))
    assert "resumed after line 6" in again.stdout
    assert "lines: 0" in again.stdout
    assert db_count(trapped, "SELECT COUNT(*) FROM hits") == 2


def test_unknown_format_and_missing_file_are_clear_errors(trapped: Path, tmp_path: Path) -> None:
    bad = rbl_command(trapped, "ingest", "--format", "qmail", str(tmp_path), check=False)
    assert bad.returncode != 0 and "unknown log format 'qmail'" in bad.stderr
    missing = rbl_command(
        trapped, "ingest", "--format", "json", str(tmp_path / "nope"), check=False
    )
    assert missing.returncode != 0 and "no such file" in missing.stderr


def test_standard_input(trapped: Path) -> None:
    result = rbl_command(
        trapped,
        "ingest",
        "--format",
        "json",
        "-",
        stdin="\n".join(json_line(n) for n in range(5)) + "\n",
    )
    assert "lines: 5  hits parsed: 5" in result.stdout
    assert db_count(trapped, "SELECT COUNT(*) FROM hits") == 5


def test_kill_9_mid_ingest_then_rerun_counts_every_line_once(trapped: Path, tmp_path: Path) -> None:
    total = 60_000
    log = tmp_path / "big.jsonl"
    log.write_text("".join(json_line(n, trap=n % 4 != 0) + "\n" for n in range(total)))
    expected_hits = sum(1 for n in range(total) if n % 4 != 0)
    process = rbl_process(trapped, "ingest", "--format", "json", "--batch", "500", str(log))
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        time.sleep(0.05)
        try:
            if db_count(trapped, "SELECT COALESCE(MAX(lines), 0) FROM ingest_sources") >= 5000:
                break
        except DBAPIError:  # not created yet, or locked
            continue
    assert process.poll() is None, "ingest finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    committed = db_count(trapped, "SELECT lines FROM ingest_sources")
    assert 0 < committed < total
    result = rbl_command(trapped, "ingest", "--format", "json", str(log))
    assert f"resumed after line {committed}" in result.stdout
    assert db_count(trapped, "SELECT COUNT(*) FROM hits") == expected_hits
    assert db_count(trapped, "SELECT lines FROM ingest_sources") == total
    assert db_count(trapped, "SELECT COUNT(*) FROM listings") == expected_hits


def test_follow_survives_rotation_and_counts_exactly(trapped: Path, tmp_path: Path) -> None:
    log = tmp_path / "mail.jsonl"
    log.write_text("".join(json_line(n) + "\n" for n in range(10)))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "rbl",
            "-c",
            str(trapped),
            "ingest",
            "--format",
            "json",
            "--follow",
            "--poll",
            "0.05",
            "--batch",
            "3",
            str(log),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )
    try:
        wait_for_hits(trapped, 10)
        with log.open("a") as handle:
            handle.write("".join(json_line(n) + "\n" for n in range(10, 15)))
            handle.write(json_line(15)[:20])  # half a line: must wait for the rest
        wait_for_hits(trapped, 15)
        with log.open("a") as handle:
            handle.write(json_line(15)[20:] + "\n")
        log.rename(tmp_path / "mail.jsonl.1")  # rotation: a new file takes the name
        log.write_text("".join(json_line(n) + "\n" for n in range(16, 20)))
        wait_for_hits(trapped, 20)
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert db_count(trapped, "SELECT COUNT(*) FROM hits") == 20
    assert db_count(trapped, "SELECT COUNT(DISTINCT client_ip) FROM hits") == 20
    assert db_count(trapped, "SELECT COUNT(*) FROM ingest_sources") == 2


def wait_for_hits(config: Path, count: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            found = db_count(config, "SELECT COUNT(*) FROM hits")
        except DBAPIError:  # not created yet, or locked
            found = -1
        if found == count:
            return
        assert found < count, f"{found} hits, expected {count}"
        assert time.monotonic() < deadline, f"{found} hits after {timeout}s, expected {count}"
        time.sleep(0.05)


def test_batch_option_is_checked(trapped: Path, tmp_path: Path) -> None:
    result = rbl_command(
        trapped, "ingest", "--format", "json", "--batch", "0", "-", check=False, stdin=""
    )
    assert result.returncode != 0 and "--batch" in result.stderr


def test_follow_from_an_empty_log_resumes_the_same_file_after_a_restart(
    trapped: Path, tmp_path: Path
) -> None:
    """A log followed from its first byte (just rotated, still empty) is known by its
    first line once that line is whole; a restart then resumes it instead of reading
    it again as a new file."""
    log = tmp_path / "mail.jsonl"
    log.write_text("")
    command = [
        sys.executable, "-m", "rbl", "-c", str(trapped), "ingest", "--format", "json",
        "--follow", "--poll", "0.05", "--batch", "2", str(log),
    ]  # fmt: skip
    first = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=subprocess_env())  # fmt: skip
    try:
        time.sleep(0.5)  # it has opened the empty file
        with log.open("a") as handle:
            handle.write(json_line(0)[:15])  # the first line, half written
        time.sleep(0.3)
        with log.open("a") as handle:
            handle.write(json_line(0)[15:] + "\n" + "".join(json_line(n) + "\n" for n in (1, 2)))
        wait_for_hits(trapped, 3)
    finally:
        first.send_signal(signal.SIGTERM)
        first.communicate(timeout=30)
    with log.open("a") as handle:
        handle.write("".join(json_line(n) + "\n" for n in (3, 4)))
    second = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env=subprocess_env())  # fmt: skip
    try:
        wait_for_hits(trapped, 5)
    finally:
        second.send_signal(signal.SIGTERM)
        out, err = second.communicate(timeout=30)
    assert second.returncode == 0, err
    assert db_count(trapped, "SELECT COUNT(*) FROM ingest_sources") == 1
    assert db_count(trapped, "SELECT lines FROM ingest_sources") == 5
    assert "resumed after line 3" in out + err


def test_postfix_attempts_apart_merged_and_joined_across_batches(
    trapped: Path, tmp_path: Path
) -> None:
    """Issue 12: two smtpd processes in one second are two attempts; "hold" then "reject"
    of one RCPT (one pid) is one, and the summary says so; accepted mail to a trap is
    joined by queue id even with every line in its own batch."""
    stamp = START.strftime("%b %d %H:%M:%S")
    verdict = (
        f"{stamp} mx postfix/smtpd[{{pid}}]: NOQUEUE: {{action}}: RCPT from unknown[45.9.9.9]: "
        "554 5.7.1 <trap@example.org>: Recipient address rejected: no; "
        "from=<a@spam.example> to=<trap@example.org> proto=ESMTP helo=<pc9>"
    )
    lines = [
        verdict.format(pid=100, action="hold"),
        verdict.format(pid=100, action="reject"),
        verdict.format(pid=101, action="reject"),
        f"{stamp} mx postfix/smtpd[102]: 4C2B81E0F2A: client=unknown[45.8.8.8]",
        f"{stamp} mx postfix/qmgr[99]: 4C2B81E0F2A: from=<b@spam.example>, size=9, nrcpt=1 "
        "(queue active)",
        f"{stamp} mx postfix/virtual[103]: 4C2B81E0F2A: to=<trap@example.org>, relay=virtual, "
        "delay=0.1, delays=0/0/0/0.1, dsn=2.0.0, status=sent (delivered to maildir)",
        f"{stamp} mx postfix/qmgr[99]: 4C2B81E0F2A: removed",
    ]
    log = tmp_path / "mail.log"
    log.write_text("\n".join(lines) + "\n")
    result = rbl_command(trapped, "ingest", "--format", "postfix", "--batch", "1", str(log))
    assert "hits parsed: 4  malformed: 0" in result.stdout, result.stdout
    assert "duplicates merged: 1" in result.stdout
    assert db_count(trapped, "SELECT COUNT(*) FROM hits WHERE client_ip = '45.9.9.9'") == 2
    assert db_count(trapped, "SELECT COUNT(DISTINCT attempt) FROM hits") == 3
    joined = db_scalar(trapped, "SELECT raw FROM hits WHERE client_ip = '45.8.8.8'")
    assert isinstance(joined, str) and joined.count("\n") == 2 and "client=" in joined
