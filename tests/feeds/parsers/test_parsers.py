"""Parser contract: registry, clock and zones, feed override, and never crashing on junk."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rbl.feeds.parsers import PARSERS, LineParser, ParseContext, get_parser, stamps
from rbl.feeds.parsers.normalise import client_ip, mail_address
from rbl.model.traphit import ParseError, TrapHit
from tests.support.log_samples import all_cases

NOW = datetime(2026, 11, 24, tzinfo=UTC)
CTX = ParseContext(now=NOW)
SAMPLES = [case.line for case in all_cases()]

GREY = "{stamp} gw spamd[26931]: (GREY) 192.0.2.1: <a@example.net> -> <trap@example.org>"
POSTFIX = (
    "{stamp} mx1 postfix/smtpd[4321]: NOQUEUE: reject: RCPT from unknown[192.0.2.1]: "
    "550 5.1.1 <trap@example.org>: Recipient address rejected: User unknown; "
    "from=<a@example.net> to=<trap@example.org> proto=ESMTP helo=<h>"
)
EXIM = "{stamp} H=(h) [192.0.2.1] F=<a@example.net> rejected RCPT <trap@example.org>: no"
SENDMAIL = (
    "{stamp} mx sm-mta[21340]: NOQUEUE: ruleset=check_rcpt, arg1=<trap@example.org>, "
    "relay=[192.0.2.1], reject=550 5.2.1 <trap@example.org>... Mailbox disabled for this recipient"
)
ONE_LINE = {
    "spamd": GREY.format(stamp="Nov 23 06:15:31"),
    "spamdb": "TRAPPED|192.0.2.1|1795500931",
    "postfix": POSTFIX.format(stamp="Nov 23 06:15:31"),
    "exim": EXIM.format(stamp="2026-11-23 06:15:31"),
    "sendmail": SENDMAIL.format(stamp="Nov 23 06:15:31"),
    "json": '{"time": "2026-11-23T06:15:31Z", "ip": "192.0.2.1", "to": "trap@example.org"}',
}


def spamd_at(stamp: str, now: datetime, tz: timezone | None = None) -> datetime:
    ctx = ParseContext(now=now) if tz is None else ParseContext(now=now, tz=tz)
    (hit,) = PARSERS["spamd"](GREY.format(stamp=stamp), ctx)
    return hit.at


# --- registry -------------------------------------------------------------------------------


def test_registry_names() -> None:
    assert set(PARSERS) == {"spamd", "spamdb", "postfix", "exim", "sendmail", "json"}
    for name, parser in PARSERS.items():
        assert get_parser(name) is parser


def test_get_parser_names_the_unknown_format_and_the_known_ones() -> None:
    with pytest.raises(ParseError) as raised:
        get_parser("qmail")
    message = str(raised.value)
    assert "'qmail'" in message
    for name in PARSERS:
        assert name in message


def test_context_needs_an_aware_clock() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ParseContext(now=datetime(2026, 11, 24))


# --- common contract ------------------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_blank_lines_are_no_hits(name: str) -> None:
    for line in ("", "\n", "\r\n", "   \n"):
        assert PARSERS[name](line, CTX) == []


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_raw_is_the_line_without_its_newline(name: str) -> None:
    line = ONE_LINE[name]
    for ending in ("", "\n", "\r\n"):
        (hit,) = PARSERS[name](line + ending, CTX)
        assert hit.raw == line
        assert hit.feed == name


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_context_feed_overrides_the_feed_name(name: str) -> None:
    (hit,) = PARSERS[name](ONE_LINE[name], ParseContext(now=NOW, feed="mx2-" + name))
    assert hit.feed == "mx2-" + name


def test_json_feed_key_loses_to_the_context_feed() -> None:
    line = '{"time": 0, "ip": "192.0.2.1", "to": "t@example.org", "feed": "own"}'
    assert PARSERS["json"](line, CTX)[0].feed == "own"
    assert PARSERS["json"](line, ParseContext(now=NOW, feed="ctx"))[0].feed == "ctx"


# --- year inference -------------------------------------------------------------------------


def test_year_inference_across_new_year() -> None:
    new_year = datetime(2027, 1, 1, 0, 0, 5, tzinfo=UTC)
    assert spamd_at("Dec 31 23:59:59", new_year) == datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)


def test_year_inference_allows_one_day_of_clock_skew() -> None:
    late = datetime(2026, 12, 31, 23, 59, 50, tzinfo=UTC)
    assert spamd_at("Jan  1 00:00:30", late) == datetime(2027, 1, 1, 0, 0, 30, tzinfo=UTC)
    # more than a day ahead of the reader: last year's line
    assert spamd_at("Jan  2 00:00:30", late) == datetime(2026, 1, 2, 0, 0, 30, tzinfo=UTC)
    assert spamd_at("Nov 25 00:00:00", NOW) == datetime(2026, 11, 25, tzinfo=UTC)
    assert spamd_at("Nov 25 00:00:01", NOW) == datetime(2025, 11, 25, 0, 0, 1, tzinfo=UTC)


def test_year_inference_finds_the_last_leap_year_for_february_29() -> None:
    march = datetime(2027, 3, 1, tzinfo=UTC)
    assert spamd_at("Feb 29 12:00:00", march) == datetime(2024, 2, 29, 12, tzinfo=UTC)


def test_year_inference_is_done_in_the_context_zone() -> None:
    # 23:30 on Dec 31 in UTC-05:00 is already Jan 1 in UTC: still last year's line
    east = timezone(timedelta(hours=-5))
    now = datetime(2027, 1, 1, 5, 0, tzinfo=UTC)
    assert spamd_at("Dec 31 23:30:00", now, east) == datetime(2027, 1, 1, 4, 30, tzinfo=UTC)


# --- zones ------------------------------------------------------------------------------------


def test_unzoned_stamps_are_in_the_context_zone() -> None:
    plus_one = timezone(timedelta(hours=1))
    ctx = ParseContext(now=NOW, tz=plus_one)
    expected = datetime(2026, 11, 23, 5, 15, 31, tzinfo=UTC)
    assert PARSERS["spamd"](ONE_LINE["spamd"], ctx)[0].at == expected
    assert PARSERS["postfix"](ONE_LINE["postfix"], ctx)[0].at == expected
    assert PARSERS["exim"](ONE_LINE["exim"], ctx)[0].at == expected
    naive_json = '{"time": "2026-11-23T06:15:31", "ip": "192.0.2.1", "to": "t@example.org"}'
    assert PARSERS["json"](naive_json, ctx)[0].at == expected


def test_zoned_stamps_ignore_the_context_zone() -> None:
    ctx = ParseContext(now=NOW, tz=timezone(timedelta(hours=9)))
    expected = datetime(2026, 11, 23, 5, 15, 31, tzinfo=UTC)
    iso = GREY.format(stamp="2026-11-23T06:15:31+01:00")
    assert PARSERS["spamd"](iso, ctx)[0].at == expected
    iso = POSTFIX.format(stamp="2026-11-23T06:15:31+0100")
    assert PARSERS["postfix"](iso, ctx)[0].at == expected
    assert PARSERS["exim"](EXIM.format(stamp="2026-11-23 06:15:31 +0100"), ctx)[0].at == expected
    zulu = '{"time": "2026-11-23T05:15:31Z", "ip": "192.0.2.1", "to": "t@example.org"}'
    assert PARSERS["json"](zulu, ctx)[0].at == expected
    # epoch numbers are absolute
    spamdb = PARSERS["spamdb"]("TRAPPED|192.0.2.1|1795500931", ctx)[0]
    assert spamdb.at == datetime(2026, 11, 23, 6, 15, 31, tzinfo=UTC)


def test_iana_zones_follow_daylight_saving_time() -> None:
    zoneinfo = pytest.importorskip("zoneinfo")
    try:
        berlin = zoneinfo.ZoneInfo("Europe/Berlin")
    except zoneinfo.ZoneInfoNotFoundError:
        pytest.skip("no time zone database on this machine")
    ctx = ParseContext(now=NOW, tz=berlin)
    summer = PARSERS["spamd"](GREY.format(stamp="Jul  1 12:00:00"), ctx)[0]
    winter = PARSERS["spamd"](GREY.format(stamp="Jan  1 12:00:00"), ctx)[0]
    assert summer.at == datetime(2026, 7, 1, 10, tzinfo=UTC)
    assert winter.at == datetime(2026, 1, 1, 11, tzinfo=UTC)
    assert summer.at.tzinfo is UTC


def test_rfc3339_fractions_and_bad_offsets() -> None:
    assert stamps.rfc3339("2026-11-23T06:15:31.123456789Z", UTC) == datetime(
        2026, 11, 23, 6, 15, 31, 123456, tzinfo=UTC
    )
    assert stamps.rfc3339("2026-11-23t06:15:31.5-02:30", UTC) == datetime(
        2026, 11, 23, 8, 45, 31, 500000, tzinfo=UTC
    )
    with pytest.raises(ParseError, match="impossible UTC offset"):
        stamps.rfc3339("2026-11-23T06:15:31+24:00", UTC)
    with pytest.raises(ParseError, match="not a valid date"):
        stamps.rfc3339("2026-13-23T06:15:31Z", UTC)
    with pytest.raises(ParseError, match="not a valid date"):
        stamps.rfc3339("0001-01-01T00:00:00+01:00", UTC)


# --- normalisation ----------------------------------------------------------------------------


def test_client_ip_forms() -> None:
    assert client_ip("192.0.2.1") == "192.0.2.1"
    assert client_ip("::ffff:192.0.2.1") == "192.0.2.1"
    assert client_ip("IPv6:2001:DB8:0:0::1") == "2001:db8::1"
    assert client_ip("ipv6:::FFFF:c000:0201") == "192.0.2.1"
    for bad in ("192.0.2.256", "fe80::1%eth0", "", "example.org", "IPv6:192.0.2.1x"):
        with pytest.raises(ParseError):
            client_ip(bad)


def test_mail_address_forms() -> None:
    assert mail_address("<>") == ""
    assert mail_address(" <Trap@Example.ORG> ") == "trap@example.org"
    assert mail_address("SRS0=abcd=XY=example.net=user@example.org") == (
        "srs0=abcd=xy=example.net=user@example.org"
    )


# --- never anything but ParseError ----------------------------------------------------------


def check(parser: LineParser, line: str) -> None:
    try:
        hits = parser(line, CTX)
    except ParseError:
        return
    assert isinstance(hits, list)
    for hit in hits:
        assert isinstance(hit, TrapHit)
        assert hit.at.tzinfo is UTC
        assert client_ip(hit.client_ip) == hit.client_ip
        assert not hit.raw.endswith("\n")


@pytest.mark.parametrize("name", sorted(PARSERS))
@settings(max_examples=300, deadline=None)
@given(line=st.text())
def test_random_text_gives_hits_or_parse_error(name: str, line: str) -> None:
    check(PARSERS[name], line)


@pytest.mark.parametrize("name", sorted(PARSERS))
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    sample=st.sampled_from(SAMPLES),
    cut=st.integers(min_value=0, max_value=400),
    length=st.integers(min_value=0, max_value=20),
    insert=st.text(
        alphabet=st.sampled_from(list("<>[]():;=|\"' .@-_\\/0123456789abfxAF\t\x00é{},")),
        max_size=12,
    ),
)
def test_mutated_samples_give_hits_or_parse_error(
    name: str, sample: str, cut: int, length: int, insert: str
) -> None:
    check(PARSERS[name], sample[:cut] + insert + sample[cut + length :])


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_hostile_inputs(name: str) -> None:
    parser = PARSERS[name]
    for line in (
        "[" * 100_000,
        '{"time": ' + "9" * 5000 + ', "ip": "192.0.2.1", "to": "a"}',
        '{"time": NaN, "ip": "192.0.2.1", "to": "a"}',
        '{"time": -1e20, "ip": "192.0.2.1", "to": "a"}',
        "\ud800 (GREY) spamd",
        "TRAPPED|192.0.2.1|" + "9" * 5000,
        "Nov 23 06:15:31 gw spamd[1]: Trapping " + "x " * 10_000,
        "2026-11-23 06:15:31 H=" + "(" * 10_000 + " rejected RCPT <",
        "Nov 23 06:15:31 mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from a[b]: " + ";" * 10_000,
    ):
        check(parser, line)
