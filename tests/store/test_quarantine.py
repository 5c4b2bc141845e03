"""No line stops ingest: bad lines are quarantined with file, offset and reason, and fed again.

Real ``rbl ingest``, ``rbl serve`` and ``rbl quarantine`` subprocesses against
a real store (SQLite and PostgreSQL). A store that refuses one client's hits
for good is made with a trigger (SQLite) or a CHECK constraint (PostgreSQL),
which the store then really raises; "the fix" drops it.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.pool import NullPool

from rbl.config import parse_settings
from rbl.errors import StoreError
from rbl.feeds.ingest import Ingestor
from rbl.feeds.report import IngestReport
from rbl.metrics.collect import store_families
from rbl.model.traphit import TrapHit
from rbl.model.traps import parse_trap
from rbl.policy.listing import LATEST, Action, History, Rules, decide
from rbl.store.database import open_engine
from rbl.store.evidence import HitRefused
from rbl.store.faults import is_data_error
from rbl.store.feedwriter import HitWriter
from rbl.store.reader import ListingReader
from rbl.store.traps import add_trap
from tests.support.config import LIVE_SETTINGS, database_url_of, write_config
from tests.support.database import db_rows, db_scalar
from tests.support.policy_requests import policy_request
from tests.support.processes import rbl_command, subprocess_env
from tests.support.server import start_server, stop_server
from tests.support.store_faults import REFUSED_IP, fix_store, refuse_client

START = datetime.now(UTC) - timedelta(hours=1)


def hit_line(n: int, ip: str | None = None, **extra: object) -> str:
    return json.dumps(
        {
            "time": (START + timedelta(seconds=n)).isoformat(),
            "ip": ip or f"45.0.0.{n}",
            "from": f"seller{n}@spam.example",
            "to": "trap@example.org",
            **extra,
        }
    )


def count(config: Path, sql: str) -> int:
    return int(db_scalar(config, sql))  # type: ignore[call-overload]


@pytest.fixture
def trapped(config_path: Path) -> Path:
    rbl_command(config_path, "traps", "add", "trap@example.org")
    return config_path


BAD_IP = "\u00b2.1.1.1"  # a superscript two, which Exim logs verbatim


@pytest.mark.slow
def test_bad_lines_are_quarantined_the_rest_stored_and_a_rerun_adds_nothing(
    trapped: Path, tmp_path: Path
) -> None:
    refuse_client(trapped, REFUSED_IP)
    future = (datetime.now(UTC) + timedelta(days=3650)).isoformat()
    far = "9999-12-31T23:59:59Z"
    lines = [
        hit_line(1).encode(),
        b"{not json",  # ParseError
        hit_line(2, ip=BAD_IP).encode(),  # non-ASCII digit (ValueError before the parser fix)
        hit_line(3).encode(),
        b'{"time": "%s", "ip": "45.0.0.4", "to": "trap@example.org", "helo": "\\udc80"}'
        % START.isoformat().encode(),  # a lone surrogate escape
        hit_line(5, time=far).encode(),
        hit_line(6, time=future).encode(),
        hit_line(7, ip=REFUSED_IP).encode(),  # the store refuses it
        b"\xff\x00\x1b[31m not UTF-8, NUL, ANSI",
        hit_line(8).encode(),
    ]
    log = tmp_path / "feed.jsonl"
    log.write_bytes(b"\n".join(lines) + b"\n")
    starts = [sum(len(line) + 1 for line in lines[:i]) for i in range(len(lines))]
    result = rbl_command(trapped, "ingest", "--format", "json", "--batch", "4", str(log))
    assert result.returncode == 0
    assert "lines: 10  " in result.stdout and "quarantined: 7" in result.stdout, result.stdout
    assert f"rbl quarantine list --source {log}" in result.stderr
    assert "\x1b" not in result.stderr  # sender-controlled text is escaped
    stored = db_rows(trapped, "SELECT client_ip FROM hits ORDER BY client_ip")
    assert stored == [("45.0.0.1",), ("45.0.0.3",), ("45.0.0.8",)]
    kept = db_rows(
        trapped,
        'SELECT line_number, "offset", source, format, state, reason, line '
        "FROM quarantine ORDER BY line_number",
    )
    assert [row[0] for row in kept] == [2, 3, 5, 6, 7, 8, 9]
    for number, offset, source, fmt, state, _reason, line in kept:
        assert (offset, source, fmt, state) == (starts[number - 1], str(log), "json", "new")
        assert bytes(line) == lines[number - 1] + b"\n"  # lossless, NUL and all
    reasons = {row[0]: row[5] for row in kept}
    assert "not valid JSON" in reasons[2]
    assert reasons[3]  # the parser's refusal (or failure) of the superscript digit
    # The parser's refusal (rbl.feeds.parsers) or the store's, whichever sees it first.
    assert "helo" in reasons[5]
    assert "lone surrogate" in reasons[5] or "not valid Unicode" in reasons[5]
    assert "9999-12-31" in reasons[6] and "more than a day after" in reasons[6]
    assert "more than a day after" in reasons[7]
    assert reasons[8].startswith("the store refused it: ")
    assert "no hits from 45.9.9.9" in reasons[8] or "test_refuse" in reasons[8]  # SQLite, PG
    # The same run again: resumes after the last line, stores and quarantines nothing twice.
    again = rbl_command(trapped, "ingest", "--format", "json", str(log))
    assert "resumed after line 10" in again.stdout and "quarantined: 0" in again.stdout
    assert count(trapped, "SELECT COUNT(*) FROM quarantine") == 7
    assert count(trapped, "SELECT COUNT(*) FROM hits") == 3
    reader = ListingReader(database_url_of(trapped))
    stats = reader.store_stats()
    reader.close()
    (kept_family,) = [
        f for f in store_families(stats, datetime.now(UTC), lambda *_: None)
        if f.name == "rbl_quarantine_lines"
    ]  # fmt: skip
    assert kept_family.samples == [({"source": str(log), "state": "new"}, 7)]
    listed = rbl_command(trapped, "quarantine", "list", "--source", str(log))
    assert "7 shown; in the quarantine: new: 7" in listed.stdout
    assert f"{log}:8 (byte {starts[7]})" in listed.stdout
    shown = rbl_command(trapped, "quarantine", "show", str(_id(trapped, 9)))
    assert "\\xff\\x00\\x1b[31m not UTF-8" in shown.stdout and "\x1b" not in shown.stdout


def _id(config: Path, line_number: int) -> int:
    return count(config, f"SELECT id FROM quarantine WHERE line_number = {line_number}")


@pytest.mark.slow
def test_refeed_after_the_fix_stores_the_hit_and_what_still_fails_stays(
    trapped: Path, tmp_path: Path
) -> None:
    refuse_client(trapped, REFUSED_IP)
    log = tmp_path / "feed.jsonl"
    far = "9999-12-31T23:59:59Z"
    log.write_text("\n".join([hit_line(1), hit_line(2, ip=REFUSED_IP), hit_line(3, time=far)]))
    rbl_command(trapped, "ingest", "--format", "json", str(log))
    refused, future = _id(trapped, 2), _id(trapped, 3)
    still = rbl_command(trapped, "quarantine", "refeed", str(refused), check=False)
    assert f"{refused}: still quarantined: the store refused it" in still.stderr
    assert count(trapped, "SELECT COUNT(*) FROM hits") == 1
    fix_store(trapped)
    done = rbl_command(trapped, "quarantine", "refeed", "--all")
    assert f"{refused}: stored" in done.stdout and "refed: 1  still quarantined: 1" in done.stdout
    assert f"listed: bl.example.org {REFUSED_IP}" in done.stdout
    assert f"{future}: still quarantined: time 9999-12-31" in done.stderr
    assert db_rows(
        trapped,
        f"SELECT client_ip, source_id IS NOT NULL FROM hits WHERE client_ip = '{REFUSED_IP}'",
    ) == [(REFUSED_IP, True)]
    states = dict(db_rows(trapped, "SELECT id, state FROM quarantine"))
    assert states == {refused: "refed", future: "new"}
    twice = rbl_command(trapped, "quarantine", "refeed", str(refused))
    assert "not quarantined; left as it is" in twice.stderr
    assert count(trapped, "SELECT COUNT(*) FROM hits") == 2
    no_reason = rbl_command(trapped, "quarantine", "drop", str(future), check=False)
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr
    rbl_command(trapped, "quarantine", "drop", str(future), "--reason", "forged time")
    assert db_rows(trapped, f"SELECT state FROM quarantine WHERE id = {future}") == [("dropped",)]
    assert db_rows(
        trapped, "SELECT actor, action, reason FROM audit_log WHERE action LIKE 'quarantine%'"
    ) == [("tester", "quarantine-drop", "forged time")]
    again = rbl_command(trapped, "quarantine", "drop", str(future), "--reason", "x", check=False)
    assert again.returncode == 1 and "dropped, not quarantined" in again.stderr
    missing = rbl_command(trapped, "quarantine", "show", "999", check=False)
    assert missing.returncode == 1 and "no quarantined line with id 999" in missing.stderr


@pytest.mark.slow
def test_follow_keeps_going_after_bad_lines(trapped: Path, tmp_path: Path) -> None:
    log = tmp_path / "mail.jsonl"
    log.write_text(hit_line(1) + "\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "rbl", "-c", str(trapped), "ingest", "--format", "json",
         "--follow", "--poll", "0.05", str(log)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=subprocess_env(),
    )  # fmt: skip
    try:
        wait_for(lambda: count(trapped, "SELECT COUNT(*) FROM hits") == 1, "the first hit")
        with log.open("a") as handle:
            handle.write(hit_line(2, ip=BAD_IP) + "\n")
            handle.write(hit_line(3, time="9999-12-31T23:59:59Z") + "\n")
            handle.write('{"time": 1, "ip": "45.0.0.4", "to": "\\udc80@example.org"}\n')
            handle.flush()
            time.sleep(0.3)
            handle.write(hit_line(5) + "\n")
        wait_for(lambda: count(trapped, "SELECT COUNT(*) FROM hits") == 2, "the hit after")
        assert process.poll() is None, "--follow stopped on a bad line"
        assert count(trapped, "SELECT COUNT(*) FROM quarantine") == 3
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert "quarantined: 3" in out


def wait_for(predicate: object, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_live_hit_the_store_refuses_is_quarantined_and_refed(
    tmp_path: Path, database_url: str
) -> None:
    config = write_config(tmp_path, url=database_url)
    config.write_text(config.read_text() + LIVE_SETTINGS)
    rbl_command(config, "traps", "add", "trap@example.org")
    refuse_client(config, "47.0.0.9")
    server = start_server(config)
    try:
        policy = server.info["policy"]
        assert isinstance(policy, dict)
        ask = {"sender": "x@spam.example", "recipient": "trap@example.org", "helo_name": "h"}
        refused = policy_request(policy["host"], policy["port"], client_address="47.0.0.9", **ask)
        assert refused.startswith(b"action=DEFER_IF_PERMIT")
        fine = policy_request(policy["host"], policy["port"], client_address="47.0.0.10", **ask)
        assert fine == b"action=DUNNO\n\n"
        wait_for(lambda: count(config, "SELECT COUNT(*) FROM quarantine") == 1, "the quarantine")
    finally:
        stop_server(server)
    ((source, fmt, line, hit, reason, offset),) = db_rows(
        config, 'SELECT source, format, line, hit, reason, "offset" FROM quarantine'
    )
    assert (source, fmt, offset) == ("policy", "policy", None)
    assert b"client_address=47.0.0.9" in bytes(line) and "the store refused it" in str(reason)
    assert json.loads(str(hit))["client_ip"] == "47.0.0.9"
    assert count(config, "SELECT COUNT(*) FROM hits") == 1
    fix_store(config)
    done = rbl_command(config, "quarantine", "refeed", "--all")
    assert "refed: 1  still quarantined: 0" in done.stdout
    assert db_rows(config, "SELECT feed, helo FROM hits WHERE client_ip = '47.0.0.9'") == [
        ("policy", "h")
    ]


# -- units: what blames a line, and time arithmetic that cannot overflow ---------------


def test_data_errors_blame_the_line_and_store_errors_do_not(tmp_path: Path) -> None:
    engine = create_engine(f"sqlite:///{tmp_path / 'x.sqlite'}", poolclass=NullPool)
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (v INTEGER NOT NULL)"))
    with pytest.raises(IntegrityError) as constraint, engine.begin() as conn:
        conn.execute(text("INSERT INTO t (v) VALUES (NULL)"))
    with pytest.raises(OperationalError) as missing, engine.begin() as conn:
        conn.execute(text("INSERT INTO nowhere (v) VALUES (1)"))
    engine.dispose()
    locked = sqlite3.OperationalError("database is locked")
    locked.sqlite_errorcode = 5  # type: ignore[attr-defined]
    assert is_data_error(constraint.value)
    assert not is_data_error(StoreError("f: committed through line 0"))  # no cause: the store
    wrapped = StoreError("f: committed through line 0")
    wrapped.__cause__ = constraint.value
    assert is_data_error(wrapped)
    assert not is_data_error(missing.value)
    assert not is_data_error(locked)
    assert is_data_error(OverflowError("date value out of range"))
    assert is_data_error(HitRefused("time far ahead"))
    assert is_data_error(UnicodeEncodeError("utf-8", "\udc80", 0, 1, "surrogates not allowed"))


def test_expiry_arithmetic_is_clamped_never_raised() -> None:
    forever = timedelta(days=3_000_000)  # about 8,200 years
    rules = Rules(
        threshold=1,
        window=forever,
        duration=forever,
        repeat_factor=2.0,
        max_duration=forever,
        protected=(),
    )
    at = datetime(2026, 12, 2, tzinfo=UTC)
    assert rules.expiry(at, 0) == LATEST and rules.expiry(at, 50) == LATEST
    assert rules.window_start(at) == datetime(1970, 1, 1, tzinfo=UTC)
    hit = TrapHit(at, "45.1.2.3", "trap@example.org", "x@spam.example", "h", "json", "raw")
    decision = decide(hit, is_trap=True, history=History(), rules=rules, now=at)
    assert decision.action is Action.LIST and decision.expires_at == LATEST
    active = History(active=True, active_expires_at=at, earlier_listings=3)
    assert decide(hit, is_trap=True, history=active, rules=rules, now=at).expires_at == LATEST


# -- any line: stored, quarantined or no hit, and the run goes on ----------------------

SETTINGS = parse_settings(
    {"zones": [{"name": "bl.example.org", "kind": "ip", "ns": ["ns1.example.org"]}]},
    source=Path("test.toml"),
)
hostile_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=12)
json_value = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    hostile_text,
    st.sampled_from(["45.1.2.3", BAD_IP, "9999-12-31T23:59:59Z", "0001-01-01T00:00:00Z"]),
)
hostile_line = st.one_of(
    st.binary(max_size=40).filter(lambda b: b"\n" not in b and b"\r" not in b),
    st.fixed_dictionaries(
        {"time": json_value, "ip": json_value, "to": st.just("trap@example.org")},
        optional={"helo": json_value, "from": json_value, "client_name": json_value},
    ).map(lambda obj: json.dumps(obj).encode()),
)


@settings(max_examples=60, deadline=None)
@given(lines=st.lists(hostile_line, min_size=1, max_size=8))
def test_any_line_is_stored_quarantined_or_no_hit_and_nothing_stops_the_run(
    lines: list[bytes], tmp_path_factory: pytest.TempPathFactory
) -> None:
    directory = tmp_path_factory.mktemp("hostile")
    engine = open_engine(f"sqlite:///{directory / 'rbl.sqlite'}")
    with engine.begin() as conn:
        add_trap(conn, parse_trap("trap@example.org"), note=None, actor="t", now=START)
    good = hit_line(99).encode()
    log = directory / "feed.jsonl"
    log.write_bytes(b"\n".join([*lines, good]) + b"\n")
    report = IngestReport()
    with log.open("rb") as handle:
        Ingestor(HitWriter(engine, SETTINGS), "json", batch_size=3).ingest(handle, str(log), report)
    with engine.connect() as conn:
        kept = {row[0] for row in conn.execute(text("SELECT line_number FROM quarantine"))}
        stored = conn.execute(text("SELECT COUNT(*) FROM hits")).scalar()
        lines_done = conn.execute(text("SELECT lines FROM ingest_sources")).scalar()
    engine.dispose()
    assert lines_done == len(lines) + 1 and report.quarantined == len(kept)
    assert report.lines == len(lines) + 1 and len(lines) + 1 not in kept
    assert stored == report.actions["list"] + report.actions["record"] + report.actions["extend"]
    assert stored >= 1  # the good line after the hostile ones
