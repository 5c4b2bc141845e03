"""A real sendmail 8.17 logs trap, unknown-user and hostile sessions; the parser reads them.

tests/support/sendmail_peer.py runs the daemon in private network and mount namespaces
(its clients on public test addresses, its own DNS and /dev/log) and drives
the sessions there; this module checks the sendmail parser against the fresh
log, read in order through one ParseContext as ``rbl ingest`` reads a file.
scripts/test unpacks sendmail-bin into /var/cache/rbl-test-sendmail; outside
CI a machine without it, or a run that is not root, skips.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rbl.feeds.parsers import ParseContext, get_parser
from rbl.model.traphit import ParseError, TrapHit
from tests.support import sendmail_peer
from tests.support.database import db_rows
from tests.support.processes import rbl_command, require_peer
from tests.support.sendmail_peer import (
    IMITATED_DOMAIN,
    IMITATED_IPS,
    LOCAL_LABEL,
    SESSIONS,
    TRAP,
    TRAP_DOMAIN,
    Session,
)

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def captured() -> Iterator[tuple[list[str], Path]]:
    """sendmail's syslog after every session, and the directory holding its replies."""
    require_peer(sendmail_peer.unavailable(), "sendmail")
    directory = Path(tempfile.mkdtemp(prefix="rbl-sendmail-"))
    try:
        lines = sendmail_peer.capture(directory)
        capture = os.environ.get("RBL_CAPTURE_LOGS")
        if capture:  # to refresh tests/data/logs/sendmail.log
            shutil.copy(directory / "syslog", Path(capture, "sendmail.raw"))
        yield lines, directory
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="module")
def read(captured: tuple[list[str], Path]) -> tuple[list[TrapHit], list[tuple[str, str]]]:
    """Every hit of the log in order, and the lines refused with their messages."""
    parse = get_parser("sendmail")
    ctx = ParseContext(now=datetime.now(UTC))
    hits: list[TrapHit] = []
    refused: list[tuple[str, str]] = []
    for line in captured[0]:
        try:
            hits.extend(parse(line, ctx))
        except ParseError as exc:
            refused.append((line, str(exc)))
    return hits, refused


def test_sendmail_refused_what_the_sessions_expect(captured: tuple[list[str], Path]) -> None:
    replies = sendmail_peer.answers(captured[1])
    for session in SESSIONS:
        codes = [code for kind, code, _ in replies[session.label] if kind == "RCPT"]
        refused = len(session.refused) + len(session.unknown) + session.shortened
        assert sum(1 for code in codes if code >= 500) == refused, replies[session.label]


@pytest.mark.parametrize("session", SESSIONS, ids=lambda s: s.label)
def test_check_rcpt_rejections_give_the_client_and_the_real_recipient(
    read: tuple[list[TrapHit], list[tuple[str, str]]], session: Session
) -> None:
    hits = [hit for hit in read[0] if hit.client_ip == session.ip and "ruleset=" in hit.raw]
    assert [hit.rcpt_to for hit in hits] == list(session.refused)
    for hit in hits:
        # The sender comes from the envelope's from= line, which ends the session.
        assert (hit.mail_from, hit.client_name) == (session.sender, session.client_name)
        assert hit.stage == "rcpt"
        verdict, envelope = hit.raw.split("\n")
        assert "ruleset=check_rcpt" in verdict and ": from=" in envelope


@pytest.mark.parametrize("session", SESSIONS, ids=lambda s: s.label)
def test_unknown_users_are_joined_with_their_envelope(
    read: tuple[list[TrapHit], list[tuple[str, str]]], session: Session
) -> None:
    hits = [hit for hit in read[0] if hit.client_ip == session.ip and "ruleset=" not in hit.raw]
    assert [hit.rcpt_to for hit in hits] == list(session.unknown)
    for hit in hits:
        assert (hit.mail_from, hit.client_name, hit.stage) == (
            session.sender,
            session.client_name,
            "rcpt",
        )
        unknown, envelope = hit.raw.split("\n")
        assert unknown.endswith("... User unknown")
        assert ": from=" in envelope


def test_shortened_addresses_are_refused_and_nothing_else(
    read: tuple[list[TrapHit], list[tuple[str, str]]],
) -> None:
    refused = read[1]
    assert len(refused) == sum(session.shortened for session in SESSIONS), refused
    for _, message in refused:
        assert "shortened" in message


def test_no_hit_is_imitated_or_local(read: tuple[list[TrapHit], list[tuple[str, str]]]) -> None:
    hits = read[0]
    ips = {session.ip for session in SESSIONS}
    assert len(hits) == sum(len(s.refused) + len(s.unknown) for s in SESSIONS)
    for hit in hits:
        assert hit.client_ip in ips, hit.raw
        assert hit.client_ip not in IMITATED_IPS
        assert IMITATED_DOMAIN not in (hit.client_name or "")
        assert not (hit.rcpt_to or "").startswith("innocent@")


def test_a_local_submission_is_logged_but_gives_no_hit(
    captured: tuple[list[str], Path],
) -> None:
    replies = sendmail_peer.answers(captured[1])[LOCAL_LABEL]
    assert any(reply.startswith("550 5.2.1") for _, reply in replies), replies
    local = [line for line in captured[0] if "relay=root@localhost" in line]
    assert any("ruleset=check_rcpt" in line for line in local), local
    ctx = ParseContext(now=datetime.now(UTC))
    assert [hit for line in local for hit in get_parser("sendmail")(line, ctx)] == []


def test_rbl_ingest_lists_the_clients_of_the_fresh_log(
    captured: tuple[list[str], Path], config_path: Path, tmp_path: Path
) -> None:
    """The whole path: ``rbl ingest --format sendmail`` on the log, joins included."""
    log = tmp_path / "mail.log"
    log.write_text("\n".join(captured[0]) + "\n", encoding="utf-8")
    with config_path.open("a") as config:  # the RHSBL zone for domains tied to the sender
        config.write('\n[listing]\nip_zone = "bl.example.org"\ndomain_zone = "dbl.example.org"\n')
    # The hostile-sender session's unknown user is a trap too: stored through the join.
    hostile = next(s for s in SESSIONS if s.label.startswith("sender imitates"))
    rbl_command(config_path, "traps", "add", TRAP, f"@{TRAP_DOMAIN}", *hostile.unknown)
    result = rbl_command(config_path, "ingest", "--format", "sendmail", str(log))
    parsed = sum(len(s.refused) + len(s.unknown) for s in SESSIONS)
    shortened = sum(s.shortened for s in SESSIONS)
    assert f"hits parsed: {parsed}  malformed: {shortened}" in result.stdout, result.stdout
    joined = db_rows(
        config_path, f"SELECT client_ip, mail_from FROM hits WHERE rcpt_to = '{hostile.unknown[0]}'"
    )
    assert joined == [(hostile.ip, hostile.sender)]
    listed = db_rows(config_path, "SELECT zone, key FROM listings WHERE state='active'")
    # Every IPv4 client hit a trap; 2001:db8::/32 is documentation space, never listed.
    ips = {str(key).split("/")[0] for zone, key in listed if zone == "bl.example.org"}
    assert ips == {s.ip for s in SESSIONS if ":" not in s.ip}
    domains = {str(key) for zone, key in listed if zone == "dbl.example.org"}
    # The senders' domains that the verified client names lie in (known from the joined
    # from= lines); none from the hostile senders or unverified names.
    tied = {
        s.sender.partition("@")[2]
        for s in SESSIONS
        if s.client_name
        and ":" not in s.ip
        and s.client_name.endswith("." + s.sender.partition("@")[2])
    }
    assert tied == {"real2.example", "real6.example"}
    assert domains == tied, domains
