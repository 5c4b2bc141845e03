"""A position per (file, format), --from-start, --format auto, and runs that match nothing.

Real log lines from tests/data/logs (the Postfix 3.7 lines of postfix.hostile.log,
the spamd, Exim and spamdb samples), restamped to an hour ago where the test needs
listings (old hits list nothing), through the CLI in process (CliRunner) and the
Ingestor, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from click.testing import CliRunner, Result
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from rbl.cli import main
from rbl.config import parse_settings
from rbl.feeds.ingest import Ingestor
from rbl.feeds.parsers import PARSERS, syslogline
from rbl.feeds.parsers.recognise import FORMATS, recognise
from rbl.feeds.report import IngestReport, Unrecognised
from rbl.metrics.collect import store_families
from rbl.store.database import MIGRATIONS, open_engine
from rbl.store.feedwriter import HitWriter
from rbl.store.reader import StoreStats
from tests.support.config import database_url_of
from tests.support.database import db_scalar
from tests.support.processes import rbl_command, subprocess_env

LOGS = Path(__file__).parents[1] / "data" / "logs"
NOW = datetime.now(UTC)
SETTINGS = parse_settings(
    {"zones": [{"name": "bl.example.org", "kind": "ip", "ns": ["ns1.example.org"]}]},
    source=Path("test.toml"),
)


def sample(name: str) -> list[str]:
    """A sample log's lines, without its annotations (comments and blank lines)."""
    lines = (LOGS / name).read_text(encoding="utf-8", errors="surrogateescape").splitlines()
    return [line for line in lines if line.strip() and not line.startswith("#")]


def restamped(lines: list[str], start: datetime) -> list[str]:
    """Traditional syslog lines with their stamps moved to ``start`` plus a second each."""
    out = []
    for n, line in enumerate(lines):
        assert line[3] == " " and line[15] == " ", line
        at = start + timedelta(seconds=n)
        out.append(f"{at:%b} {at.day:2d} {at:%H:%M:%S}{line[15:]}")
    return out


# Real Postfix output (listing public addresses) and the annotated sample with its
# malformed lines (documentation addresses: recorded, never listed).
POSTFIX = restamped(
    sample("postfix.hostile.log") + [line for line in sample("postfix.log") if line[:3].isalpha()],
    NOW - timedelta(hours=1),
)
SPAMD = [line for line in sample("spamd.log") if recognise(line) == "spamd"]


def run(config: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["-c", str(config), "--actor", "tester", *args])


def count(config: Path, sql: str) -> int:
    return int(db_scalar(config, sql))  # type: ignore[call-overload]


@pytest.fixture
def trapped(config_path: Path) -> Path:
    result = run(config_path, "traps", "add", "spamtrap@example.org", "trap@example.org")
    assert result.exit_code == 0, result.output
    return config_path


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


# -- recognition ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected", "others"),
    [
        ("postfix.log", "postfix", set()),
        ("postfix.hostile.log", "postfix", set()),
        ("spamd.log", "spamd", set()),
        ("exim.log", "exim", set()),
        ("exim.hostile.log", "exim", set()),
        ("spamdb.log", "spamdb", set()),
        ("json.log", "json", set()),
        ("sendmail.log", "sendmail", {"postfix"}),
        ("exim.delivered.log", "exim", set()),
        ("postfix.sources.log", "postfix", set()),
        ("postfix.smtputf8.log", "postfix", set()),
    ],
)
def test_sample_logs_are_mostly_their_own_format(
    name: str, expected: str, others: set[str]
) -> None:
    """``others``: formats a sample holds on purpose (a line another MTA wrote)."""
    found = [recognise(line) for line in sample(name)]
    assert found.count(expected) >= 0.8 * len(found)
    assert set(found) - {expected, None} == others  # never taken for another MTA's


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("Dec  3 09:00:01 mx postfix/qmgr[11]: 4ABC: removed", "postfix"),
        ("Dec  3 09:00:01 mx postfix/smtpd[12]: connect from unknown[45.1.1.1]", "postfix"),
        ("Dec  3 09:00:01 mx postfix-out/smtpd[12]: disconnect from x[45.1.1.1]", "postfix"),
        ("Dec  3 09:00:01 mx postfix/submission/smtpd[12]: connect from x[45.1.1.1]", "postfix"),
        ("2026-12-03T09:00:01.5+01:00 mx postfix/smtpd[12]: lost connection", "postfix"),
        ("Dec  3 09:00:01 gw spamd[9]: 45.1.1.1: disconnected after 32 seconds.", "spamd"),
        ("Dec  3 09:00:01 mx sm-mta[77]: 0B39Ab: ruleset=check_rcpt, arg1=<a@b>", "sendmail"),
        ("Dec  3 09:00:01 mx sendmail[77]: 0B39Ab: from=<a@b.example>, size=1", "sendmail"),
        ("Dec  3 09:00:01 mx sm-msp-queue[78]: starting daemon", "sendmail"),
        ("Dec  3 09:00:01 mx exim4[5]: 2026-12-03 09:00:01 H=x [45.1.1.1] rejected", "exim"),
        ("2026-12-03 09:00:01.123 +0100 [555] 1vABCD-000123-XY Completed", "exim"),
        ("TRAPPED|45.1.1.1|1795500931", "spamdb"),
        ('  {"time": 1, "ip": "45.1.1.1"}', "json"),
        ("Dec  3 09:00:01 mx kernel: [1.0] eth0: link up", None),
        ("Dec  3 09:00:01 mx CRON[4]: (root) CMD (postfix/smtpd[1]: NOQUEUE: reject:)", None),
        ("Dec  3 09:00:01 mx dovecot[3]: imap-login: postfix/smtpd spamd sm-mta", None),
        ("postfix/smtpd[1]: NOQUEUE: reject: RCPT from x[45.1.1.1]", None),
        ("BLACK|45.1.1.1|1795500931", None),
        ("\x1b[2J2026-12-03 09:00:01 looks like exim", None),
    ],
)
def test_recognise_by_program_or_shape_only(line: str, expected: str | None) -> None:
    assert recognise(line) == expected


# -- one position per (file, format) ----------------------------------------------------


def test_wrong_format_first_then_right_one_reads_everything(trapped: Path, tmp_path: Path) -> None:
    log = write(tmp_path / "mail.log", POSTFIX)
    wrong = run(trapped, "ingest", "--format", "spamd", str(log))
    assert wrong.exit_code == 3, wrong.output
    assert "hits parsed: 0" in wrong.stdout
    right = run(trapped, "ingest", "--format", "postfix", str(log))
    assert right.exit_code == 0, right.output
    assert f"lines: {len(POSTFIX)}" in right.stdout and "resumed" not in right.stdout
    assert count(trapped, "SELECT COUNT(*) FROM hits") > 0
    assert count(trapped, "SELECT COUNT(*) FROM ingest_sources") == 2


def test_one_syslog_feeds_a_run_per_format(trapped: Path, tmp_path: Path) -> None:
    log = write(tmp_path / "syslog", [*SPAMD, *POSTFIX])
    postfix = run(trapped, "ingest", "--format", "postfix", str(log))
    spamd = run(trapped, "ingest", "--format", "spamd", str(log))
    assert postfix.exit_code == 0 and spamd.exit_code == 0, postfix.output + spamd.output
    feeds = dict(
        (feed, n) for feed, n in _rows(trapped, "SELECT feed, COUNT(*) FROM hits GROUP BY feed")
    )
    assert set(feeds) == {"postfix", "spamd"}
    # and each resumes at its own end
    again = run(trapped, "ingest", "--format", "spamd", str(log))
    total = len(SPAMD) + len(POSTFIX)
    assert again.exit_code == 0 and "lines: 0" in again.stdout and "no line" not in again.stderr
    assert f"resumed after line {total} (byte {log.stat().st_size}); --from-start" in again.stdout


def test_feed_name_is_no_part_of_the_position(trapped: Path, tmp_path: Path) -> None:
    log = write(tmp_path / "mail.log", POSTFIX)
    first = run(trapped, "ingest", "--format", "postfix", "--feed", "mx1", str(log))
    second = run(trapped, "ingest", "--format", "postfix", "--feed", "mx1-again", str(log))
    assert first.exit_code == second.exit_code == 0
    assert "lines: 0" in second.stdout and f"resumed after line {len(POSTFIX)}" in second.stdout
    assert _rows(trapped, "SELECT DISTINCT feed FROM hits") == [("mx1",)]


def test_from_start_reads_again_and_counts_nothing_twice(trapped: Path, tmp_path: Path) -> None:
    log = write(tmp_path / "mail.log", POSTFIX)
    first = run(trapped, "ingest", "--format", "postfix", str(log))
    assert first.exit_code == 0, first.output
    hits = count(trapped, "SELECT COUNT(*) FROM hits")
    listings = _rows(trapped, "SELECT key, expires_at FROM listings ORDER BY key")
    kept = count(trapped, "SELECT COUNT(*) FROM quarantine")
    assert hits and listings and kept  # the hostile sample lists and sets lines aside
    assert "listed: 0" not in first.stdout
    again = run(trapped, "ingest", "--format", "postfix", "--from-start", str(log))
    assert again.exit_code == 0, again.output
    assert "resumed" not in again.stdout and f"lines: {len(POSTFIX)}" in again.stdout
    assert "recorded: 0  listed: 0  extended: 0" in again.stdout
    assert count(trapped, "SELECT COUNT(*) FROM hits") == hits
    assert _rows(trapped, "SELECT key, expires_at FROM listings ORDER BY key") == listings
    assert count(trapped, "SELECT COUNT(*) FROM quarantine") == kept
    assert count(trapped, "SELECT lines FROM ingest_sources") == len(POSTFIX)


def test_auto_gives_each_line_to_its_own_parser(trapped: Path, tmp_path: Path) -> None:
    log = write(tmp_path / "syslog", [*SPAMD, *POSTFIX])
    result = run(trapped, "ingest", "--format", "auto", str(log))
    assert result.exit_code == 0, result.output
    feeds = {feed for (feed,) in _rows(trapped, "SELECT DISTINCT feed FROM hits")}
    assert feeds == {"postfix", "spamd"}
    formats = {fmt for (fmt,) in _rows(trapped, "SELECT DISTINCT format FROM quarantine")}
    assert formats == {"postfix", "spamd"}  # the detected ones: refeed parses them so
    assert _rows(trapped, "SELECT format FROM ingest_sources") == [("auto",)]
    # a run per format afterwards has its own positions, and stores nothing twice
    hits = count(trapped, "SELECT COUNT(*) FROM hits")
    postfix = run(trapped, "ingest", "--format", "postfix", str(log))
    assert "resumed" not in postfix.stdout and "listed: 0" in postfix.stdout
    assert count(trapped, "SELECT COUNT(*) FROM hits") == hits


def test_auto_with_feed_overrides_the_detected_names(trapped: Path, tmp_path: Path) -> None:
    log = write(tmp_path / "syslog", [*SPAMD, *POSTFIX])
    result = run(trapped, "ingest", "--format", "auto", "--feed", "gw", str(log))
    assert result.exit_code == 0, result.output
    assert _rows(trapped, "SELECT DISTINCT feed FROM hits") == [("gw",)]


def test_auto_quarantined_line_refeeds_with_its_detected_format(
    trapped: Path, tmp_path: Path
) -> None:
    log = write(tmp_path / "syslog", [*SPAMD, *POSTFIX])
    assert run(trapped, "ingest", "--format", "auto", str(log)).exit_code == 0
    (row_id,) = _rows(trapped, "SELECT MIN(id) FROM quarantine WHERE format = 'postfix'")[0]
    retried = run(trapped, "quarantine", "refeed", str(row_id))
    assert "still quarantined: 1" in retried.stdout  # the same parser refuses it again
    assert "unknown log format" not in retried.output
    as_auto = run(trapped, "quarantine", "refeed", "--format", "auto", str(row_id))
    assert "still quarantined: 1" in as_auto.stdout, as_auto.output


# -- saying when nothing matched --------------------------------------------------------


@pytest.mark.parametrize(
    ("lines", "chosen", "looks_like"),
    [
        (POSTFIX, "exim", "postfix"),
        (SPAMD, "postfix", "spamd"),
        ([line for line in sample("exim.log") if recognise(line) == "exim"], "postfix", "exim"),
        (sample("spamdb.log"), "spamd", "spamdb"),
    ],
    ids=["postfix-as-exim", "spamd-as-postfix", "exim-as-postfix", "spamdb-as-spamd"],
)
def test_wrong_format_exits_3_with_escaped_examples(
    trapped: Path, tmp_path: Path, lines: list[str], chosen: str, looks_like: str
) -> None:
    head = syslogline.header(lines[0])
    cut = 20 if head is None else head.end()  # in the message: still the same log's line
    hostile = lines[0][:cut] + "\x1b[2J\u202e" + lines[0][cut:]
    assert recognise(hostile) == looks_like
    log = write(tmp_path / "x.log", [hostile, *lines[1:]])
    result = run(trapped, "ingest", "--format", chosen, str(log))
    assert result.exit_code == 3, result.output
    assert f"no line of {log} is a {chosen} line; they look like {looks_like} (" in result.stderr
    assert "e.g. " in result.stderr and "\\x1b[2J\\u202e" in result.stderr
    assert "\x1b" not in result.output and "\u202e" not in result.output
    assert "--allow-unrecognised" in result.stderr
    resumed = run(trapped, "ingest", "--format", chosen, str(log))  # and stays failed
    assert resumed.exit_code == 3 and "lines: 0" in resumed.stdout
    allowed = run(trapped, "ingest", "--format", chosen, "--allow-unrecognised", str(log))
    assert allowed.exit_code == 0 and "no line of" not in allowed.stderr


def test_standard_input_of_another_format_exits_3(trapped: Path) -> None:
    # a real process: CliRunner's standard input has no file descriptor
    result = rbl_command(
        trapped,
        "ingest",
        "--format",
        "postfix",
        "-",
        stdin="".join(line + "\n" for line in SPAMD),
        check=False,
    )
    assert result.returncode == 3, result.stdout + result.stderr
    assert "no line of <stdin> is a postfix line; they look like spamd (" in result.stderr
    assert "resumed" not in result.stdout


def test_syslog_of_other_daemons_with_a_few_postfix_lines_passes(
    trapped: Path, tmp_path: Path
) -> None:
    noise = [
        f"Dec  3 09:{n // 60:02d}:{n % 60:02d} mx {prog}: something {n}"
        for n in range(300)
        for prog in ("kernel", "CRON[12]", "systemd[1]", "dovecot[3]")
    ]
    log = write(tmp_path / "syslog", [*noise[:600], *POSTFIX[:2], *noise[600:]])
    result = run(trapped, "ingest", "--format", "postfix", str(log))
    assert result.exit_code == 0, result.output
    assert "no line of" not in result.stderr


def test_a_few_foreign_lines_are_a_note_not_a_failure(trapped: Path, tmp_path: Path) -> None:
    log = write(tmp_path / "syslog", ["Dec  3 09:00:00 mx kernel: up", *SPAMD[:3]])
    result = run(trapped, "ingest", "--format", "postfix", str(log))
    assert result.exit_code == 0, result.output
    assert "they look like spamd (3), unknown (1)" in result.stderr
    assert "too few lines to be sure" in result.stderr


def test_auto_fails_only_on_lines_it_cannot_give_to_any_parser(
    trapped: Path, tmp_path: Path
) -> None:
    daemons = [f"Dec  3 09:00:{n:02d} mx dovecot[4{n}]: imap-login: Login" for n in range(12)]
    log = write(tmp_path / "maillog", daemons)
    result = run(trapped, "ingest", "--format", "auto", str(log))
    assert result.exit_code == 3, result.output
    assert "is of a format rbl reads; they look like unknown (12)" in result.stderr
    mixed = write(tmp_path / "syslog", [*daemons, SPAMD[0]])  # one spamd line is enough
    assert run(trapped, "ingest", "--format", "auto", str(mixed)).exit_code == 0


SENDMAIL = [
    f"Dec  3 09:00:{n:02d} mx sm-mta[4{n}]: 0B3{n}Ab: ruleset=check_rcpt, arg1=<t@x>"
    for n in range(12)
]


def test_auto_reads_every_format_it_recognises(trapped: Path, tmp_path: Path) -> None:
    """Each format the recogniser names has a parser, so auto never calls one unread."""
    from rbl.feeds.parsers.recognise import FORMATS

    assert set(FORMATS) <= set(PARSERS)
    result = run(trapped, "ingest", "--format", "auto", str(write(tmp_path / "m", SENDMAIL)))
    assert result.exit_code == 0, result.output
    assert "look like" not in result.stderr


def test_sendmail_read_as_postfix_is_named(trapped: Path, tmp_path: Path) -> None:
    result = run(trapped, "ingest", "--format", "postfix", str(write(tmp_path / "m", SENDMAIL)))
    assert result.exit_code == 3, result.output
    assert "is a postfix line; they look like sendmail (12)" in result.stderr


def test_following_a_file_of_another_format_is_told_at_once(
    database_url: str, tmp_path: Path
) -> None:
    engine = open_engine(database_url)
    told: list[Unrecognised] = []
    log = write(tmp_path / "daemon", SPAMD)
    report = IngestReport()
    ingestor = Ingestor(HitWriter(engine, SETTINGS), "postfix", on_unrecognised=told.append)
    with log.open("rb") as handle:
        ingestor.ingest(handle, str(log), report, follow=True, keep_going=lambda: False, poll=0.01)
    engine.dispose()
    assert len(told) == 1 and told[0].conclusive and told[0].seen == {"spamd": len(SPAMD)}
    assert report.unrecognised == told


# -- the migration ----------------------------------------------------------------------


def _alembic(engine, verb: str, revision: str) -> None:  # type: ignore[no-untyped-def]
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        getattr(command, verb)(config, revision)


def test_migration_keeps_positions_and_allows_one_per_format(database_url: str) -> None:
    engine = open_engine(database_url)
    _alembic(engine, "downgrade", "0005")
    with engine.begin() as conn:
        conn.execute(
            text(
                'INSERT INTO ingest_sources (id, name, identity, format, "offset", lines, '
                "malformed, updated_at) VALUES (7, '/var/log/mail.log', '1:2:abc', 'spamd', "
                "500, 20, 1, :now)"
            ),
            {"now": NOW},
        )
        conn.execute(
            text(
                "INSERT INTO hits (at, client_ip, feed, raw, action, counted, reason, "
                "source_id) VALUES (:now, '45.1.1.1', 'spamd', 'x', 'record', true, 'r', 7)"
            ),
            {"now": NOW},
        )
    _alembic(engine, "upgrade", "head")
    with engine.begin() as conn:
        row = conn.execute(
            text('SELECT format, "offset", lines, recognised_at, unrecognised FROM ingest_sources')
        ).one()
        assert tuple(row) == ("spamd", 500, 20, 0, 0)
        assert conn.execute(text("SELECT source_id FROM hits")).scalar() == 7
        conn.execute(
            text(
                'INSERT INTO ingest_sources (name, identity, format, "offset", lines, '
                "malformed, updated_at) VALUES ('/var/log/mail.log', '1:2:abc', 'postfix', "
                "0, 0, 0, :now)"
            ),
            {"now": NOW},
        )
    with pytest.raises(Exception, match="more than one format"):
        _alembic(engine, "downgrade", "0005")
    engine.dispose()


def _rows(config: Path, sql: str) -> list[tuple[object, ...]]:
    engine = open_engine(database_url_of(config))
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql))]
    finally:
        engine.dispose()


@given(st.text(max_size=300))
def test_recognise_takes_any_text(line: str) -> None:
    assert recognise(line) in {*FORMATS, None}


def test_metrics_show_each_format_of_one_file() -> None:
    stats = StoreStats(
        [],
        [],
        [
            ("/var/log/syslog", "1:2:aa", "spamd", 100, NOW),
            ("/var/log/syslog", "1:2:aa", "postfix", 40, NOW),
        ],
    )
    families = {f.name: f for f in store_families(stats, NOW, lambda _n, _i, offset: 100 - offset)}
    offsets = {
        labels["format"]: value for labels, value in families["rbl_ingest_offset_bytes"].samples
    }
    assert offsets == {"spamd": 100, "postfix": 40}
    behind = {
        labels["format"]: value for labels, value in families["rbl_ingest_backlog_bytes"].samples
    }
    assert behind == {"spamd": 0, "postfix": 60}


RBL = [sys.executable, "-m", "rbl"]
FOLLOW = ["--follow", "--poll", "0.05"]


def test_follow_says_so_once_and_goes_on(trapped: Path, tmp_path: Path) -> None:
    log = write(tmp_path / "daemon", SPAMD)
    err_path = tmp_path / "stderr"
    with err_path.open("w") as err:
        process = subprocess.Popen(
            [*RBL, "-c", str(trapped), "ingest", "--format", "postfix", *FOLLOW, str(log)],
            stdout=subprocess.DEVNULL,
            stderr=err,
            env=subprocess_env(),
        )
        try:
            deadline = time.monotonic() + 60
            while "no line of" not in err_path.read_text() and time.monotonic() < deadline:
                time.sleep(0.05)
            with log.open("a") as handle:  # more of the same: not told again
                handle.write("".join(line + "\n" for line in SPAMD))
            while time.monotonic() < deadline:
                try:
                    if count(trapped, "SELECT lines FROM ingest_sources") == 2 * len(SPAMD):
                        break
                except DBAPIError:  # locked for a moment by the writer
                    pass
                time.sleep(0.05)
            running = process.poll() is None
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)
    told = err_path.read_text()
    assert running and process.returncode == 0, told
    assert told.count(f"no line of {log} is a postfix line; they look like spamd (") == 1
