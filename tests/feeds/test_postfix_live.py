"""A real Postfix asks the policy feed about a real SMTP session.

A throwaway Postfix instance (its own main.cf, master.cf and queue in a tmp
directory, smtpd on 127.0.0.1 and a free port, everything delivered to
``discard``) calls ``check_policy_service`` on a PolicyServerFactory running
in a subprocess, which prints one JSON line per submitted TrapHit. Needs the
Debian ``postfix`` package (installed by scripts/test) and root, as Postfix's
master does; outside CI a machine without them skips, in CI it fails.
"""

from __future__ import annotations

import os
import shutil
import smtplib
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rbl.feeds.parsers import ParseContext, get_parser
from rbl.model.traphit import ParseError, TrapHit
from rbl.model.traps import TrapMatcher, parse_trap
from rbl.policy.trapfilter import TrapFilter
from tests.support.hostile_sessions import IMITATED_DOMAIN, IMITATED_IPS, TRAP, Session, sessions
from tests.support.postfix import (
    IDN_TRAP,
    PolicyServer,
    read_maillog,
    run_postfix,
    stop_policy_server,
    unavailable,
)
from tests.support.processes import require_peer

pytestmark = pytest.mark.slow


@dataclass
class Instance:
    port: int
    directory: Path

    def maillog(self) -> list[str]:
        """Postfix's log so far, decoded as rbl ingest decodes it."""
        return read_maillog(self.directory)


@pytest.fixture
def mta(postfix_instance: Instance) -> int:
    """A Postfix instance that asks ``policy_server``; its SMTP port."""
    return postfix_instance.port


@pytest.fixture
def postfix_instance(tmp_path: Path, policy_server: PolicyServer) -> Iterator[Instance]:
    """A Postfix instance that asks ``policy_server`` and refuses the hostile sessions' traps
    from clients outside mynetworks (XCLIENT lets the test be such a client)."""
    require_peer(unavailable(), "Postfix")
    # Not under tmp_path: Postfix's daemons run as the postfix user, which must reach
    # the queue and data directories, and pytest's base temporary directory is 0700.
    directory = Path(tempfile.mkdtemp(prefix="rbl-postfix-"))
    directory.chmod(0o755)
    try:
        for port in run_postfix(directory, tmp_path, policy_server):
            yield Instance(port, directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def test_postfix_reports_trap_hits_through_the_policy_service(
    mta: int, policy_server: PolicyServer
) -> None:
    with smtplib.SMTP("127.0.0.1", mta, local_hostname="spammer.example.net", timeout=30) as smtp:
        refused = smtp.sendmail(
            "Bulk@Sender.example.net",
            ["SpamTrap@Example.org", "someone@example.org"],
            b"Subject: hello\r\n\r\nbuy now\r\n",
        )
        assert refused == {}  # DUNNO: the policy feed never blocks mail
        # A second message on the same SMTP session, from the null sender.
        assert smtp.sendmail("", [TRAP], b"Subject: bounce\r\n\r\nx\r\n") == {}
    records = stop_policy_server(policy_server)
    hits = [record["hit"] for record in records if "hit" in record]
    assert len(hits) == 2, records
    first, second = hits
    assert isinstance(first, dict) and isinstance(second, dict)
    assert first["client_ip"] == "127.0.0.1"
    assert first["rcpt_to"] == TRAP
    assert first["mail_from"] == "Bulk@Sender.example.net"
    assert first["helo"] == "spammer.example.net"
    assert first["feed"] == "policy"
    assert first["trap_asserted"] is False
    assert "recipient=SpamTrap@Example.org" in str(first["raw"])
    assert "protocol_state=RCPT" in str(first["raw"])
    assert second["mail_from"] == ""
    assert second["rcpt_to"] == TRAP
    counters = next(record["counters"] for record in records if "counters" in record)
    assert isinstance(counters, dict)
    assert counters["hits"] == 2 and counters["errors"] == 0 and counters["malformed"] == 0
    assert counters["requests"] >= 3  # one per RCPT at least


# --- hostile sessions through XCLIENT -----------------------------------------------------

HOSTILE_PREFIX = "45.33.13"


def hostile_session(port: int, session: Session) -> list[str]:
    """Run one hostile session as XCLIENT client ``session.ip``; the replies to the RCPTs."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname="relay.example.org", timeout=30) as smtp:
        smtp.command_encoding = "utf-8"
        name = session.name or "[UNAVAILABLE]"
        code, reply = smtp.docmd("XCLIENT", f"ADDR={session.ip} NAME={name}")
        assert code == 220, reply
        code, reply = smtp.docmd("EHLO", session.helo)
        assert code == 250, reply
        code, reply = smtp.docmd("MAIL", f"FROM:{session.mail_from}")
        assert code == 250, reply
        replies = []
        for rcpt in session.rcpts:
            code, reply = smtp.docmd("RCPT", f"TO:{rcpt}")
            replies.append(f"{code} {reply.decode(errors='replace')}")
        smtp.docmd("RSET")
    return replies


def hostile_maillog(instance: Instance) -> tuple[list[str], dict[str, list[str]]]:
    """Every hostile session's log lines, once Postfix has written its verdicts, and the
    traps each session's verdicts must name: those Postfix refused by the access map
    (a recipient it refuses as bad syntax, 501, gets no verdict line at all)."""
    verdicts: dict[str, list[str]] = {}
    for session in sessions(HOSTILE_PREFIX):
        replies = hostile_session(instance.port, session)
        verdicts[session.ip] = []
        for rcpt, reply in zip(session.rcpts, replies, strict=True):
            if "no such user" in reply:
                verdicts[session.ip].append(session.traps[len(verdicts[session.ip])])
            else:
                assert reply.startswith(("250 ", "501 5.1.3 Bad recipient address syntax")), (
                    rcpt,
                    reply,
                )
    expected = sum(len(traps) for traps in verdicts.values())
    deadline = time.monotonic() + 30
    while True:
        lines = [line for line in instance.maillog() if "reject: RCPT from" in line]
        if len(lines) >= expected or time.monotonic() > deadline:
            return instance.maillog(), verdicts
        time.sleep(0.1)


def test_hostile_sessions_give_the_connecting_ip_and_real_trap(
    postfix_instance: Instance,
) -> None:
    log, verdicts = hostile_maillog(postfix_instance)
    capture = os.environ.get("RBL_CAPTURE_LOGS")
    if capture:  # to refresh tests/data/logs/postfix.hostile.log
        Path(capture, "postfix.hostile.raw").write_text("\n".join(log) + "\n")
    assert sum(len(traps) for traps in verdicts.values()) >= 10
    parse = get_parser("postfix")
    ctx = ParseContext(now=datetime.now(UTC))
    hits: list[TrapHit] = []
    for line in log:
        try:
            hits += parse(line, ctx)
        except ParseError as exc:
            raise AssertionError(f"real Postfix line refused: {line}") from exc
    for hit in hits:
        assert hit.client_ip not in IMITATED_IPS and IMITATED_DOMAIN not in (hit.client_name or "")
        assert hit.rcpt_to != "innocent@example.org", hit.raw
    for session in sessions(HOSTILE_PREFIX):
        mine = [hit for hit in hits if hit.client_ip == session.ip]
        assert [hit.rcpt_to for hit in mine] == verdicts[session.ip], log
        for hit in mine:
            assert hit.mail_from == session.sender
            assert hit.client_name == session.name
            assert hit.stage == "rcpt"


def test_smtputf8_recipient_of_an_ascii_form_trap_is_a_hit_in_both_feeds(
    postfix_instance: Instance, policy_server: PolicyServer
) -> None:
    """Postfix (smtputf8_enable, on at compatibility_level 3.6) passes and logs an SMTPUTF8
    recipient in UTF-8; the trap was stored as punycode. Both the policy feed and the log
    parser plus the trap matcher count it, and the public filter redacts the line."""
    with smtplib.SMTP(
        "127.0.0.1", postfix_instance.port, local_hostname="relay.example.org", timeout=30
    ) as smtp:
        smtp.command_encoding = "utf-8"
        assert smtp.docmd("XCLIENT", f"ADDR={HOSTILE_PREFIX}.20 NAME=[UNAVAILABLE]")[0] == 220
        code, reply = smtp.docmd("EHLO", "pc20.example")
        assert code == 250 and b"SMTPUTF8" in reply, reply
        assert smtp.docmd("MAIL", "FROM:<bulk@sender.example> SMTPUTF8")[0] == 250
        code, reply = smtp.docmd("RCPT", "TO:<SpamTrap@bücher.example>")
        assert code == 554 and b"no such user" in reply, reply  # the access map
    records = stop_policy_server(policy_server)
    hits = [record["hit"] for record in records if "hit" in record]
    assert [(hit["client_ip"], hit["rcpt_to"]) for hit in hits] == [  # type: ignore[index]
        (f"{HOSTILE_PREFIX}.20", "spamtrap@bücher.example")
    ]
    deadline = time.monotonic() + 30
    while True:
        lines = [line for line in postfix_instance.maillog() if "reject: RCPT from" in line]
        if lines or time.monotonic() > deadline:
            break
        time.sleep(0.1)
    capture = os.environ.get("RBL_CAPTURE_LOGS")
    if capture:  # to refresh tests/data/logs/postfix.smtputf8.log
        Path(capture, "postfix.smtputf8.raw").write_text("\n".join(lines) + "\n")
    (line,) = lines
    assert "to=<SpamTrap@bücher.example>" in line, line
    (hit,) = get_parser("postfix")(line, ParseContext(now=datetime.now(UTC)))
    assert (hit.client_ip, hit.rcpt_to) == (f"{HOSTILE_PREFIX}.20", "spamtrap@bücher.example")
    assert TrapMatcher([parse_trap(IDN_TRAP)]).match(hit.rcpt_to) is not None
    shown = TrapFilter.of([IDN_TRAP], []).redact(line)
    assert "bücher" not in shown.lower() and "[redacted]" in shown, shown
