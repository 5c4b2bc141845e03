"""Exim delivery lines joined to their arrival: the recipients of an Exim that logs with
its default selector (no ``+received_recipients``).

The real log is tests/data/logs/exim.delivered.log (Exim 4.96, tests/feeds/test_exim_live.py
delivered_sessions), read in order with one ParseContext as rbl ingest reads a file;
the hand-written lines below are what a hostile local part makes of a delivery line.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from rbl.feeds.parsers import ParseContext, exim_deliveries, get_parser
from rbl.model.traphit import ParseError, TrapHit
from tests.support.log_samples import LOGS, load

NOW = datetime(2026, 12, 4, tzinfo=UTC)
ARRIVAL = (
    "2026-12-03 10:19:04 1xZ3u4-0000Fh-16 <= bulk@sender.example H=(pc20.example)"
    " [45.33.12.20] U=root P=esmtp S=229"
)
ID = "1xZ3u4-0000Fh-16"


def read(lines: list[str], ctx: ParseContext | None = None) -> list[TrapHit]:
    ctx = ctx or ParseContext(now=NOW)
    return [hit for line in lines for hit in get_parser("exim")(line, ctx)]


def delivery(rest: str, kind: str = "=>") -> str:
    return f"2026-12-03 10:19:05 {ID} {kind} {rest}"


def test_the_real_log_read_in_order_gives_each_delivered_recipient_of_its_client() -> None:
    cases = load(LOGS / "exim.delivered.log")
    ctx = ParseContext(now=NOW)
    hits: list[TrapHit] = []
    for case in cases:
        try:
            hits += get_parser("exim")(case.line, ctx)
        except ParseError:
            assert case.error is not None, case.where
    data = [(hit.client_ip, hit.rcpt_to) for hit in hits if hit.stage == "data"]
    assert data == [
        ("45.33.12.20", '"a <innocent@example.org> r=blackhole t=x"@example.org'),
        ("45.33.12.20", '"x h=(a) [46.46.46.2] r=y"@trap.example'),
        ("45.33.12.20", '"spam trap"@trap.example'),
        ("45.33.12.20", '"q r"@devnull.example'),
        ("45.33.12.20", "plain@devnull.example"),
        ("45.33.12.21", '"ü x"@bücher.example'),
        ("45.33.12.21", "spamtrap@bücher.example"),
    ]
    for hit in hits:
        if hit.stage == "data":  # the arrival's time, sender and host; the line it came from
            assert hit.at == datetime(2026, 12, 3, 10, 19, 4, tzinfo=UTC)
            assert (hit.mail_from, hit.client_name) == ("bulk@sender.example", None)
            assert hit.helo == ("pc20.example" if hit.client_ip.endswith(".20") else "pc21.example")
            assert " => " in hit.raw or " ** " in hit.raw


@pytest.mark.parametrize(
    ("rest", "rcpt"),
    [
        ('trap <"trap"@example.org> R=local T=mailbox', "trap@example.org"),
        ("trap@elsewhere.example <trap@example.org> R=aliases T=remote", "trap@example.org"),
        ("/dev/null (alias@example.org) <trap@example.org> R=aliases T=file", "trap@example.org"),
        ("|/usr/bin/deliver x <trap@example.org> R=aliases T=pipe", "trap@example.org"),
        (
            "trap@remote.example R=dnslookup T=remote_smtp H=mx [198.51.100.2]",
            "trap@remote.example",
        ),
        # A remote server's message may hold '<a@b>: ': it follows the fields, fits nothing.
        (
            "trap@remote.example R=dnslookup T=remote_smtp H=mx [198.51.100.2]:"
            " SMTP error: 550 <innocent@example.org>: rejected",
            "trap@remote.example",
        ),
    ],
)
def test_the_top_address_is_read_by_what_exim_writes_before_it(rest: str, rcpt: str) -> None:
    (hit,) = read([ARRIVAL, delivery(rest, "**" if "error" in rest else "=>")])
    assert (hit.rcpt_to, hit.client_ip) == (rcpt, "45.33.12.20")


@pytest.mark.parametrize(
    "rest",
    [
        # caseful_local_part: the unquoted local part keeps its 'R='.
        'a <innocent@example.org> R=x@y.example <"a <innocent@example.org> R=x"@y.example> R=r',
        # A pipe whose command holds client text ($local_part).
        "|/usr/bin/x <b@c> R=d <trap@example.org> R=aliases T=pipe",
    ],
)
def test_text_before_the_top_address_imitating_it_refuses_the_line(rest: str) -> None:
    ctx = ParseContext(now=NOW)
    read([ARRIVAL], ctx)
    with pytest.raises(ParseError, match="2 places"):
        read([delivery(rest)], ctx)


def test_each_recipient_counts_once_and_only_for_a_held_remote_arrival() -> None:
    ctx = ParseContext(now=NOW)
    lines = [
        ARRIVAL,
        delivery("trap@example.org R=x T=y defer (-44): retry", "=="),
        delivery("trap@example.org R=x T=y defer (-44): retry", "=="),
        delivery("trap <trap@example.org> R=local T=mailbox"),
        delivery("other <other@example.org> R=local T=mailbox", "->"),
        f"2026-12-03 10:19:06 {ID} Completed QT=2s",  # +queue_time_overall
        delivery("late <late@example.org> R=local T=mailbox"),
    ]
    assert [hit.rcpt_to for hit in read(lines, ctx)] == ["trap@example.org", "other@example.org"]
    local = "2026-12-03 10:20:00 1xZ3u5-0000Fh-17 <= root@mx.example.org U=root P=local S=1"
    assert (
        read([local, "2026-12-03 10:20:01 1xZ3u5-0000Fh-17 => trap <trap@example.org> R=l"]) == []
    )


def test_an_arrival_that_names_its_recipients_is_not_counted_again_by_its_deliveries() -> None:
    with_for = ARRIVAL + " for trap@example.org"
    hits = read([with_for, delivery("trap <trap@example.org> R=local T=mailbox")])
    assert [(hit.rcpt_to, hit.stage) for hit in hits] == [("trap@example.org", "data")]


def test_held_arrivals_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(exim_deliveries, "MAX_HELD", 2)
    ctx = ParseContext(now=NOW)
    ids = ["1xZ3u4-0000Fh-1a", "1xZ3u4-0000Fh-1b", "1xZ3u4-0000Fh-1c"]
    read([ARRIVAL.replace(ID, one) for one in ids], ctx)
    got = read([f"2026-12-03 10:19:05 {one} => t <t@example.org> R=l" for one in ids], ctx)
    assert len(got) == 2  # the oldest was dropped
