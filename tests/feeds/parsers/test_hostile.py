"""Parsers against what a sender controls: they give the connecting IP and the real
recipient, or refuse the line; and nothing a line holds raises anything but ParseError.

The Exim and Postfix lines here are built as those MTAs write them (Exim
src/host.c host_build_sender_fullhost, smtp_in.c smtp_handle_acl_fail,
receive.c and log.c for arrivals; Postfix smtpd_check.c log_whatsup,
quote_822_local.c, smtpd.c's neutering of the HELO), from HELOs, senders,
recipients and subjects that hypothesis shapes out of the fragments that steer
a naive parser. tests/feeds/test_exim_live.py and test_postfix_live.py check the
same against the real MTAs.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rbl.feeds.parsers import FIELD_LIMITS, PARSERS, ParseContext, addresses
from rbl.feeds.parsers.normalise import client_ip, mail_address
from rbl.model.keys import KeyFormatError, address_key, parse_ip_key
from rbl.model.traphit import ParseError, TrapHit
from rbl.store.schema import hits
from tests.support.hostile_text import (
    EXIM_STAMP,
    FRAGMENTS,
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
CTX = ParseContext(now=NOW)
name = st.one_of(st.none(), st.sampled_from(["mail.real.example", "mx1.sender.example"]))


def exim_local(value: str, quote: bool) -> str:
    """A local part as a client writes it and Exim stores it (parse.c keeps quotes)."""
    if not quote and value and all(addresses._atom_char(ch) for ch in value):
        return value
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def exim_host(ip: str, host_name: str | None, helo: str | None, port: int | None) -> str:
    """host.c host_build_sender_fullhost, as logged after ``H=``."""
    address = f"[{ip}]" + (f":{port}" if port is not None else "")
    if host_name is None:
        return f"({helo}) {address}" if helo is not None else address
    if helo is not None and helo.lower() != host_name.lower():
        return f"{host_name} ({helo}) {address}"
    return f"{host_name} {address}"


def exim_helo(text: str) -> str | None:
    """What Exim keeps of a HELO with helo_accept_junk_hosts: the argument, no NUL or LF,
    without the white space around it."""
    kept = text.replace("\x00", "").replace("\n", "").replace("\r", "").strip(" \t\v\f")
    return kept or None


@dataclass(frozen=True)
class EximClient:
    ip: str
    name: str | None
    helo: str | None  # as Exim keeps it
    sender_local: str  # as Exim stores it (the client's quoting kept)


@st.composite
def exim_client(draw: st.DrawFn) -> EximClient:
    """A connecting host and what it said, as Exim would hold it."""
    local = printable(draw(sender_text))
    return EximClient(
        draw(public_ip),
        draw(name),
        exim_helo(printable(draw(sender_text))),
        exim_local(local, draw(st.booleans())),
    )


@HOSTILE
@given(
    client=exim_client(),
    rcpt_local=sender_text,
    port=st.one_of(st.none(), st.integers(1, 65535)),
    bare=st.booleans(),
)
def test_exim_rejected_rcpt_gives_the_connecting_ip_or_is_refused(
    client: EximClient, rcpt_local: str, port: int | None, bare: bool
) -> None:
    rcpt_value = printable(rcpt_local)
    rcpt = f"{exim_local(rcpt_value, False)}@trap.example"
    host = exim_host(client.ip, client.name, client.helo, port)
    # smtp_handle_acl_fail logs 100 characters of the argument as sent, brackets or not.
    argument = (rcpt if bare else f"<{rcpt}>")[:100]
    line = (
        f"{EXIM_STAMP} H={host} U=root F=<{client.sender_local}@evil.example> "
        f"rejected RCPT {argument}: no such user"
    )
    try:
        found = PARSERS["exim"](line, CTX)
    except ParseError:
        return
    (hit,) = found
    assert hit.client_ip == client.ip, line
    assert hit.client_name == client.name
    assert hit.rcpt_to == addresses.canonical(rcpt_value, "trap.example"), line
    assert hit.mail_from == addresses.canonical(_value(client.sender_local), "evil.example")


def _value(local: str) -> str:
    """The value of a local part written by exim_local."""
    if not local.startswith('"'):
        return local
    return local[1:-1].replace('\\"', '"').replace("\\\\", "\\")


@HOSTILE
@given(
    client=exim_client(),
    rcpt_locals=st.lists(sender_text, min_size=1, max_size=3),
    subject=sender_text,
)
def test_exim_arrival_gives_the_connecting_ip_and_real_recipients_or_is_refused(
    client: EximClient, rcpt_locals: list[str], subject: str
) -> None:
    sender = client.sender_local + "@evil.example"
    host = exim_host(client.ip, client.name, client.helo, None)
    values = [printable(value) for value in rcpt_locals]
    rcpts = [f"{exim_local(value, True)}@example.org" for value in values]
    shown_subject = printable(subject)[:100].replace("\\", "\\\\").replace('"', '\\"')
    line = (
        f"{EXIM_STAMP} 1xYoc6-0007QP-23 <= {sender} H={host} U=root P=esmtp S=319"
        f' T="{shown_subject}" from <{sender}> for {" ".join(rcpts)}'
    )
    try:
        found = PARSERS["exim"](line, CTX)
    except ParseError:
        return
    assert [hit.rcpt_to for hit in found] == [
        addresses.canonical(value, "example.org") for value in values
    ], line
    for hit in found:
        assert hit.client_ip == client.ip and hit.client_name == client.name, line


def exim_delivered(value: str, domain: str, form: str) -> str:
    """deliver.c string_log_address for a delivery of top address ``value@domain``: the
    unquoted local part (log_as_local, lowercased), the unquoted address, or a blackhole,
    then ``<top>`` in the stored form, unless the unquoted address is the top itself."""
    top = f"{exim_local(value, False)}@{domain}"
    if form == "local":
        return f"=> {value.lower()} <{top}> R=local T=mailbox"
    if form == "blackhole":
        return f"=> :blackhole: <{top}> R=blackhole"
    unquoted = f"{value.lower()}@{domain}"
    shown = unquoted if unquoted == top else f"{unquoted} <{top}>"
    return f"** {shown} R=traps: no such user"


@HOSTILE
@given(
    client=exim_client(),
    rcpt_locals=st.lists(sender_text, min_size=1, max_size=3),
    forms=st.lists(st.sampled_from(["local", "blackhole", "failed"]), min_size=3, max_size=3),
)
def test_exim_delivery_gives_the_arrivals_ip_and_real_recipients_or_is_refused(
    client: EximClient, rcpt_locals: list[str], forms: list[str]
) -> None:
    sender = client.sender_local + "@evil.example"
    host = exim_host(client.ip, client.name, client.helo, None)
    arrival = f"{EXIM_STAMP} 1xYoc6-0007QP-23 <= {sender} H={host} U=root P=esmtp S=319"
    ctx = ParseContext(now=NOW)
    try:
        assert PARSERS["exim"](arrival, ctx) == []
    except ParseError:
        return
    values = [printable(value) for value in rcpt_locals]
    for value, form in zip(values, forms, strict=False):
        line = f"{EXIM_STAMP} 1xYoc6-0007QP-23 {exim_delivered(value, 'example.org', form)}"
        try:
            found = PARSERS["exim"](line, ctx)
        except ParseError:
            continue
        expected = addresses.canonical(value, "example.org")
        assert [hit.rcpt_to for hit in found] in ([expected], []), line
        for hit in found:
            assert hit.client_ip == client.ip and hit.client_name == client.name, line
            assert hit.stage == "data"


def spamd_word(text: str) -> str:
    """spamd.c gethelo/setlog: blanks skipped, then the first word (up to a space or tab)."""
    word = printable(text).lstrip(" \t")
    for stop in " \t":
        word = word.partition(stop)[0]
    return word


@HOSTILE
@given(ip=public_ip, helo=sender_text, sender=sender_text, rcpt=sender_text, trap=st.booleans())
def test_spamd_new_entry_gives_the_client_and_its_helo_whatever_the_helo_says(
    ip: str, helo: str, sender: str, rcpt: str, trap: bool
) -> None:
    """grey.c logs the HELO last, after from and to; spamd kept one word of each."""
    kind = "greytrap entry" if trap else "entry"
    words = [spamd_word(text) for text in (sender, rcpt, helo)]
    line = (
        f"{POSTFIX_STAMP} gw spamd[1]: new {kind} {ip} from {words[0]} to {words[1]},"
        f" helo {words[2]}"
    )
    try:
        (hit,) = PARSERS["spamd"](line, CTX)
    except ParseError:
        assert any(ch.isspace() for word in words for ch in word), line
        return
    assert (hit.client_ip, hit.trap_asserted) == (ip, trap), line
    assert hit.helo == (words[2] or None), line
    assert (hit.mail_from, hit.rcpt_to) == (mail_address(words[0]), mail_address(words[1]))


@HOSTILE
@given(
    ip=public_ip,
    host_name=name,
    helo=sender_text,
    local=sender_text,
    rcpt_local=sender_text,
)
def test_postfix_verdict_gives_the_connecting_ip_and_real_recipient(
    ip: str, host_name: str | None, helo: str, local: str, rcpt_local: str
) -> None:
    sender_value = printable(local)
    rcpt_value = printable(rcpt_local)
    sender = postfix_external(sender_value, "evil.example") if sender_value else ""
    rcpt = postfix_external(rcpt_value, "trap.example")
    helo_text = neuter(helo)
    # The reply text holds the recipient as the client typed it (here: as quoted).
    line = (
        f"{POSTFIX_STAMP} mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from "
        f"{host_name or 'unknown'}[{ip}]: 554 5.7.1 <{rcpt}>: Recipient address rejected: "
        f"no such user; from=<{sender}> to=<{rcpt}> proto=ESMTP helo=<{helo_text}>"
    )
    # Never refused: the HELO cannot imitate anything and quoting keeps the rest apart.
    (hit,) = PARSERS["postfix"](line, CTX)
    assert hit.client_ip == ip, line
    assert hit.client_name == host_name
    assert hit.rcpt_to == addresses.canonical(rcpt_value, "trap.example"), line
    expected_sender = addresses.canonical(sender_value, "evil.example") if sender_value else ""
    assert hit.mail_from == expected_sender, line
    assert hit.helo == (helo_text.strip() or None)


# --- nothing but ParseError ---------------------------------------------------------------


@pytest.mark.parametrize("fmt", sorted(PARSERS))
@HOSTILE
@given(text=any_text, fragments=st.lists(st.sampled_from(FRAGMENTS), max_size=10))
def test_any_text_gives_hits_or_parse_error(fmt: str, text: str, fragments: list[str]) -> None:
    prefixes = {
        "exim": f"{EXIM_STAMP} H=(",
        "postfix": f"{POSTFIX_STAMP} mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from a[",
        "spamd": f"{POSTFIX_STAMP} gw spamd[1]: (GREY) ",
        "spamdb": "GREY|",
        "json": '{"time": 0, "ip": "',
        "sendmail": f"{POSTFIX_STAMP} mx sm-mta[1]: 6B3A9rqX021340: ruleset=check_rcpt, arg1=<",
    }
    for line in (text, prefixes[fmt] + text + "".join(fragments)):
        try:
            found = PARSERS[fmt](line, CTX)
        except ParseError:
            continue
        for hit in found:
            assert isinstance(hit, TrapHit)
            assert hit.client_ip.isascii() and client_ip(hit.client_ip) == hit.client_ip


@pytest.mark.parametrize(
    ("fmt", "line"),
    [
        ("exim", f"{EXIM_STAMP} H=([\u00b2.1.1.1]) [\u00b2.1.1.1] F=<a@b> rejected RCPT <t@x>: no"),
        (
            "exim",
            f"{EXIM_STAMP} H=[\u0664\u0665.\u0663\u0663.\u0661\u0662.\u0661\u0661] F=<> "
            "rejected RCPT <t@x>: no",
        ),
        (
            "postfix",
            f"{POSTFIX_STAMP} mx postfix/smtpd[1]: NOQUEUE: reject: RCPT from "
            "unknown[\u0664\u0665.33.12.11]: 554 no; from=<a@b> to=<t@x> proto=ESMTP",
        ),
        ("spamd", f"{POSTFIX_STAMP} gw spamd[1]: (GREY) \u00b2.1.1.1: <a@b> -> <t@x>"),
        ("spamdb", "TRAPPED|\u0664\u0665.33.12.11|1795500931"),
        ("json", '{"time": 0, "ip": "\u0664\u0665.33.12.11", "to": "t@x"}'),
        ("json", '{"time": 0, "ip": "45.33.12.11", "to": "\\udc80@x"}'),
        ("json", '{"time": 0, "ip": "45.33.12.11", "to": "t@x", "helo": "\\ud800"}'),
        ("json", '{"time": 1e12, "ip": "45.33.12.11", "to": "t@x"}'),
        ("json", '{"time": "9999-12-31T23:59:59Z", "ip": "45.33.12.11", "to": "t@x"}'),
        ("json", '{"time": "0001-01-01T00:00:00Z", "ip": "45.33.12.11", "to": "t@x"}'),
        ("json", '{"time": 0, "ip": "45.33.12.11", "to": "t@x", "helo": "' + "h" * 300 + '"}'),
        ("json", '{"time": 0, "ip": "45.33.12.11", "to": "' + "t" * 400 + '@x"}'),
        ("spamdb", "GREY|45.33.12.11|h|<a@b>|<t@x>|99999999999|1|1|1|1"),
        ("exim", "9999-12-31 23:59:59 H=[45.33.12.11] F=<a@b> rejected RCPT <t@x>: no"),
    ],
)
def test_lines_that_used_to_stop_ingest_are_refused(fmt: str, line: str) -> None:
    with pytest.raises(ParseError):
        PARSERS[fmt](line, CTX)


def test_unicode_digits_make_no_shadow_key() -> None:
    for text in ("\u0664\u0665.\u0663\u0663.\u0661\u0662.\u0661\u0661", "\u00b2.1.1.1", "::\u0661"):
        with pytest.raises(ParseError, match="ASCII"):
            client_ip(text)
        with pytest.raises(KeyFormatError):
            address_key(text)
        with pytest.raises(KeyFormatError):
            parse_ip_key(text)
    assert address_key("45.33.12.11") == parse_ip_key("45.33.12.11")


def test_field_limits_are_the_store_columns() -> None:
    for field, limit in FIELD_LIMITS.items():
        assert hits.c[field].type.length == limit, field


def test_far_future_is_refused_but_a_day_of_skew_is_not() -> None:
    soon = (NOW + timedelta(hours=23)).isoformat()
    late = (NOW + timedelta(hours=25)).isoformat()
    line = '{"time": %s, "ip": "45.33.12.11", "to": "t@x"}'
    assert PARSERS["json"](line % json.dumps(soon), CTX)
    with pytest.raises(ParseError, match="more than a day after"):
        PARSERS["json"](line % json.dumps(late), CTX)


def test_quoted_local_parts_have_one_canonical_form() -> None:
    parse = PARSERS["exim"]
    for written in ('"spamtrap"', "spamtrap", '"spam"."trap"'):
        line = f"{EXIM_STAMP} H=[45.33.12.11] F=<> rejected RCPT <{written}@Example.ORG>: no"
        (hit,) = parse(line, CTX)
        expected = "spamtrap@example.org" if "." not in written else "spam.trap@example.org"
        assert hit.rcpt_to == expected
    line = f'{EXIM_STAMP} H=[45.33.12.11] F=<> rejected RCPT <"spam trap"@x>: no'
    assert parse(line, CTX)[0].rcpt_to == '"spam trap"@x'
