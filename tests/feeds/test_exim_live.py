"""A real Exim 4.96 logs hostile SMTP sessions; the exim parser must read them right.

Each session of tests/support/hostile_sessions.py is fed to ``exim -C <config> -bs -oMa <ip>
[-oMs <name>]`` (the connecting address and its verified name, as Exim's
daemon would set them), with ``helo_accept_junk_hosts = *`` so the HELO
reaches the log verbatim, an RCPT ACL that refuses the traps and accepts the
rest, and ``+received_recipients +received_sender +incoming_port +subject``.
Exim conflicts with the installed Postfix as a Debian package, so
scripts/test unpacks exim4-daemon-light and exim4-base into
/var/cache/rbl-test-exim (``RBL_TEST_EXIM_ROOT``) and the test runs the binary
from there, as root with the Debian-exim user Exim was built for. Outside CI a
machine without it skips, in CI it fails.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rbl.feeds.parsers import ParseContext, get_parser
from rbl.model.traphit import ParseError, TrapHit
from tests.support.hostile_sessions import (
    IMITATED_DOMAIN,
    IMITATED_IPS,
    TRAP,
    TRAP_DOMAIN,
    Session,
    delivered_sessions,
    sessions,
    transcript,
)
from tests.support.processes import require_peer

pytestmark = pytest.mark.slow

EXIM_ROOT = Path(os.environ.get("RBL_TEST_EXIM_ROOT", "/var/cache/rbl-test-exim"))
EXIM = EXIM_ROOT / "usr" / "sbin" / "exim4"
EXIM_USER = "Debian-exim"  # EXIM_USER of Debian's build
PREFIX = "45.33.12"
CTX = ParseContext(now=datetime.now(UTC))

CONFIG = """\
primary_hostname = mx.example.org
qualify_domain = example.org
exim_user = {user}
exim_group = {user}
never_users =
keep_environment =
spool_directory = {dir}/spool
log_file_path = {dir}/log/%slog
log_selector = +received_recipients +received_sender +incoming_port +subject
helo_accept_junk_hosts = *
host_lookup =
rfc1413_hosts =
rfc1413_query_timeout = 0s
queue_only = true
domainlist local_domains = example.org : {trap_domain}
acl_smtp_rcpt = acl_rcpt
begin acl
acl_rcpt:
  deny  domains = {trap_domain}
        message = no such user
  deny  domains = example.org
        local_parts = {trap_local}
        message = no such user
  accept
begin routers
blackhole:
  driver = redirect
  data = :blackhole:
"""


# Exim's default log selector (no +received_recipients): recipients are only in the
# delivery lines, written by a queue run (-qff) through routers that fail, discard and
# deliver locally (log_as_local: "=> local-part <top address>").
DELIVERY_CONFIG = """\
primary_hostname = mx.example.org
qualify_domain = example.org
exim_user = {user}
exim_group = {user}
never_users =
keep_environment =
spool_directory = {dir}/spool
log_file_path = {dir}/log/%slog
helo_accept_junk_hosts = *
host_lookup =
rfc1413_hosts =
rfc1413_query_timeout = 0s
queue_only = true
domainlist local_domains = example.org : devnull.example : bücher.example : {trap_domain}
acl_smtp_rcpt = acl_rcpt
begin acl
acl_rcpt:
  deny  local_parts = refused
        message = no such user
  accept
begin routers
traps:
  driver = redirect
  domains = {trap_domain}
  allow_fail
  data = :fail: no such user
devnull:
  driver = accept
  domains = devnull.example
  transport = devnull
blackhole:
  driver = redirect
  data = :blackhole:
begin transports
devnull:
  driver = appendfile
  file = /dev/null
  user = {user}
"""


def unavailable() -> str | None:
    """Why this machine cannot run the test's Exim, or None."""
    if not EXIM.exists():
        return f"Exim is not unpacked at {EXIM_ROOT} (scripts/test does it)"
    if os.geteuid() != 0:
        return "exim -oMa needs a trusted caller: run as root"
    try:
        pwd.getpwnam(EXIM_USER)
    except KeyError:
        return f"user {EXIM_USER} is missing (scripts/test creates it)"
    return None


def exim_env() -> dict[str, str]:
    libs = EXIM_ROOT / "usr" / "lib" / "x86_64-linux-gnu"
    return {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LD_LIBRARY_PATH": str(libs)}


def run_session(config: Path, session: Session) -> str:
    """Feed one session to ``exim -bs``; return what Exim answered."""
    command = [str(EXIM), "-C", str(config), "-bs", "-oMa", session.ip]
    if session.name is not None:
        command += ["-oMs", session.name]
    done = subprocess.run(
        command,
        input=transcript(session).encode(),
        capture_output=True,
        env=exim_env(),
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.decode(errors="replace")


def exim_log(
    config_text: str, sessions_run: list[Session], capture_as: str, *, queue_run: bool = False
) -> Iterator[list[str]]:
    """Run the sessions through an Exim with this config; yield its main log's lines."""
    require_peer(unavailable(), "Exim")
    # Not under pytest's 0700 base directory: Exim writes as its own user.
    directory = Path(tempfile.mkdtemp(prefix="rbl-exim-"))
    try:
        directory.chmod(0o755)
        for sub in ("spool", "log"):
            (directory / sub).mkdir()
            shutil.chown(directory / sub, EXIM_USER, EXIM_USER)
        config = directory / "exim.conf"
        config.write_text(
            config_text.format(
                user=EXIM_USER,
                dir=directory,
                trap_domain=TRAP_DOMAIN,
                trap_local=TRAP.partition("@")[0],
            )
        )
        for session in sessions_run:
            answers = run_session(config, session)
            assert answers.count("550 no such user") == len(session.traps), answers
        if queue_run:
            done = subprocess.run(
                [str(EXIM), "-C", str(config), "-qff"],
                capture_output=True,
                env=exim_env(),
                timeout=60,
                check=False,
            )
            assert done.returncode == 0, done.stderr
        raw = (directory / "log" / "mainlog").read_bytes()
        capture = os.environ.get("RBL_CAPTURE_LOGS")
        if capture:  # to refresh the samples under tests/data/logs
            Path(capture, capture_as).write_bytes(raw)
        yield raw.decode("utf-8", "replace").split("\n")[:-1]
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def mainlog() -> Iterator[list[str]]:
    """Exim's main log after every hostile session, as rbl ingest would decode it."""
    yield from exim_log(CONFIG, sessions(PREFIX), "exim.hostile.raw")


@pytest.fixture(scope="module")
def delivered_log() -> Iterator[list[str]]:
    """The main log of an Exim with the default log selector, after a queue run."""
    yield from exim_log(
        DELIVERY_CONFIG, delivered_sessions(PREFIX), "exim.delivered.raw", queue_run=True
    )


def lines_of(log: list[str], session: Session, kind: str) -> list[str]:
    """The session's log lines of one kind; its address is in no other session's lines."""
    marker = " rejected RCPT " if kind == "rcpt" else " <= "
    return [line for line in log if f"[{session.ip}]" in line and marker in line]


def parse(line: str) -> list[TrapHit]:
    return get_parser("exim")(line, CTX)


@pytest.mark.parametrize("session", sessions(PREFIX), ids=lambda s: s.label)
def test_rejected_rcpt_gives_the_connecting_ip_and_real_trap(
    mainlog: list[str], session: Session
) -> None:
    lines = lines_of(mainlog, session, "rcpt")
    assert len(lines) == len(session.traps), mainlog
    for line, trap in zip(lines, session.traps, strict=True):
        if session.refused_rcpt:
            with pytest.raises(ParseError, match="read 2 ways"):
                parse(line)
            continue
        (hit,) = parse(line)
        assert (hit.client_ip, hit.rcpt_to, hit.mail_from) == (session.ip, trap, session.sender)
        assert hit.client_name == session.name
        assert hit.stage == "rcpt"


@pytest.mark.parametrize(
    "session", [s for s in sessions(PREFIX) if s.accepted], ids=lambda s: s.label
)
def test_arrival_gives_the_connecting_ip_and_real_recipients(
    mainlog: list[str], session: Session
) -> None:
    (line,) = lines_of(mainlog, session, "arrival")
    hits = parse(line)
    assert [hit.rcpt_to for hit in hits] == list(session.accepted)
    for hit in hits:
        assert (hit.client_ip, hit.mail_from, hit.client_name) == (
            session.ip,
            session.sender,
            session.name,
        )
        assert hit.stage == "data"


def test_no_line_gives_an_imitated_address_or_name(mainlog: list[str]) -> None:
    read = 0
    for line in mainlog:
        try:
            hits = parse(line)
        except ParseError:
            continue
        read += len(hits)
        for hit in hits:
            assert hit.client_ip not in IMITATED_IPS, line
            assert hit.client_ip.startswith(PREFIX + "."), line
            assert IMITATED_DOMAIN not in (hit.client_name or ""), line
            assert hit.rcpt_to != "innocent@example.org", line
    assert read >= 10


def test_bare_rcpt_arguments_are_logged_bare_and_read(mainlog: list[str]) -> None:
    """Session 11 sent RCPT TO without angle brackets: Exim logs the argument as sent."""
    (session,) = [s for s in sessions(PREFIX) if s.ip == f"{PREFIX}.11"]
    lines = lines_of(mainlog, session, "rcpt")
    assert [line.partition(" rejected RCPT ")[2][:1] for line in lines] == ["s", '"']
    assert [hit.rcpt_to for line in lines for hit in parse(line)] == list(session.traps)


def read_all(log: list[str]) -> tuple[list[TrapHit], list[str]]:
    """Every hit of a log read in order with one context (as rbl ingest reads a file),
    and the lines refused."""
    ctx = ParseContext(now=datetime.now(UTC))
    hits: list[TrapHit] = []
    refused: list[str] = []
    for line in log:
        try:
            hits += get_parser("exim")(line, ctx)
        except ParseError:
            refused.append(line)
    return hits, refused


@pytest.mark.parametrize("session", delivered_sessions(PREFIX), ids=lambda s: s.label)
def test_delivery_lines_give_the_arrivals_client_and_the_recipients_as_sent(
    delivered_log: list[str], session: Session
) -> None:
    hits, refused = read_all(delivered_log)
    mine = [hit for hit in hits if hit.client_ip == session.ip]
    assert sorted(hit.rcpt_to for hit in mine if hit.stage == "data") == sorted(session.accepted)
    rejected = [hit.rcpt_to for hit in mine if hit.stage == "rcpt"]
    refused_here = [line for line in refused if f"[{session.ip}]" in line]
    if session.refused_rcpt:
        assert (rejected, len(refused_here)) == ([], len(session.traps)), refused_here
    else:
        assert (rejected, refused_here) == (list(session.traps), [])
    for hit in mine:
        assert (hit.mail_from, hit.client_name, hit.helo) == (session.sender, None, session.helo)


def test_delivery_lines_give_no_imitated_address_and_each_recipient_once(
    delivered_log: list[str],
) -> None:
    assert any(" => q r <" in line for line in delivered_log), delivered_log  # log_as_local
    assert any(' ** spam trap@trap.example <"spam trap"' in line for line in delivered_log)
    hits, _ = read_all(delivered_log)
    assert len(hits) == len({(hit.client_ip, hit.rcpt_to, hit.stage) for hit in hits})
    for hit in hits:
        assert hit.client_ip.startswith(PREFIX + ".") and hit.client_ip not in IMITATED_IPS
        assert hit.rcpt_to != "innocent@example.org"
