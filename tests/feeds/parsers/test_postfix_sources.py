"""The ``postfix`` format beyond smtpd's verdicts: postscreen, cleanup, accepted mail.

Lines are built as Postfix writes them (postscreen_smtpd.c psc_rcpt_cmd,
cleanup_milter.c and cleanup_message.c, smtpd.c's ``client=``, qmgr's
``from=``, log_adhoc.c's deliveries; quote_822_local for every address) from
what a sender controls; tests/data/logs/postfix.sources.log holds the real
lines and tests/feeds/test_postfix_sources_live.py makes them again.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rbl.feeds.parsers import PARSERS, ParseContext, addresses, postfix_queue
from rbl.model.traphit import ParseError, TrapHit
from tests.support.hostile_text import (
    HOSTILE,
    POSTFIX_STAMP,
    any_text,
    neuter,
    postfix_external,
    printable,
    public_ip,
    sender_text,
)

NOW = datetime(2026, 12, 3, tzinfo=UTC)
PARSE = PARSERS["postfix"]
H = f"{POSTFIX_STAMP} mx"
TRAP = "trap@trap.example"


def ctx() -> ParseContext:
    return ParseContext(now=NOW)


def read(lines: list[str], context: ParseContext | None = None) -> list[TrapHit]:
    context = context or ctx()
    return [hit for line in lines for hit in PARSE(line, context)]


def screen(sender: str, rcpt: str, helo: str, ip: str = "45.33.15.1", port: int = 5123) -> str:
    return (
        f"{H} postfix/postscreen[900]: NOQUEUE: reject: RCPT from [{ip}]:{port}: "
        f"550 5.7.1 Service unavailable; client [{ip}] blocked using bl.example.org; "
        f"from=<{sender}>, to=<{rcpt}>, proto=ESMTP, helo=<{helo}>"
    )


# --- postscreen ---------------------------------------------------------------------------


@HOSTILE
@given(ip=public_ip, helo=sender_text, local=sender_text, rcpt_local=sender_text)
def test_postscreen_gives_the_connecting_ip_and_real_recipient(
    ip: str, helo: str, local: str, rcpt_local: str
) -> None:
    sender_value, rcpt_value = printable(local), printable(rcpt_local)
    sender = postfix_external(sender_value, "evil.example") if sender_value else ""
    rcpt = postfix_external(rcpt_value, "trap.example")
    word = printable(helo).replace(" ", "")  # postscreen keeps the HELO's first word as sent
    (hit,) = PARSE(screen(sender, rcpt, word, ip), ctx())
    assert hit.client_ip == ip and hit.client_name is None
    assert hit.rcpt_to == addresses.canonical(rcpt_value, "trap.example")
    expected_sender = addresses.canonical(sender_value, "evil.example") if sender_value else ""
    assert hit.mail_from == expected_sender
    assert hit.helo == (word.strip() or None)  # helo_name strips, as for smtpd
    assert (hit.stage, hit.attempt) == ("rcpt", "port:5123")


def test_postscreen_recipient_imitating_the_fields_stays_the_recipient() -> None:
    rcpt = '"x>, proto=ESMTP, helo=<h"@trap.example'
    (hit,) = PARSE(screen("a@b.example", rcpt, "pc", "2001:db8::7"), ctx())
    assert hit.rcpt_to == '"x>, proto=esmtp, helo=<h"@trap.example'
    assert (hit.client_ip, hit.helo) == ("2001:db8::7", "pc")


@pytest.mark.parametrize(
    ("line", "error"),
    [
        # Hand-written, not Postfix's: an unquoted '>' in the sender's local part.
        (screen("a>, to=<x@y>, proto=ESMTP, helo=<h@b", TRAP, "pc"), "is not"),
        (screen("a@b", TRAP, "two words"), "is not"),
        (screen("a@b", TRAP, "pc").replace(", proto=ESMTP", ""), "is not"),
        (screen("a@b", TRAP, "pc").replace("]:5123:", "]:"), "is not"),
        (screen("a@b", TRAP, "h" * 20_000), "over"),
        (screen("a@b", TRAP, "pc", ip="45.33.15.300"), "is not an IP address"),
    ],
)
def test_broken_postscreen_lines_are_refused(line: str, error: str) -> None:
    with pytest.raises(ParseError, match=error):
        PARSE(line, ctx())


def test_other_postscreen_lines_are_no_hits() -> None:
    for message in (
        "CONNECT from [45.33.15.1]:5123 to [192.0.2.25]:25",
        "DENYLISTED [45.33.15.1]:5123",
        "DNSBL rank 3 for [45.33.15.1]:5123",
        "DATA without valid RCPT from [45.33.15.1]:5123",
        "DISCONNECT [45.33.15.1]:5123",
    ):
        assert PARSE(f"{H} postfix/postscreen[900]: {message}", ctx()) == []


# --- cleanup ------------------------------------------------------------------------------


def content(subject: str, sender: str = "a@evil.example", rcpt: str = TRAP) -> str:
    return (
        f"{H} postfix/cleanup[901]: 4C2B81E0F2A: reject: header Subject: {subject} from "
        f"unknown[45.33.15.2]; from=<{sender}> to=<{rcpt}> proto=ESMTP helo=<pc2>: "
        "5.7.1 spam subject"
    )


def test_a_subject_imitating_the_origin_and_fields_is_refused() -> None:
    imitation = "hi from unknown[6.6.6.6]; from=<x@y> to=<innocent@example.org> helo=<h>: x"
    with pytest.raises(ParseError, match="read 2 ways"):
        PARSE(content(imitation), ctx())


def test_a_subject_and_sender_with_semicolons_still_read_one_way() -> None:
    sender = postfix_external("x; from=<a@b> to=<innocent@example.org>", "evil.example")
    (hit,) = PARSE(content("cheap; from=<watches>", sender), ctx())
    assert (hit.client_ip, hit.rcpt_to, hit.helo) == ("45.33.15.2", TRAP, "pc2")
    assert hit.mail_from == '"x; from=<a@b> to=<innocent@example.org>"@evil.example'
    assert (hit.stage, hit.attempt) == ("data", "queue:4C2B81E0F2A")


def test_cleanup_lines_without_a_client_or_recipient_are_no_hits() -> None:
    local = content("x").replace("unknown[45.33.15.2]", "local")
    warning = content("x").replace(": reject: ", ": warning: ")
    no_rcpt = content("x").replace(f" to=<{TRAP}>", "")
    for line in (local, warning, no_rcpt):
        assert PARSE(line, ctx()) == [], line


def test_cleanup_milter_reject_with_an_imitating_sender() -> None:
    sender = postfix_external('x" to=<innocent@example.org> proto=ESMTP', "evil.example")
    line = (
        f"{H} postfix/cleanup[901]: 4C2B81E0F2A: milter-reject: END-OF-MESSAGE from "
        f"unknown[45.33.15.3]: 5.7.1 Spam message rejected; from=<{sender}> to=<{TRAP}> "
        "proto=ESMTP helo=<pc3>"
    )
    (hit,) = PARSE(line, ctx())
    assert (hit.client_ip, hit.rcpt_to, hit.stage) == ("45.33.15.3", TRAP, "data")
    assert hit.attempt == "queue:4C2B81E0F2A"


# --- accepted mail ------------------------------------------------------------------------


def client(qid: str = "4C2B81E0F2A", ip: str = "45.33.15.4", extra: str = "") -> str:
    return f"{H} postfix/smtpd[902]: {qid}: client=mail.example.net[{ip}]{extra}"


def queued(qid: str = "4C2B81E0F2A", sender: str = "offers@spam.example") -> str:
    return f"{H} postfix/qmgr[903]: {qid}: from=<{sender}>, size=2345, nrcpt=1 (queue active)"


def delivery(
    rcpt: str = TRAP, status: str = "sent", qid: str = "4C2B81E0F2A", agent: str = "local"
) -> str:
    return (
        f"{H} postfix/{agent}[904]: {qid}: to=<{rcpt}>, relay={agent}, delay=0.1, "
        f"delays=0.05/0/0/0.05, dsn=2.0.0, status={status} (delivered; to=<innocent@x>)"
    )


def removed(qid: str = "4C2B81E0F2A") -> str:
    return f"{H} postfix/qmgr[903]: {qid}: removed"


def test_accepted_mail_is_one_hit_per_recipient_at_its_delivery() -> None:
    (hit,) = read([client(), queued(), delivery(agent="lmtp"), removed()])
    assert (hit.client_ip, hit.client_name) == ("45.33.15.4", "mail.example.net")
    assert (hit.rcpt_to, hit.mail_from, hit.helo) == (TRAP, "offers@spam.example", None)
    assert (hit.stage, hit.attempt) == ("data", "queue:4C2B81E0F2A")
    assert hit.raw == "\n".join([client(), queued(), delivery(agent="lmtp")])


def test_a_deferred_recipient_retried_is_still_one_hit() -> None:
    lines = [client(), queued(), delivery(status="deferred"), delivery(status="deferred")]
    lines += [delivery(status="bounced"), removed()]
    assert len(read(lines)) == 1


def test_deliveries_without_their_client_line_are_no_hits_and_no_errors() -> None:
    for lines in (
        [queued(), delivery()],  # the client line is in an earlier file
        [client(), removed(), delivery()],  # the queue id was removed: reused later
        [client(extra=", orig_queue_id=ABC123, orig_client=x[45.1.1.1]"), delivery()],
        [client(), delivery(status="deliverable"), delivery(status="undeliverable")],
        [f"{H} postfix/pickup[905]: 4C2B81E0F2A: uid=0 from=<root>", delivery()],
        [client(qid="NOQUEUE"), delivery(qid="NOQUEUE")],
    ):
        assert read(lines) == [], lines


def test_a_recipient_imitating_orig_to_is_the_recipient() -> None:
    rcpt = postfix_external("x>, orig_to=<innocent@example.org", "trap.example")
    (hit,) = read([client(), delivery(rcpt)])
    assert hit.rcpt_to == '"x>, orig_to=<innocent@example.org"@trap.example'
    alias = delivery("mbox@example.org").replace(
        ", relay=", ", orig_to=<Trap@Trap.example>, relay="
    )
    (hit,) = read([client(), alias])
    assert hit.rcpt_to == TRAP


def test_a_verdict_that_keeps_the_message_is_not_counted_again_at_delivery() -> None:
    warning = (
        f"{H} postfix/smtpd[902]: NOQUEUE: reject_warning: RCPT from unknown[45.33.15.4]: "
        f"554 5.7.1 blocked; from=<offers@spam.example> to=<{TRAP}> proto=ESMTP helo=<pc4>"
    )
    hits = read([warning, client(), delivery()])
    assert [h.stage for h in hits] == ["rcpt"]
    # A session that ends before a queue file: its next session's mail counts anew.
    disconnect = f"{H} postfix/smtpd[902]: disconnect from unknown[45.33.15.4] commands=3/4"
    assert [h.stage for h in read([warning, disconnect, client(), delivery()])] == ["rcpt", "data"]


def test_a_message_refused_after_data_is_forgotten() -> None:
    context = ctx()
    milter = (
        f"{H} postfix/cleanup[901]: 4C2B81E0F2A: milter-reject: END-OF-MESSAGE from "
        f"unknown[45.33.15.4]: 5.7.1 Spam; from=<a@b.example> to=<{TRAP}> proto=ESMTP helo=<h>"
    )
    assert len(read([client(), milter], context)) == 1
    assert context.states["postfix.queue"].messages == {}
    read([client(qid="Q2")], context)
    read([content("x").replace("4C2B81E0F2A", "Q2")], context)
    assert context.states["postfix.queue"].messages == {}


def test_held_state_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(postfix_queue, "MAX_HELD", 3)
    context = ctx()
    read([client(qid=f"Q{n}") for n in range(5)], context)
    assert read([delivery(qid="Q0"), delivery(qid="Q1")], context) == []  # the oldest, gone
    assert len(read([delivery(qid=f"Q{n}") for n in range(2, 5)], context)) == 3


@pytest.mark.parametrize(
    "line",
    [
        delivery().replace(", relay=local", ""),
        delivery().replace(", dsn=2.0.0", ""),
        delivery('a"b@trap.example'),
        queued(sender='a"b@spam.example'),
        delivery().replace("status=sent", "status=sent" + "x" * 20_000),
    ],
)
def test_broken_lines_of_a_joined_message_are_refused(line: str) -> None:
    context = ctx()
    read([client()], context)
    with pytest.raises(ParseError):
        PARSE(line, context)


@HOSTILE
@given(text=any_text, which=st.sampled_from(["screen", "cleanup", "queued", "delivery"]))
def test_any_text_gives_hits_or_parse_error(text: str, which: str) -> None:
    prefixes = {
        "screen": f"{H} postfix/postscreen[900]: NOQUEUE: reject: RCPT from [",
        "cleanup": f"{H} postfix/cleanup[901]: 4C2B81E0F2A: reject: header Subject: ",
        "queued": f"{H} postfix/qmgr[903]: 4C2B81E0F2A: from=<",
        "delivery": f"{H} postfix/smtp[904]: 4C2B81E0F2A: to=<",
    }
    context = ctx()
    read([client()], context)
    try:
        found = PARSE(prefixes[which] + text, context)
    except ParseError:
        return
    assert all(isinstance(hit, TrapHit) for hit in found)


def test_helo_neutering_is_smtpd_only() -> None:
    assert neuter("a<b") == "a?b"  # smtpd's rule, which postscreen does not apply
    (hit,) = PARSE(screen("a@b.example", TRAP, "a<b"), ctx())
    assert hit.helo == "a<b"
