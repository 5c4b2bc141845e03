"""Exim main log (and reject log) lines -> TrapHits.

Two kinds of line are hits (Exim specification, chapter "Log files"; Exim
src/log.c and host.c):

- a recipient rejected by the RCPT ACL (``deny``/``defer``; ``temporarily
  rejected`` for the latter)::

      2026-11-23 06:15:31 H=mail.example.com (helo.example) [192.0.2.1]:54321
        I=[198.51.100.25]:25 F=<spammer@example.net> rejected RCPT <trap@example.org>: ...

  The RCPT argument is logged as the client sent it: ``<trap@example.org>``,
  or bare ``trap@example.org`` / ``"spam trap"@example.org``; either is read
  by Exim's address grammar and must be the whole argument (_rcpt_argument).

- an arrival, when ``log_selector = +received_recipients`` appends the
  accepted recipients (log.c ``LOG_RECIPIENTS``: `` for`` then each raw
  address; ``+received_sender`` puts `` from <sender>`` just before)::

      2026-11-23 06:15:31 1vABCD-000123-XY <= spammer@example.net
        H=mail.example.com [192.0.2.1] P=esmtp S=1234 ... for trap@example.org other@example.org

  One hit per recipient. ``(=`` (``control = fakereject``) arrivals count the
  same. An arrival without ``H=`` was submitted locally: no hits.

- without ``+received_recipients`` (Exim's default) an arrival names no
  recipient; its delivery lines do. The remote arrival is held by message id
  and each of its delivery lines is a hit for its top address
  (``exim_deliveries``).

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
with recipients whose host part is broken, or a delivery line of a held
arrival whose top address cannot be told. Imports only the standard library
and this package.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Final

from rbl.feeds.parsers import addresses, exim_deliveries, stamps, syslogline
from rbl.feeds.parsers.context import ParseContext
from rbl.feeds.parsers.normalise import client_ip, helo_name
from rbl.model.traphit import ParseError, TrapHit

NAME: Final = "exim"
# Exim's log buffer is 8 KiB (LOG_BUFFER_SIZE); a longer line was not written by it.
MAX_LINE: Final = 16 * 1024
# Exim cuts the RCPT argument it logs at 100 characters (smtp_in.c smtp_handle_acl_fail).
MAX_RCPT_ARG: Final = 100
# More places that look like the end of "(helo) [ip]" than this: refused unread.
MAX_READINGS: Final = 8

_STAMP: Final = re.compile(
    r"(?P<ts>\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d{3})?(?: [+-]\d{4})?) (?:\[\d+(?:/\d+)?\] )?",
    re.ASCII,
)
_MSGID: Final = exim_deliveries.MSGID
_REJECT_START: Final = re.compile(rf"(?:{_MSGID} )?H=", re.ASCII)
_ARRIVAL: Final = re.compile(rf"(?P<id>{_MSGID}) [<(]= ", re.ASCII)
# The end of a host part shown with a HELO: ") [ip]" and maybe ":port", then a space
# or the end. Anything of this shape after "H=(" is counted: the real one is there
# once; a second one is a HELO or later field imitating it.
_HELO_END: Final = re.compile(
    r"\) \[(?P<ip>(?:[Ii][Pp][Vv]6:)?[0-9A-Fa-f:.]+)\](?::[0-9]+)?(?= |$)", re.ASCII
)
_BARE_IP: Final = re.compile(r"\[(?P<ip>[0-9A-Fa-f:.]+)\](?::[0-9]+)?(?= |$)", re.ASCII)
_FIELD: Final = re.compile(
    r" (?:[A-Za-z][A-Za-z0-9]*\*?=[^ ]*|[A-Z][A-Za-z0-9]*[*.-]*)(?= |$)", re.ASCII
)
_REJECTED: Final = re.compile(
    r"(?: A=[^ ]*)? (?P<temp>temporarily )?rejected (?P<what>RCPT )?", re.ASCII
)
# Fields Exim writes without escaping spaces: the ident (string_printing keeps
# spaces) and the authenticated id. A reading that breaks right after one may be
# the real one with a space in it, so the line is refused rather than read another way.
_UNESCAPED: Final = frozenset({"U", "A"})
_SHAPES: Final = {
    "rejected RCPT": "H=... [ip] F=<from> rejected RCPT <to>",
    "arrival": "<= from H=... [ip] fields... for to...",
}
_QUOTED: Final = re.compile(addresses.QUOTED, re.DOTALL)
_ROUTE: Final = re.compile(r"@[^ :<>\"]*:", re.ASCII)


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
    rejected = " rejected RCPT " in line
    if (
        not rejected
        and "<= " not in line
        and "(= " not in line
        and not any(mark in line for mark in exim_deliveries.MARKS)
    ):
        return []
    line = line.rstrip("\r\n")
    start, ts, head = _body(line)
    if start < 0:
        return []
    if len(line) > MAX_LINE:
        raise ParseError(
            f"exim line is {len(line)} characters long, over {MAX_LINE}: {line[:200]!r}"
        )
    arrival = _ARRIVAL.match(line, start)
    if arrival is not None:
        return _arrival(line, arrival, ts, head, ctx)
    delivery = exim_deliveries.DELIVERY.match(line, start)
    if delivery is not None:
        return exim_deliveries.delivery(line, delivery, ctx)
    completed = exim_deliveries.COMPLETED.match(line, start)
    if completed is not None:
        exim_deliveries.forget(ctx, completed.group("id"))
        return []
    if rejected:
        return _rejected(line, start, ts, head, ctx)
    return []


class _Hard(ParseError):
    """A reading failed where a field Exim writes unescaped (U= ident, A= id) may hold
    spaces: the real reading could be this one, so no other may be taken."""


class _Host:
    """One reading of the host part ``H=[name ][(helo) ][ip][:port]``: where it ends."""

    __slots__ = ("end", "helo", "ip", "name")

    def __init__(self, name: str | None, helo: str | None, ip: str, end: int) -> None:
        self.name = name
        self.helo = helo
        self.ip = ip
        self.end = end


def _hosts(line: str, at: int) -> list[_Host]:
    """Every reading of the host part at ``line[at:] == "H=..."``.

    The name is Exim's forward-confirmed DNS name (no spaces) and the address
    comes from the socket, but a HELO (``helo_accept_junk_hosts``) may hold
    spaces, brackets and a whole imitation ``x) [192.0.2.9]``: each place that
    looks like the end of ``(helo) [ip]`` is one reading, and the caller keeps
    those whose rest of the line parses.
    """
    i = at + 2  # past "H="
    name: str | None = None
    if i < len(line) and line[i] not in "([":
        space = line.find(" ", i)
        if space < 0:
            raise ParseError(f"exim H= field has no '[ip]': {line[:200]!r}")
        name = line[i:space]
        i = space + 1
    if not line.startswith("(", i):
        bare = _BARE_IP.match(line, i)
        if bare is None:
            raise ParseError(f"exim H= field has no '[ip]' where it should: {line[:200]!r}")
        return [_Host(name, None, client_ip(bare.group("ip")), bare.end())]
    ends = list(_HELO_END.finditer(line, i))
    if not ends:
        raise ParseError(f"exim H= field has no ') [ip]' after the HELO: {line[:200]!r}")
    if len(ends) > MAX_READINGS:
        raise ParseError(
            f"exim host part has {len(ends)} places that look like its ') [ip]' end: {line[:200]!r}"
        )
    hosts: list[_Host] = []
    for end in ends:
        try:
            ip = client_ip(end.group("ip"))
        except ParseError:
            if len(ends) == 1:
                raise
            continue  # not an address: not the end Exim wrote
        hosts.append(_Host(name, line[i + 1 : end.start()], ip, end.end()))
    return hosts


def _one_reading(line: str, readings: list[_Reading], hosts: int, shape: str) -> _Reading:
    """The only reading of the line, or ParseError saying it has none or several."""
    if len(readings) == 1:
        return readings[0]
    if not readings:
        raise ParseError(f"exim {shape} line is not {_SHAPES[shape]!r}: {line[:200]!r}")
    raise ParseError(
        f"exim line can be read {len(readings)} ways ({hosts} places look like the end of "
        f"'(helo) [ip]'; a HELO or sender imitates the host part): {line[:200]!r}"
    )


def _quoted_end(line: str, at: int) -> int:
    """The index past a quoted value starting at ``line[at] == '"'`` (backslash pairs)."""
    m = _QUOTED.match(line, at)
    return -1 if m is None else m.end()


def _address(line: str, at: int, what: str) -> tuple[int, str]:
    """An Exim stored-form address at ``line[at]``, ``<>``-style empty allowed by callers."""
    scanned = addresses.exim(line, at)
    if scanned is None:
        raise ParseError(f"exim {what} at column {at} is not an address: {line[:200]!r}")
    return scanned


@dataclass(frozen=True, slots=True)
class _Reading:
    host: _Host
    sender: str
    recipients: tuple[str, ...]


def _hit(
    reading: _Reading,
    rcpt: str | None,
    at: datetime,
    line: str,
    ctx: ParseContext,
    *,
    stage: str = "data",
) -> TrapHit:
    """The hit for one recipient of the line's reading (None: an arrival held for its
    deliveries, which name them)."""
    host = reading.host
    return TrapHit(
        at=at,
        client_ip=host.ip,
        rcpt_to=rcpt,
        mail_from=reading.sender,
        helo=helo_name(host.helo),
        feed=ctx.feed or NAME,
        raw=line,
        client_name=host.name,
        stage=stage,
    )


def _fields_to_sender(line: str, at: int) -> int:
    """Skip the fields between the host part and `` F=<``; the index of `` F=<``, or -1."""
    i = at
    previous = ""
    while not line.startswith(" F=<", i):
        if line.startswith(' DN="', i):
            i = _quoted_end(line, i + 4)
            if i < 0:
                return -1
            previous = "DN"
            continue
        after = _field_end(line, i, previous)
        if after < 0:
            return -1
        previous = line[i + 1 : i + 3].rstrip("=")
        i = after
    return i


def _field_end(line: str, at: int, previous: str) -> int:
    """The end of the `` NAME=value`` or `` FLAG`` field at ``at``, or -1.

    Raises _Hard where the field before was one Exim writes with spaces unescaped.
    """
    field = _FIELD.match(line, at)
    if field is not None:
        return field.end()
    if previous in _UNESCAPED:
        raise _Hard(f"exim {previous}= field may hold spaces: {line[:200]!r}")
    return -1


def _rejected(
    line: str, start: int, ts: str | None, head: re.Match[str] | None, ctx: ParseContext
) -> list[TrapHit]:
    """``H=host [fields] F=<sender> [A=..] [temporarily ]rejected RCPT <arg>[: message]``.

    Every reading of the host part is tried; the one whose fields, sender and
    verdict parse is the line's, and two such readings refuse the line. The
    RCPT argument is read only after that: it is the client's raw text, so it
    decides nothing about the host.
    """
    m = _REJECT_START.match(line, start)
    if m is None:
        if line.startswith("U=", start) or "F=<" not in line:
            return []  # a local -bs session (no host), or another message
        shape = _SHAPES["rejected RCPT"]
        raise ParseError(f"exim rejected RCPT line is not {shape!r}: {line[:200]!r}")
    hosts = _hosts(line, m.end() - 2)
    readings: list[tuple[_Reading, re.Match[str]]] = []
    for host in hosts:
        try:
            i = _fields_to_sender(line, host.end)
            if i < 0:
                continue
            i += 4
            if line.startswith(">", i):
                sender = ""
            else:
                i, sender = _address(line, i, "sender")
                if not line.startswith(">", i):
                    continue
        except _Hard:
            raise
        except ParseError:
            continue
        verdict = _REJECTED.match(line, i + 1)
        if verdict is None and line.startswith(" A=", i + 1):
            raise ParseError(f"exim A= field may hold spaces: {line[:200]!r}")
        if verdict is not None:
            readings.append((_Reading(host, sender, ()), verdict))
    reading = _one_reading(line, [r for r, _ in readings], len(hosts), "rejected RCPT")
    verdict = next(v for r, v in readings if r is reading)
    if verdict.group("what") is None:
        return []  # rejected after DATA, MAIL, ...: no recipient named
    rcpt = _rcpt_argument(line, verdict.end())
    return [_hit(reading, rcpt, _time(ts, head, ctx), line, ctx, stage="rcpt")]


def _rcpt_argument(line: str, at: int) -> str:
    """The recipient in the RCPT argument Exim logged as sent (``<addr>`` or ``addr``).

    smtp_in.c logs the argument as the client wrote it (ESMTP options taken
    off, at most 100 characters), then ``: message`` or nothing. Exim took
    the whole argument as one RFC 5322 address (parse_extract_address), so the
    address read by its grammar must be all of it: a comment, a phrase before
    ``<addr>`` or anything else after it refuses the line. (Exim's option
    scan also turns the last unquoted space of such an argument into ``=``:
    ``Spam=<trap@example.org>``.) A bare argument as long as the cut may have
    been cut inside its domain, leaving a shorter domain that reads whole: refused.
    """
    j = at
    bracket = line.startswith("<", j)
    if bracket:
        j += 1
        route = _ROUTE.match(line, j)
        if route is not None:
            j = route.end()
    j, rcpt = _address(line, j, "recipient")
    if bracket:
        if not line.startswith(">", j):
            raise ParseError(
                f"exim RCPT argument at column {at} does not end in '>' (cut at "
                f"{MAX_RCPT_ARG} characters, or a comment): {line[:200]!r}"
            )
        j += 1
    elif j - at >= MAX_RCPT_ARG:
        raise ParseError(
            f"exim bare RCPT argument at column {at} is {MAX_RCPT_ARG} characters or more: "
            f"Exim may have cut it: {line[:200]!r}"
        )
    if j - at > MAX_RCPT_ARG or not (j == len(line) or line.startswith(": ", j)):
        raise ParseError(
            f"exim RCPT argument at column {at} cannot be read unambiguously: {line[:200]!r}"
        )
    return rcpt


def _arrival(
    line: str,
    arrival: re.Match[str],
    ts: str | None,
    head: re.Match[str] | None,
    ctx: ParseContext,
) -> list[TrapHit]:
    """``<= sender [R=..] H=host fields... [T="..."] [from <..>] [for rcpt rcpt...]``.

    The sender is scanned by Exim's own address syntax, so a quoted local part
    cannot end it early; every reading of the host part is tried against the
    fields after it, and exactly one must parse to the end of the line. An
    arrival without recipients is held for its delivery lines.
    """
    at = arrival.end()
    if line.startswith("<>", at) and (at + 2 == len(line) or line[at + 2] == " "):
        i, sender = at + 2, ""
    else:
        i, sender = _address(line, at, "sender")
    if i < len(line) and line[i] != " ":
        raise ParseError(f"exim arrival sender ends at column {i} in {line[i]!r}: {line[:200]!r}")
    for flag in (" R=", " DS"):
        if line.startswith(flag, i):
            field = _FIELD.match(line, i)
            if field is None:
                break
            i = field.end()
    if not line.startswith(" H=", i):
        return []  # submitted locally: no client host
    hosts = _hosts(line, i + 1)
    readings: list[_Reading] = []
    for host in hosts:
        try:
            recipients = _recipients(line, host.end)
        except _Hard:
            raise
        except ParseError:
            if len(hosts) == 1:
                raise
            continue
        readings.append(_Reading(host, sender, tuple(recipients)))
    reading = _one_reading(line, readings, len(hosts), "arrival")
    at_time = _time(ts, head, ctx)
    if not reading.recipients:
        exim_deliveries.hold(ctx, arrival.group("id"), _hit(reading, None, at_time, line, ctx))
        return []
    return [_hit(reading, rcpt, at_time, line, ctx) for rcpt in reading.recipients]


def _recipients(line: str, at: int) -> list[str]:
    """Walk the fields after the host part, each by its own syntax, to `` for ...``.

    No recipients (an empty list) when the line ends without `` for``: the
    ``received_recipients`` selector is off.
    """
    i = at
    end = len(line)
    previous = ""
    while i < end:
        if line.startswith(" for ", i):
            found: list[str] = []
            i += 4
            while i < end:
                if line[i] != " ":
                    raise ParseError(
                        f"exim recipient list has {line[i]!r} at column {i}: {line[:200]!r}"
                    )
                i, rcpt = _address(line, i + 1, "recipient")
                found.append(rcpt)
            return found
        if line.startswith(' T="', i) or line.startswith(' DN="', i):
            i = _quoted_end(line, line.index('"', i))
            if i < 0:
                raise ParseError(f"exim arrival has an unterminated quoted field: {line[:200]!r}")
            previous = "T"
            continue
        if line.startswith(" from <", i):
            if line.startswith("<>", i + 6):
                i += 8
                continue
            i, _ = _address(line, i + 7, "from <sender>")
            if not line.startswith(">", i):
                raise ParseError(f"exim 'from <sender>' does not end in '>': {line[:200]!r}")
            i += 1
            previous = "from"
            continue
        if line.startswith(" id=", i) or line.startswith(" id*=", i):
            i, _ = _address(line, line.index("=", i) + 1, "message id")
            previous = "id"
            continue
        after = _field_end(line, i, previous)
        if after < 0:
            raise ParseError(
                f"exim arrival field at column {i} is not 'NAME=value': {line[:200]!r}"
            )
        previous = line[i + 1 : i + 3].rstrip("=")
        i = after
    return []
