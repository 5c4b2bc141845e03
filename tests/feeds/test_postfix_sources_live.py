"""A real Postfix writes the log lines of the sources the ``postfix`` parser reads.

One throwaway instance (own main.cf, master.cf and queue in a tmp directory,
on loopback) with:

- postscreen on one port, refusing a blocklisted client
  (``postscreen_access_list`` reject, ``postscreen_blacklist_action = enforce``,
  no DNS), so it logs ``NOQUEUE: reject: RCPT from [ip]:port`` per recipient;
- smtpd on another, with a milter (tests/data/postfix/milter.py) that rejects at
  end of message (cleanup's ``milter-reject: END-OF-MESSAGE``), header_checks
  that REJECT a Subject (cleanup's ``reject: header``), and mail accepted for a
  trap and delivered by ``virtual`` (and, aliased, under ``orig_to``) and by
  ``discard``, which the parser joins by queue id.

The test reads the lines back through the parser and checks every hit against
the sessions it ran; ``RBL_CAPTURE_LOGS=dir`` writes the log to
``dir/postfix.sources.raw`` to refresh tests/data/logs/postfix.sources.log.
Needs the Debian ``postfix`` package and root (scripts/test installs it).
"""

from __future__ import annotations

import os
import pwd
import shutil
import smtplib
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest

from rbl.feeds.parsers import ParseContext, get_parser
from rbl.model.traphit import ParseError, TrapHit
from tests.support.ports import free_port
from tests.support.postfix import (
    MAIN_CF_HEAD,
    SERVICES,
    read_maillog,
    running,
    unavailable,
)
from tests.support.processes import REPO, require_peer, subprocess_env

pytestmark = pytest.mark.slow

MILTER = REPO / "tests" / "data" / "postfix" / "milter.py"
TRAP_DOMAIN = "traps.example.org"
TRAP = f"spamtrap@{TRAP_DOMAIN}"
ALIAS = f"alias@{TRAP_DOMAIN}"  # virtual_alias_maps: delivered as TRAP, logged orig_to
DISCARDED = "gone@discard.example.org"  # delivered by the discard transport
BLOCKED = "127.0.0.77"  # postscreen's access list refuses it; the source of its sessions

MAIN_CF = (
    MAIN_CF_HEAD
    + """\
mydestination =
inet_interfaces = 127.0.0.1
relay_domains = discard.example.org
transport_maps = inline:{{ discard.example.org=discard:trap }}
default_transport = discard:relay
virtual_mailbox_domains = {trap_domain}
virtual_mailbox_base = {dir}/mail
virtual_mailbox_maps = inline:{{ {trap}=trap/ }}
virtual_alias_maps = inline:{{ {alias}={trap} }}
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
smtpd_authorized_xclient_hosts = 127.0.0.0/8
smtpd_milters = inet:127.0.0.1:{milter_port}
milter_default_action = tempfail
header_checks = regexp:{dir}/header_checks
postscreen_access_list = cidr:{dir}/postscreen_access.cidr
postscreen_blacklist_action = enforce
postscreen_greet_action = ignore
postscreen_dnsbl_sites =
postscreen_cache_map = btree:{dir}/data/postscreen_cache
"""
)

MASTER_CF = (
    """\
127.0.0.1:{screen_port} inet n - n - 1 postscreen
smtpd     pass  - - n - - smtpd
127.0.0.1:{smtp_port} inet n - n - - smtpd
dnsblog   unix  - - n - 0 dnsblog
tlsproxy  unix  - - n - 0 tlsproxy
virtual   unix  - n n - - virtual
"""
    + SERVICES
)


@dataclass
class Instance:
    directory: Path
    screen_port: int
    smtp_port: int

    def maillog(self) -> list[str]:
        return read_maillog(self.directory)


@pytest.fixture
def milter_port() -> Iterator[int]:
    process = subprocess.Popen(
        [sys.executable, str(MILTER)], stdout=subprocess.PIPE, text=True, env=subprocess_env()
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first, f"milter exited {process.wait(timeout=15)} before listening"
        yield int(first)
    finally:
        process.terminate()
        process.wait(timeout=15)
        if process.stdout is not None:
            process.stdout.close()


@pytest.fixture
def instance(tmp_path: Path, milter_port: int) -> Iterator[Instance]:
    require_peer(unavailable(), "Postfix")
    directory = Path(tempfile.mkdtemp(prefix="rbl-postfix-src-"))
    directory.chmod(0o755)
    nobody = pwd.getpwnam("nobody")
    try:
        for sub in ("queue", "data", "mail"):
            (directory / sub).mkdir()
        shutil.chown(directory / "data", "postfix")
        os.chown(directory / "mail", nobody.pw_uid, nobody.pw_gid)
        (directory / "header_checks").write_text("/^Subject:.*header-reject/ REJECT spam subject\n")
        (directory / "postscreen_access.cidr").write_text(f"{BLOCKED}/32 reject\n")
        screen_port, smtp_port = free_port(), free_port()
        (directory / "main.cf").write_text(
            MAIN_CF.format(
                dir=directory,
                trap_domain=TRAP_DOMAIN,
                trap=TRAP,
                alias=ALIAS,
                uid=nobody.pw_uid,
                gid=nobody.pw_gid,
                milter_port=milter_port,
            )
        )
        (directory / "master.cf").write_text(
            MASTER_CF.format(screen_port=screen_port, smtp_port=smtp_port)
        )
        with running(
            directory,
            tmp_path / "postfix-control.log",
            ("127.0.0.1", screen_port),
            ("127.0.0.1", smtp_port),
        ):
            yield Instance(directory, screen_port, smtp_port)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


# The sender of the postscreen session imitates postscreen's own fields.
IMITATING = '"x>, to=<innocent@example.org>, proto=ESMTP, helo=<h"@evil.example'


def screened_session(port: int) -> list[str]:
    """A session from the blocklisted address through postscreen: every RCPT refused."""
    replies = []
    with smtplib.SMTP(
        "127.0.0.1",
        port,
        local_hostname="pc77<;>,x",
        source_address=(BLOCKED, 0),
        timeout=30,
    ) as smtp:
        smtp.ehlo("pc77<;>,x")
        for sender in ("bulk@sender.example", IMITATING):
            code, reply = smtp.docmd("MAIL", f"FROM:<{sender}>")
            assert code == 250, reply
            code, reply = smtp.docmd("RCPT", f"TO:<{TRAP}>")
            replies.append(f"{code} {reply.decode()}")
            smtp.docmd("RSET")
    return replies


def xclient_session(port: int, ip: str, subject: str, rcpts: list[str]) -> str:
    """One message from XCLIENT client ``ip``; the reply to its end of data."""
    with smtplib.SMTP("127.0.0.1", port, local_hostname="relay.example.org", timeout=30) as smtp:
        code, reply = smtp.docmd("XCLIENT", f"ADDR={ip} NAME=[UNAVAILABLE]")
        assert code == 220, reply
        smtp.ehlo(f"pc-{ip.replace('.', '-')}.example")
        code, reply = smtp.docmd("MAIL", "FROM:<offers@spam.example>")
        assert code == 250, reply
        for rcpt in rcpts:
            code, reply = smtp.docmd("RCPT", f"TO:<{rcpt}>")
            assert code == 250, (rcpt, reply)
        code, reply = smtp.data(f"Subject: {subject}\r\n\r\nbuy now\r\n".encode())
        return f"{code} {reply.decode()}"


def wait_for(instance: Instance, done: object, timeout: float = 30.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        log = instance.maillog()
        if (callable(done) and done(log)) or time.monotonic() > deadline:
            return log
        time.sleep(0.1)


def read_all(log: list[str]) -> list[TrapHit]:
    parse = get_parser("postfix")
    ctx = ParseContext(now=datetime.now(UTC))
    hits: list[TrapHit] = []
    for line in log:
        try:
            hits += parse(line, ctx)
        except ParseError as exc:
            raise AssertionError(f"real Postfix line refused: {line}") from exc
    return hits


def test_postscreen_cleanup_and_accepted_mail_lines_are_read(instance: Instance) -> None:
    screened = screened_session(instance.screen_port)
    assert all(reply.startswith("550 5.3.2") for reply in screened), screened
    milter = xclient_session(instance.smtp_port, "45.33.14.1", "milter-reject now", [TRAP])
    header = xclient_session(instance.smtp_port, "45.33.14.2", "header-reject now", [TRAP])
    accepted = xclient_session(instance.smtp_port, "45.33.14.3", "hello", [TRAP, ALIAS, DISCARDED])
    assert milter.startswith("554 5.7.1 Spam message rejected"), milter
    assert header.startswith("550 5.7.1 spam subject"), header
    assert accepted.startswith("250 "), accepted

    def delivered(log: list[str]) -> bool:
        return sum("status=sent" in line for line in log) >= 3 and any(
            ": removed" in line for line in log
        )

    log = wait_for(instance, delivered)
    capture = os.environ.get("RBL_CAPTURE_LOGS")
    if capture:  # to refresh tests/data/logs/postfix.sources.log
        Path(capture, "postfix.sources.raw").write_text("\n".join(log) + "\n")
    hits = read_all(log)
    by_ip: dict[str, list[TrapHit]] = {}
    for hit in hits:
        by_ip.setdefault(hit.client_ip, []).append(hit)
    assert set(by_ip) == {BLOCKED, "45.33.14.1", "45.33.14.2", "45.33.14.3"}, log

    screen = by_ip[BLOCKED]
    assert [(h.rcpt_to, h.stage) for h in screen] == [(TRAP, "rcpt")] * 2
    assert [h.mail_from for h in screen] == ["bulk@sender.example", IMITATING.lower()]
    assert all(h.helo == "pc77<;>,x" and h.client_name is None for h in screen)
    assert len({h.attempt for h in screen}) == 1  # one connection: one client port
    assert screen[0].attempt is not None and screen[0].attempt.startswith("port:")

    for ip in ("45.33.14.1", "45.33.14.2"):
        (hit,) = by_ip[ip]
        assert (hit.rcpt_to, hit.mail_from, hit.stage) == (TRAP, "offers@spam.example", "data")
        assert hit.helo == f"pc-{ip.replace('.', '-')}.example"
        assert hit.attempt is not None and hit.attempt.startswith("queue:")
        assert "/cleanup[" in hit.raw

    accepted_hits = by_ip["45.33.14.3"]
    assert sorted(h.rcpt_to for h in accepted_hits) == sorted([TRAP, ALIAS, DISCARDED])
    assert len({h.attempt for h in accepted_hits}) == 1  # one message, one queue id
    for hit in accepted_hits:
        assert (hit.mail_from, hit.stage, hit.helo) == ("offers@spam.example", "data", None)
        assert hit.raw.split("\n")[0].endswith("client=unknown[45.33.14.3]")

    # Read without the client lines, the deliveries are no hits and no errors.
    unjoined = [line for line in log if ": client=" not in line]
    assert {h.client_ip for h in read_all(unjoined)} == {BLOCKED, "45.33.14.1", "45.33.14.2"}
