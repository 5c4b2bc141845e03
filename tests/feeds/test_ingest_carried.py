"""Messages in flight across two runs: what a parser held is carried with the position.

A Postfix message's client line in one run and its delivery in the next (a one-shot
``rbl ingest`` from cron, a follower killed and restarted), an Exim arrival and its
delivery lines, a sendmail refusal and its envelope's ``from=`` line: joined as if
the log had been read in one run. Real sample logs from tests/data/logs, cut at every
line; then the CLI on a growing file, a follower stopped between batches, and a
carried state the next run cannot read.
"""

from __future__ import annotations

import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from rbl.cli import main
from rbl.feeds.parsers import get_parser
from rbl.feeds.parsers.context import CARRIED_BYTES, ParseContext
from rbl.model.traphit import ParseError, TrapHit
from rbl.store.database import open_engine
from tests.support.config import database_url_of
from tests.support.database import db_scalar
from tests.support.processes import rbl_process

LOGS = Path(__file__).parents[1] / "data" / "logs"
NOW = datetime.now(UTC)


def lines_of(name: str) -> list[str]:
    text = (LOGS / name).read_text(encoding="utf-8", errors="surrogateescape")
    return [line for line in text.splitlines() if line.strip() and not line.startswith("#")]


def hits_of(fmt: str, lines: list[str], ctx: ParseContext) -> list[TrapHit]:
    parse = get_parser(fmt)
    found: list[TrapHit] = []
    for line in lines:
        with contextlib.suppress(ParseError):  # quarantined by ingest; the same in every run
            found += parse(line, ctx)
    return found


# (format, sample log, whether it holds joins a forgetful second run would lose)
JOINED = [
    ("postfix", "postfix.sources.log", True),
    ("postfix", "postfix.log", False),
    ("postfix", "postfix.hostile.log", False),
    ("exim", "exim.delivered.log", True),
    ("exim", "exim.log", False),
    ("sendmail", "sendmail.log", True),
]


@pytest.mark.parametrize(("fmt", "name", "joins"), JOINED)
def test_a_log_cut_anywhere_and_read_in_two_runs_gives_the_hits_of_one(
    fmt: str, name: str, joins: bool
) -> None:
    lines = lines_of(name)
    whole = hits_of(fmt, lines, ParseContext(now=NOW))
    lost_somewhere = False
    for cut in range(len(lines) + 1):
        first = ParseContext(now=NOW)
        before = hits_of(fmt, lines[:cut], first)
        carried = first.carry()
        second = ParseContext(now=NOW)
        assert second.resume(carried) == []
        assert before + hits_of(fmt, lines[cut:], second) == whole, f"cut before line {cut}"
        forgetful = before + hits_of(fmt, lines[cut:], ParseContext(now=NOW))
        lost_somewhere |= forgetful != whole
    assert lost_somewhere == joins  # without the carried state these joins are lost


def test_the_carried_state_is_json_text_a_database_holds_and_reads_back_equal() -> None:
    first = ParseContext(now=NOW)
    postfix, exim = lines_of("postfix.sources.log"), lines_of("exim.delivered.log")
    hits_of("postfix", postfix[: len(postfix) // 2], first)
    hits_of("exim", exim[: len(exim) // 2], first)
    carried = first.carry()
    assert carried is not None and carried.isascii()
    assert set(first.states) == {"postfix.queue", "exim.arrivals"}
    again = ParseContext(now=NOW)
    assert again.resume(carried) == []
    assert again.carry() == carried
    assert ParseContext(now=NOW).carry() is None  # nothing held: nothing written


@pytest.mark.parametrize(
    ("carried", "says"),
    [
        ("{not json", "is not JSON"),
        ("[1, 2]", "is not a JSON object"),
        ('{"postfix.queue": {"messages": [[1, 2]]}}', "'postfix.queue' is malformed"),
        ('{"sendmail": [["host", "qid", [["yesterday", "a@b", "raw", null]]]]}', "malformed"),
        ('{"exim.arrivals": [["1vABCD-000123-XY", "{}", []]]}', "malformed"),
        ('{"nobody.knows": []}', "belongs to no parser of this run"),
    ],
)
def test_a_carried_state_that_cannot_be_read_is_dropped_and_named(carried: str, says: str) -> None:
    ctx = ParseContext(now=NOW)
    (problem,) = ctx.resume(carried)
    assert says in problem
    assert ctx.carry() is None


# -- through the store and the CLI ---------------------------------------------------------


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["-c", str(config), "--actor", "tester", *args])


@pytest.fixture
def trapped(config_path: Path) -> Path:
    result = run(config_path, "traps", "add", "trap@example.org")
    assert result.exit_code == 0, result.output
    return config_path


def postfix_message(qid: str, ip: str) -> list[str]:
    stamp = f"{NOW:%b} {NOW.day:2d} {NOW:%H:%M:%S}"
    host = f"{stamp} mx postfix"
    return [
        f"{host}/smtpd[123]: {qid}: client=mail.example.net[{ip}]",
        f"{host}/cleanup[124]: {qid}: message-id=<x@example.net>",
        f"{host}/qmgr[99]: {qid}: from=<s@example.net>, size=2345, nrcpt=1 (queue active)",
        f"{host}/local[456]: {qid}: to=<trap@example.org>, relay=local, delay=0.1, "
        "delays=0.05/0/0/0.05, dsn=2.0.0, status=sent (delivered to mailbox)",
        f"{host}/qmgr[99]: {qid}: removed",
    ]


def append(path: Path, lines: list[str]) -> None:
    with path.open("a", encoding="utf-8") as out:
        out.writelines(line + "\n" for line in lines)


def hits_for(config: Path, ip: str) -> int:
    return int(db_scalar(config, f"SELECT count(*) FROM hits WHERE client_ip = '{ip}'"))  # type: ignore[call-overload]


def carried_in(config: Path) -> str:
    return str(db_scalar(config, "SELECT carried FROM ingest_sources"))


def wait_until(follower: subprocess.Popen[str], done: Callable[[], bool]) -> None:
    """Until ``done()``, while the follower runs (30 s at most)."""
    deadline = time.monotonic() + 30
    while not done():
        assert follower.poll() is None, "the follower ended"
        assert time.monotonic() < deadline, "not done in 30 s"
        time.sleep(0.05)


def test_one_shot_runs_join_a_message_whose_lines_straddle_them(
    trapped: Path, tmp_path: Path
) -> None:
    log = tmp_path / "mail.log"
    a, b = (
        postfix_message("4C2B81E0F2A", "198.51.100.7"),
        postfix_message("5D3C92F1A3B", "203.0.113.9"),
    )
    append(log, a[:2] + b[:3])  # both clients; b's sender too
    assert run(trapped, "ingest", "--format", "postfix", str(log)).exit_code == 0
    append(log, a[2:] + b[3:])  # cron's next run: the rest of both
    result = run(trapped, "ingest", "--format", "postfix", str(log))
    assert result.exit_code == 0, result.output
    assert "carried" not in result.output
    assert hits_for(trapped, "198.51.100.7") == hits_for(trapped, "203.0.113.9") == 1
    sender = db_scalar(trapped, "SELECT mail_from FROM hits WHERE client_ip = '203.0.113.9'")
    assert sender == "s@example.net"  # the qmgr line of the first run is in the evidence
    assert db_scalar(trapped, "SELECT carried FROM ingest_sources") is None  # all removed


def test_a_follower_killed_between_batches_joins_after_its_restart(
    trapped: Path, tmp_path: Path
) -> None:
    log = tmp_path / "mail.log"
    message = postfix_message("4C2B81E0F2A", "198.51.100.7")
    append(log, message[:2])
    follower = rbl_process(trapped, "ingest", "--follow", "--format", "postfix", str(log))
    try:
        wait_until(follower, lambda: "4C2B81E0F2A" in carried_in(trapped))
    finally:
        follower.kill()  # kill -9: nothing but what was committed survives
        follower.wait()
    append(log, message[2:])
    result = run(trapped, "ingest", "--format", "postfix", str(log))
    assert result.exit_code == 0, result.output
    assert hits_for(trapped, "198.51.100.7") == 1


def test_an_unreadable_carried_state_is_reported_and_the_run_goes_on(
    trapped: Path, tmp_path: Path
) -> None:
    log = tmp_path / "mail.log"
    first = postfix_message("4C2B81E0F2A", "198.51.100.7")
    append(log, first[:1])
    assert run(trapped, "ingest", "--format", "postfix", str(log)).exit_code == 0
    engine = open_engine(database_url_of(trapped))
    try:
        with engine.begin() as conn:
            from sqlalchemy import text

            conn.execute(text("UPDATE ingest_sources SET carried = '{broken'"))
    finally:
        engine.dispose()
    append(log, first[1:] + postfix_message("5D3C92F1A3B", "203.0.113.9"))
    result = run(trapped, "ingest", "--format", "postfix", str(log))
    assert result.exit_code == 0, result.output
    assert "the carried state is not JSON" in result.output
    assert hits_for(trapped, "198.51.100.7") == 0  # its client line went with the state
    assert hits_for(trapped, "203.0.113.9") == 1  # the rest is read as ever


def test_a_follower_takes_a_session_across_the_rotation_of_its_log(
    trapped: Path, tmp_path: Path
) -> None:
    log = tmp_path / "mail.log"
    message = postfix_message("4C2B81E0F2A", "198.51.100.7")
    append(log, message[:3])  # client, cleanup, qmgr: then logrotate
    follower = rbl_process(
        trapped,
        "ingest",
        "--follow",
        "--poll",
        "0.05",
        "--format",
        "postfix",
        str(log),
        output=True,
    )
    try:
        wait_until(follower, lambda: "4C2B81E0F2A" in carried_in(trapped))
        log.rename(tmp_path / "mail.log.1")
        append(log, message[3:])  # the delivery and the removal, in the new file
        wait_until(follower, lambda: hits_for(trapped, "198.51.100.7") > 0)
    finally:
        follower.send_signal(signal.SIGTERM)
        _out, err = follower.communicate(timeout=30)
    assert follower.returncode == 0, err
    assert hits_for(trapped, "198.51.100.7") == 1
    assert db_scalar(trapped, "SELECT COUNT(*) FROM ingest_sources") == 2


def test_what_is_carried_is_bounded_and_the_newest() -> None:
    ctx = ParseContext(now=NOW)
    sender = "s" * 300 + "@example.net"  # a sender may make every held line long
    lines: list[str] = []
    for n in range(6000):
        lines += postfix_message(f"{n:011X}", "198.51.100.7")[:3]
        lines[-1] = lines[-1].replace("s@example.net", sender)
    hits_of("postfix", lines, ctx)
    carried = ctx.carry()
    assert carried is not None and len(carried) < CARRIED_BYTES + 200_000
    kept = json.loads(carried)["postfix.queue"]["messages"]
    assert 100 < len(kept) < 6000
    assert kept[-1][0] == f"{5999:011X}"  # the newest are the ones kept
    resumed = ParseContext(now=NOW)
    assert resumed.resume(carried) == []
    tail = postfix_message(f"{5999:011X}", "198.51.100.7")[3:]
    (hit,) = hits_of("postfix", tail, resumed)
    assert hit.mail_from == sender
