"""Exim main log (and reject log) lines -> TrapHits.

Two kinds of line are hits (Exim specification, chapter "Log files"; Exim
src/log.c and host.c):

- a recipient rejected by the RCPT ACL (``deny``/``defer``; ``temporarily
  rejected`` for the latter)::

      2026-11-23 06:15:31 H=mail.example.com (helo.example) [192.0.2.1]:54321
        I=[198.51.100.25]:25 F=<spammer@example.net> rejected RCPT <trap@example.org>: ...

- an arrival, when ``log_selector = +received_recipients`` appends the
  accepted recipients (log.c ``LOG_RECIPIENTS``: `` for`` then each raw
  address; ``+received_sender`` puts `` from <sender>`` just before)::

      2026-11-23 06:15:31 1vABCD-000123-XY <= spammer@example.net
        H=mail.example.com [192.0.2.1] P=esmtp S=1234 ... for trap@example.org other@example.org

  One hit per recipient. ``(=`` (``control = fakereject``) arrivals count the
  same. An arrival without `` for `` cannot tell its recipients and one
  without ``H=`` was submitted locally: no hits.

The host part follows host.c ``host_build_sender_fullhost``: ``[ip]``,
``name [ip]``, ``(helo) [ip]`` or ``name (helo) [ip]``, ``:port`` appended
with ``+incoming_port``. ``name`` is Exim's forward-confirmed host name and
becomes ``client_name``. Exim leaves the HELO out when it equals the name or
the IP literal, or when there was none, so ``helo`` is None unless shown in
parentheses. Other fields (``U=``, ``I=``, ``X=``, ``P=``...) are skipped.

Stamps: ``2026-11-23 06:15:31``, optionally ``.123`` (``+millisec``) and
`` +0100`` (``log_timezone``), then an optional ``[pid]`` (``+pid``). Lines
sent to syslog (``log_file_path = syslog``) are read behind a syslog header of
program ``exim``/``exim4``, with or without Exim's own stamp
(``syslog_timestamp``). A line that starts with ``H=... F=<...>`` and says
``rejected RCPT`` but does not parse raises ParseError, as does an arrival
with recipients whose host part is broken. Imports only the standard library
and this package.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Final

from rbl.feeds.parsers import stamps, syslogline
from rbl.feeds.parsers.context import ParseContext
from rbl.feeds.parsers.normalise import client_ip, helo_name, mail_address
from rbl.traphit import ParseError, TrapHit

NAME: Final = "exim"

_STAMP: Final = re.compile(
    r"(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{3})?(?: [+-]\d{4})?) (?:\[\d+(?:/\d+)?\] )?"
)
_MSGID: Final = r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4}"
_HOST: Final = (
    r"H=(?:(?P<name>[^\s(\[]\S*) )?(?:\((?P<helo>.*?)\) )?\[(?P<ip>[^\]\s]+)\](?:[:.]\d+)?"
)
_REJECT: Final = re.compile(
    rf"(?:{_MSGID} )?{_HOST}(?: \S+)*? F=<(?P<from>.*?)> (?:temporarily )?rejected RCPT"
    r" <(?P<to>.*?)>(?::.*)?"
)
_ARRIVAL: Final = re.compile(rf"{_MSGID} [<(]= (?P<from>\S+) ")
_HOST_RE: Final = re.compile(_HOST)


def _body(line: str) -> tuple[int, str | None, re.Match[str] | None]:
    """Where Exim's message text starts, its own stamp, and the syslog header if any."""
    stamp = _STAMP.match(line)
    if stamp is not None:
        return stamp.end(), stamp.group("ts"), None
    head = syslogline.header(line)
    if head is None or not head.group("prog").startswith("exim"):
        return -1, None, None
    stamp = _STAMP.match(line, head.end())
    if stamp is not None:
        return stamp.end(), stamp.group("ts"), head
    return head.end(), None, head


def _time(ts: str | None, head: re.Match[str] | None, ctx: ParseContext) -> datetime:
    if ts is not None:
        return stamps.exim(ts, ctx.tz)
    if head is not None:
        return syslogline.header_time(head, ctx)
    raise ParseError("exim line without a timestamp")  # pragma: no cover - _body gives one


def parse(line: str, ctx: ParseContext) -> list[TrapHit]:
    """The hits in one Exim log line: none, one, or one per logged recipient."""
    rejected = " rejected RCPT <" in line
    if not rejected and "<= " not in line and "(= " not in line:
        return []
    line = line.rstrip("\r\n")
    start, ts, head = _body(line)
    if start < 0:
        return []
    if rejected:
        return _rejected(line, start, ts, head, ctx)
    return _arrival(line, start, ts, head, ctx)


def _rejected(
    line: str, start: int, ts: str | None, head: re.Match[str] | None, ctx: ParseContext
) -> list[TrapHit]:
    m = _REJECT.fullmatch(line, start)
    if m is None:
        if line.startswith("H=", start) or "F=<" in line:
            raise ParseError(
                "exim rejected RCPT line is not 'H=... [ip] F=<from> rejected RCPT <to>': "
                f"{line[:200]!r}"
            )
        return []
    name = m.group("name")
    return [
        TrapHit(
            at=_time(ts, head, ctx),
            client_ip=client_ip(m.group("ip")),
            rcpt_to=mail_address(m.group("to")),
            mail_from=mail_address(m.group("from")),
            helo=helo_name(m.group("helo")),
            feed=ctx.feed or NAME,
            raw=line,
            client_name=name,
            stage="rcpt",
        )
    ]


def _arrival(
    line: str, start: int, ts: str | None, head: re.Match[str] | None, ctx: ParseContext
) -> list[TrapHit]:
    m = _ARRIVAL.match(line, start)
    if m is None:
        return []
    host_at = line.find(" H=", m.end() - 1)
    recipients_at = line.rfind(" for ")
    if host_at < 0 or recipients_at < host_at:
        return []  # local submission, or no +received_recipients
    recipients = line[recipients_at + 5 :]
    if '"' in recipients:
        return []  # " for " inside a quoted field (T="..."): no recipient list
    host = _HOST_RE.match(line, host_at + 1)
    if host is None:
        raise ParseError(f"exim arrival has an H= field without '[ip]': {line[:200]!r}")
    at = _time(ts, head, ctx)
    ip = client_ip(host.group("ip"))
    sender = mail_address(m.group("from"))
    helo = helo_name(host.group("helo"))
    name = host.group("name")
    feed = ctx.feed or NAME
    return [
        TrapHit(
            at=at,
            client_ip=ip,
            rcpt_to=mail_address(rcpt),
            mail_from=sender,
            helo=helo,
            feed=feed,
            raw=line,
            client_name=name,
            stage="data",
        )
        for rcpt in recipients.split(" ")
        if rcpt
    ]
