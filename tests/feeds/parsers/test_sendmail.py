"""The sendmail parser across lines: refusals joined with their envelope, bounds on
what it holds, and hostile senders and recipients shaped like sendmail's own fields.

The single-line cases are in tests/data/logs/sendmail.log (real sendmail 8.17 lines
first); here the same file is read in order through one ParseContext, as ``rbl
ingest`` reads it, and hand-built lines follow sendmail's formats (parseaddr.c
rscheck, deliver.c logsender's ``from=%.200s``, err.c usrerr's shortenstring).
"""

from __future__ import annotations

import os
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from rbl.feeds.parsers import ParseContext, addresses, get_parser, sendmail
from rbl.model.traphit import ParseError, TrapHit
from tests.support.log_samples import LOGS, load
from tests.support.sendmail_peer import SESSIONS

NOW = datetime(2026, 12, 4, tzinfo=UTC)
parse = get_parser("sendmail")
HEAD = "Dec  3 10:14:40 mx sm-mta[28059]: "
QID = "6B3AEe8G028059"
# RBL_HOSTILE_EXAMPLES=5000 for a longer run than the suite's.
HOSTILE = settings(
    max_examples=int(os.environ.get("RBL_HOSTILE_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


def unknown(rcpt: str, qid: str = QID, head: str = HEAD) -> str:
    return f"{head}{qid}: {rcpt}... User unknown"


def envelope(sender: str, relay: str, qid: str = QID, head: str = HEAD) -> str:
    return (
        f"{head}{qid}: from={sender}, size=0, class=0, nrcpts=0, proto=ESMTP, "
        f"daemon=MTA, relay={relay}"
    )


def read_all(lines: list[str], ctx: ParseContext | None = None) -> list[TrapHit]:
    ctx = ctx or ParseContext(now=NOW)
    return [hit for line in lines for hit in parse(line, ctx)]


def real_lines() -> list[str]:
    """The sample file's lines, in order, less the ones it expects refused."""
    return [case.line for case in load(LOGS / "sendmail.log") if case.error is None]


def test_real_refusals_come_out_of_their_envelopes_from_line() -> None:
    """The real lines came from tests/support/sendmail_peer.py's sessions: each session's
    check_rcpt refusals and unknown users, with its sender, client and verified name."""
    hits = read_all(real_lines())
    for session in SESSIONS:
        mine = [hit for hit in hits if hit.client_ip == session.ip]
        assert sorted(hit.rcpt_to or "" for hit in mine) == sorted(
            session.refused + session.unknown
        ), session.label
        for hit in mine:
            assert (hit.mail_from, hit.client_name) == (session.sender, session.client_name)
            first, second = hit.raw.split("\n")
            assert first.endswith("... User unknown") or "ruleset=check_rcpt" in first
            assert ": from=" in second
            assert hit.stage == "rcpt" and hit.helo is None and hit.feed == "sendmail"
    # The local submission's refusals (relay=root@localhost) give none.
    assert not [hit for hit in hits if "root@localhost" in hit.raw]


def test_a_null_sender_probe_to_a_trap_says_so() -> None:
    """Without the join a callback probe's check_rcpt hit would have no sender and look
    like spam; with it the policy sees MAIL FROM:<> (session "IPv6 client without a name")."""
    (hit,) = [hit for hit in read_all(real_lines()) if hit.client_ip == "2001:db8::8"]
    assert hit.mail_from == ""


def test_a_joined_hit_has_the_unknown_lines_time_and_the_contexts_feed() -> None:
    ctx = ParseContext(now=NOW, feed="mx2")
    assert parse(unknown("<nosuch@example.org>"), ctx) == []
    later = HEAD.replace("10:14:40", "10:15:10")
    (hit,) = parse(envelope("<a@b.example>", "[192.0.2.1]", head=later), ctx)
    assert hit.at == datetime(2026, 12, 3, 10, 14, 40, tzinfo=UTC)
    assert hit.feed == "mx2"


def test_an_envelope_without_held_users_and_a_late_unknown_give_nothing() -> None:
    ctx = ParseContext(now=NOW)
    assert parse(envelope("<a@b.example>", "[192.0.2.1]"), ctx) == []
    # Logged after its envelope's from= line: a delivery from the queue, not a refused RCPT.
    assert parse(unknown("<nosuch@example.org>"), ctx) == []
    assert parse(envelope("<a@b.example>", "[192.0.2.1]", qid="6B3AEe8G028060"), ctx) == []


def test_the_join_is_per_syslog_host() -> None:
    ctx = ParseContext(now=NOW)
    parse(unknown("<nosuch@example.org>", head=HEAD.replace(" mx ", " mx2 ")), ctx)
    assert parse(envelope("<a@b.example>", "[192.0.2.1]"), ctx) == []


def test_held_queue_ids_are_bounded_oldest_first() -> None:
    ctx = ParseContext(now=NOW)
    ids = [f"6B3A{n:010d}" for n in range(sendmail.MAX_HELD_IDS + 1)]
    for qid in ids:
        parse(unknown("<nosuch@example.org>", qid=qid), ctx)
    assert parse(envelope("<a@b.example>", "[192.0.2.1]", qid=ids[0]), ctx) == []
    (hit,) = parse(envelope("<a@b.example>", "[192.0.2.1]", qid=ids[-1]), ctx)
    assert hit.rcpt_to == "nosuch@example.org"


def test_held_recipients_per_queue_id_are_bounded() -> None:
    ctx = ParseContext(now=NOW)
    for n in range(sendmail.MAX_HELD_PER_ID):
        parse(unknown(f"<u{n}@example.org>"), ctx)
    with pytest.raises(ParseError, match="already has"):
        parse(unknown("<one-more@example.org>"), ctx)
    assert len(parse(envelope("<a@b.example>", "[192.0.2.1]"), ctx)) == sendmail.MAX_HELD_PER_ID


@pytest.mark.parametrize(
    ("relay", "ip", "name"),
    [
        ("[192.0.2.1]", "192.0.2.1", None),
        ("mail.example.net [192.0.2.1]", "192.0.2.1", "mail.example.net"),
        ("mail.example.net [192.0.2.1] (may be forged)", "192.0.2.1", None),
        ("ident@mail.example.net [192.0.2.1]", "192.0.2.1", "mail.example.net"),
        ("[IPv6:2001:db8:0:0:0:0:0:1]", "2001:db8::1", None),
        ("six.example.net [IPv6:2001:db8::1]", "2001:db8::1", "six.example.net"),
    ],
)
def test_relay_forms(relay: str, ip: str, name: str | None) -> None:
    ctx = ParseContext(now=NOW)
    parse(unknown("<nosuch@example.org>"), ctx)
    (hit,) = parse(envelope("<a@b.example>", relay), ctx)
    assert (hit.client_ip, hit.client_name) == (ip, name)


def test_a_check_rcpt_hit_keeps_the_client_of_its_own_line() -> None:
    ctx = ParseContext(now=NOW)
    verdict = f"{HEAD}{QID}: ruleset=check_rcpt, arg1=<t@example.org>, relay=[192.0.2.1], discard"
    assert parse(verdict, ctx) == []
    (hit,) = parse(envelope("<a@b.example>", "[192.0.2.2]"), ctx)
    assert (hit.client_ip, hit.mail_from, hit.raw.split("\n")[0]) == (
        "192.0.2.1",
        "a@b.example",
        verdict,
    )


def test_a_local_envelope_drops_its_unknown_users() -> None:
    ctx = ParseContext(now=NOW)
    parse(unknown("<nosuch@example.org>"), ctx)
    assert parse(envelope("<root@example.org>", "root@localhost"), ctx) == []
    assert parse(envelope("<a@b.example>", "[192.0.2.1]"), ctx) == []


def test_a_sender_sendmail_cut_at_200_characters_is_unknown_not_guessed() -> None:
    ctx = ParseContext(now=NOW)
    parse(unknown("<nosuch@example.org>"), ctx)
    cut = '<"' + "x>, size=0, relay=[46.46.46.1] " * 10
    (hit,) = parse(envelope(cut[:200], "[192.0.2.1]"), ctx)
    assert (hit.mail_from, hit.client_ip) == (None, "192.0.2.1")


def test_an_envelope_whose_end_is_not_a_client_is_refused() -> None:
    ctx = ParseContext(now=NOW)
    parse(unknown("<nosuch@example.org>"), ctx)
    with pytest.raises(ParseError, match="does not end in ', relay=client'"):
        parse(envelope("<a@b.example>", "[192.0.2.1] trailing"), ctx)


def test_a_shortened_unknown_user_is_refused() -> None:
    address = "<" + "u" * 200 + "@example.org>"
    shown = address[:100] + "..." + address[-100:]
    with pytest.raises(ParseError, match="shortened"):
        parse(unknown(shown), ParseContext(now=NOW))


# --- hostile text in the client's own fields ------------------------------------------------

FRAGMENTS = [
    ", relay=",
    "relay=mail.imitated.example [46.46.46.1]",
    "[46.46.46.2]",
    " (may be forged)",
    ", reject=550 5.7.1 ",
    "arg1=<innocent@example.org>",
    ">",
    "<",
    '"',
    "\\",
    "(",
    ")",
    ", size=0, class=0, nrcpts=0",
    "... User unknown",
    " ",
    ",",
    "@",
    "innocent@example.org",
]
local_parts = st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=5), max_size=8).map("".join)


def quoted(local: str) -> str:
    """A quoted local part as a client sends it and sendmail logs it."""
    return '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'


def expected(local: str, domain: str) -> str:
    return addresses.canonical(local, domain)


@HOSTILE
@given(local=local_parts)
@example(local="x>, relay=[46.46.46.2], reject=550 5.7.1 y")
@example(local="x> (, relay=mail.imitated.example [46.46.46.1]")
def test_a_quoted_recipient_cannot_move_arg1_or_relay(local: str) -> None:
    rcpt = f"<{quoted(local)}@trap.example>"
    line = (
        f"{HEAD}{QID}: ruleset=check_rcpt, arg1={rcpt}, relay=mx.real.example [45.33.14.9], "
        f"reject=550 5.7.1 {rcpt}... no such user"
    )
    ctx = ParseContext(now=NOW)
    try:
        assert parse(line, ctx) == []
    except ParseError:
        return
    (hit,) = parse(envelope("<a@real.example>", "mx.real.example [45.33.14.9]"), ctx)
    assert (hit.client_ip, hit.client_name) == ("45.33.14.9", "mx.real.example")
    assert hit.rcpt_to == expected(local, "trap.example")
    assert hit.mail_from == "a@real.example"


@HOSTILE
@given(local=local_parts, rcpt_local=local_parts)
@example(local="x>, size=0, class=0, nrcpts=0, relay=[46.46.46.1]", rcpt_local="a")
def test_a_quoted_sender_or_unknown_user_cannot_move_the_client(
    local: str, rcpt_local: str
) -> None:
    ctx = ParseContext(now=NOW)
    rcpt = f"<{quoted(rcpt_local)}@example.org>"
    sender = f"<{quoted(local)}@b.example>"
    try:
        parse(unknown(rcpt), ctx)
        hits = parse(envelope(sender[:200], "[45.33.14.9]"), ctx)
    except ParseError:
        return
    for hit in hits:
        assert hit.client_ip == "45.33.14.9"
        assert hit.rcpt_to == expected(rcpt_local, "example.org")
        assert hit.mail_from in (None, expected(local, "b.example"))


@HOSTILE
@given(text=st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=8), max_size=12).map("".join))
def test_unquoted_text_gives_the_real_client_or_parse_error(text: str) -> None:
    ctx = ParseContext(now=NOW)
    lines = [
        f"{HEAD}{QID}: ruleset=check_rcpt, arg1={text}, relay=[45.33.14.9], reject=550 {text}",
        f"{HEAD}{QID}: ruleset=check_rcpt, arg1=<{text}>, relay=[45.33.14.9], reject=550 no",
        unknown(text),
        envelope(text, "[45.33.14.9]"),
        f"{HEAD}NOQUEUE: ruleset=check_rcpt, arg1={text}, relay=[45.33.14.9], reject=550 x",
    ]
    for line in lines:
        try:
            hits = parse(line, ctx)
        except ParseError:
            continue
        for hit in hits:
            assert hit.client_ip == "45.33.14.9", line
