"""sendmail 8.x syslog lines -> TrapHits.

Two kinds of message name a refused recipient (sendmail 8.17 as Debian's
sendmail-bin logs it; the program tag is ``sendmail``, ``sm-mta`` or
``sm-msp-queue``, the queue id 14 letters and digits such as ``6B3A9rqX021340``):

- a check_rcpt ruleset verdict (parseaddr.c ``rscheck``: ``"ruleset=%s,
  arg1=%s%s, reject=%s"``, the middle being ``, relay=`` and the ``$_``
  macro), access_db and blocklist_recipients refusals, ``Relaying denied``,
  DNSBL and every other check_rcpt rejection alike::

      Dec  3 10:09:53 mx sm-mta[21340]: 6B3A9rqX021340: ruleset=check_rcpt,
        arg1=<trap@example.org>, relay=[45.33.14.1], reject=550 5.2.1
        <trap@example.org>... Mailbox disabled for this recipient

  ``discard`` and ``quarantine=`` verdicts count the same. Other rulesets
  (check_relay, check_mail, check_compat...) name no recipient: no hits.

- an unknown local user, which names no client::

      Dec  3 10:09:53 mx sm-mta[21340]: 6B3A9rqX021340: <nosuch@example.org>... User unknown

Neither names the sender. sendmail writes that in the envelope's ``from=``
line (deliver.c ``logsender``), with the client last, only at the
envelope's end, after the refused RCPTs: at the end of DATA, at QUIT, or
when the client is gone (``lost input channel``)::

    Dec  3 10:09:53 mx sm-mta[21340]: 6B3A9rqX021340: from=<spam@sender.example>,
      size=0, class=0, nrcpts=1, proto=ESMTP, daemon=MTA, relay=[45.33.14.1]

So both kinds are held (``ParseContext.held``, per syslog host and queue
id) until that line, and their hits come out of it: at the time of their
own line, with the sender of the ``from=`` line (without it a null-sender
callback probe to a trap would count as spam and list an innocent
verifying host), the client of the check_rcpt line or, for an unknown user,
of the ``from=`` line, and both lines as ``raw``. A check_rcpt verdict
without a queue id (``NOQUEUE``) has no envelope to wait for: its hit comes
at once, sender unknown. At most ``MAX_HELD_IDS`` queue ids are held (the
oldest is dropped) and ``MAX_HELD_PER_ID`` recipients per id (more is
refused). What is held when a run stops is carried to the next
(``ParseContext.carry``); a log cut before the ``from=`` line loses those hits. A recipient
logged after its ``from=`` line (a delivery from the queue, not an SMTP
refusal) is never joined.

The client is the ``$_`` macro (daemon.c ``getauthinfo``): ``[ip]`` without
a reverse name, ``name [ip]`` when the name's addresses include the
client's, ``name [ip] (may be forged)`` when they do not, an RFC 1413
``user@`` in front when ident is on, IPv6 as ``[IPv6:2001:db8:0:0:0:0:0:7]``;
only an unforged name becomes ``client_name``. ``root@localhost`` (a local
submission) names no address: no hits. sendmail logs no HELO.

Parsing follows sendmail's own order and quoting. ``arg1`` is the RCPT
argument as the client sent it (``<addr>`` or bare ``addr`` followed by
ESMTP parameters, which sendmail cut off): it is scanned by prescan's rules
(``"quoted"`` strings, ``\\`` pairs, ``(comments)``, the closing ``>``; a bare
argument ends at the first space outside them), so a quoted local part
imitating ``>, relay=name [a.b.c.d], reject=`` cannot end it early; the
``relay=`` value after it must have one of the shapes above, then the
verdict. In the ``from=`` line the sender (cut by sendmail at 200
characters, ``%.200s``) is scanned the same way and the client is the last
field, after everything the client controls. A recipient sendmail shortened
(``shortenstring``: 100 characters, ``...``, 100 characters) cannot be
known and is refused, as is an argument with nested angle brackets. The
recipient's comments are dropped, as check_rcpt sees it (``RSF_RMCOMM``).
sendmail's default ``LogLevel`` (9) logs all three; below 5 there are no
``from=`` lines (logsender needs ``LogLevel > 4``) and unknown users are never
joined. Imports only the standard library and this package.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from rbl.feeds.parsers import addresses, syslogline
from rbl.feeds.parsers.context import ParseContext, carried_state, newest
from rbl.feeds.parsers.normalise import client_ip
from rbl.model.traphit import ParseError, TrapHit

NAME: Final = "sendmail"
PROGRAMS: Final = frozenset({"sendmail", "sm-mta", "sm-msp-queue"})
MAX_LINE: Final = 16 * 1024
MAX_HELD_IDS: Final = 4096
MAX_HELD_PER_ID: Final = 256
# sendmail's shortenstring(addr, MAXSHORTSTR=203) keeps 100 characters each side of "...".
_SHORTENED: Final = 203
_RECIPIENT_VERDICTS: Final = frozenset({"check_rcpt"})

_QID: Final = re.compile(r"(?P<qid>[0-9A-Za-z]{6,20}|NOQUEUE): ", re.ASCII)
_RULESET: Final = re.compile(r"ruleset=(?P<rs>[^\s,]+), arg1=", re.ASCII)
# $_ as getauthinfo builds it: [ident@][name ][ip][ (may be forged)]. The name is a DNS
# name as the resolver gives it (spaces and brackets escaped or absent).
_RELAY: Final = re.compile(
    r"(?:(?P<ident>[^\s@\[\]()<>,]+)@)?(?:(?P<name>[^\s@\[\]()<>,]+) )?"
    r"\[(?P<ip>(?:IPv6:)?[0-9A-Fa-f:.]+)\](?P<forged> \(may be forged\))?",
    re.ASCII,
)
_LOCAL: Final = re.compile(r"(?:[^\s@\[\]()<>,]+@)?localhost", re.ASCII)
_VERDICT: Final = re.compile(r", (?:reject=|quarantine=|discard$)", re.ASCII)
_UNKNOWN: Final = "... User unknown"
_FROM: Final = "from="
_ROUTE: Final = re.compile(r"@[^\s:<>\"]*:", re.ASCII)
_SPECIAL: Final = re.compile(r'["\\()<]')  # what prescan treats specially inside an argument


@dataclass(frozen=True, slots=True)
class _Client:
    ip: str
    name: str | None


@dataclass(frozen=True, slots=True)
class _Pending:
    """A refused recipient waiting for its envelope's from= line (and the sender in it)."""

    at: datetime
    rcpt: str
    raw: str
    client: _Client | None  # from a check_rcpt line's relay=; None for an unknown user


@dataclass(slots=True)
class _Held:
    """Refused recipients by (syslog host, queue id), oldest first."""

    ids: OrderedDict[tuple[str, str], list[_Pending]] = field(default_factory=OrderedDict)

    def to_json(self) -> object:
        """The newest held ids that fit (``newest``), oldest first; None if none."""
        if not self.ids:
            return None
        return [
            [host, qid, [_pending_json(wait) for wait in pending]]
            for (host, qid), pending in newest(list(self.ids.items()), _held_size)
        ]

    @classmethod
    def from_json(cls, data: list[list[Any]]) -> _Held:
        held = cls()
        for host, qid, pending in data[-MAX_HELD_IDS:]:
            if not isinstance(host, str) or not isinstance(qid, str):
                raise ValueError(f"a held queue id is not (host, id): {[host, qid]!r:.60}")
            held.ids[(host, qid)] = [_pending_from(item) for item in pending[:MAX_HELD_PER_ID]]
        return held


def _held_size(item: tuple[tuple[str, str], list[_Pending]]) -> int:
    return 32 + sum(64 + len(wait.raw) + len(wait.rcpt) for wait in item[1])


def _pending_json(wait: _Pending) -> list[Any]:
    client = None if wait.client is None else [wait.client.ip, wait.client.name]
    return [wait.at.isoformat(), wait.rcpt, wait.raw, client]


def _pending_from(item: list[Any]) -> _Pending:
    at, rcpt, raw, client = item
    if not isinstance(rcpt, str) or not isinstance(raw, str):
        raise ValueError(f"a held recipient is not text: {item!r:.60}")
    when = datetime.fromisoformat(at)
    if when.tzinfo is None:
        raise ValueError(f"a held recipient's time has no zone: {at!r}")
    if client is None:
        return _Pending(when, rcpt, raw, None)
    ip, name = client
    if not isinstance(ip, str) or not (name is None or isinstance(name, str)):
        raise ValueError(f"a held client is not text: {client!r:.60}")
    return _Pending(when, rcpt, raw, _Client(ip, name))


carried_state(NAME, _Held.from_json)


def parse(line: str, ctx: ParseContext) -> list[TrapHit]:
    """The hits in one sendmail syslog line: none, or on an envelope's from= line the
    refusals held for it (one at once for a NOQUEUE check_rcpt verdict)."""
    if "sm-" not in line and "sendmail" not in line:
        return []
    line = line.rstrip("\r\n")
    head = syslogline.header(line)
    if head is None or head.group("prog") not in PROGRAMS:
        return []
    qid = _QID.match(line, head.end())
    if qid is None:
        return []
    at = qid.end()
    if len(line) > MAX_LINE:
        raise ParseError(f"sendmail line is {len(line)} characters long, over {MAX_LINE}")
    if line.startswith("ruleset=", at):
        return _ruleset(line, at, head, qid.group("qid"), ctx)
    if line.endswith(_UNKNOWN):
        _unknown(line, at, head, qid.group("qid"), ctx)
        return []
    if line.startswith(_FROM, at):
        return _envelope_end(line, at, head, qid.group("qid"), ctx)
    return []


def _ruleset(line: str, at: int, head: re.Match[str], qid: str, ctx: ParseContext) -> list[TrapHit]:
    """``ruleset=check_rcpt, arg1=<rcpt>, relay=client, reject=text`` (or discard, quarantine)."""
    m = _RULESET.match(line, at)
    if m is None:
        raise ParseError(f"sendmail ruleset line is not 'ruleset=.., arg1=..': {line[:200]!r}")
    if m.group("rs") not in _RECIPIENT_VERDICTS:
        return []
    end = _argument_end(line, m.end(), "arg1")
    rcpt = _recipient(line[m.end() : end], line)
    if not line.startswith(", relay=", end):
        if _VERDICT.match(line, end):
            return []  # no $_ at all: nothing says who connected
        raise ParseError(
            f"sendmail check_rcpt arg1 is not followed by ', relay=' or a verdict: {line[:200]!r}"
        )
    relay = end + len(", relay=")
    client, after = _client(line, relay)
    if not _VERDICT.match(line, after):
        raise ParseError(
            f"sendmail check_rcpt relay= is not followed by ', reject=': {line[:200]!r}"
        )
    if client is None:
        return []  # a local submission
    wait = _Pending(syslogline.header_time(head, ctx), rcpt, line, client)
    if qid == "NOQUEUE":
        return [_hit(wait, client, None, ctx, line)]  # no envelope to join: sender unknown
    _hold(head, qid, wait, ctx)
    return []


def _client(line: str, at: int) -> tuple[_Client | None, int]:
    """The ``$_`` value at ``line[at:]``: the client (None for a local one) and its end."""
    m = _RELAY.match(line, at)
    if m is not None:
        name = m.group("name")
        verified = name if name is not None and m.group("forged") is None else None
        return _Client(client_ip(m.group("ip")), verified), m.end()
    local = _LOCAL.match(line, at)
    if local is not None:
        return None, local.end()
    raise ParseError(
        f"sendmail relay= at column {at} is not '[ip]', 'name [ip]' or 'name [ip] "
        f"(may be forged)': {line[:200]!r}"
    )


def _argument_end(line: str, at: int, what: str) -> int:
    """The index just past the address argument sendmail logged at ``line[at:]``.

    prescan's rules: ``\\`` quotes the next character, ``"`` starts a quoted
    string outside comments, ``(`` a comment (nested) outside quoted strings;
    ``<...>`` ends at the first ``>`` outside both, and a bare argument at the
    first space outside both (sendmail's RCPT delimiter) less the ``,`` of the
    log format before it.
    """
    bracketed = line.startswith("<", at)
    end = line.find(">" if bracketed else " ", at)
    if end > at and not _SPECIAL.search(line, at + bracketed, end):
        if bracketed:
            return end + 1  # nothing quoted or commented before the first ">": the usual case
        if line[end - 1] == ",":
            return end - 1
    for i, c, kind in _prescan(line, at + 1 if bracketed else at):
        if kind != _PLAIN:
            continue
        if bracketed and c == ">":
            return i + 1
        if bracketed and c == "<":
            raise ParseError(f"sendmail {what} has nested '<': {line[:200]!r}")
        if not bracketed and c == " ":
            if line[i - 1] != ",":
                break
            return i - 1
    raise ParseError(f"sendmail {what} at column {at} does not end as an address: {line[:200]!r}")


def _recipient(text: str, line: str) -> str:
    """The canonical address in an argument as logged: brackets, route and comments gone."""
    if len(text) == _SHORTENED and text[100:103] == "...":
        raise ParseError(
            f"sendmail shortened this address to {_SHORTENED} characters: {line[:200]!r}"
        )
    inner = text[1:-1] if text.startswith("<") else text
    inner = _uncommented(inner).strip()
    route = _ROUTE.match(inner)
    if route is not None:
        inner = inner[route.end() :]
    if inner == "":
        return ""
    scanned = addresses.exim(inner, 0)
    if scanned is None or scanned[0] != len(inner):
        raise ParseError(f"sendmail address {text[:100]!r} is not one address: {line[:200]!r}")
    return scanned[1]


def _uncommented(text: str) -> str:
    """``text`` without its ``(comments)`` (outside quoted strings; ``\\`` pairs kept)."""
    if "(" not in text:
        return text
    return "".join(c for _, c, kind in _prescan(text, 0) if kind != _COMMENT)


_PLAIN: Final = "plain"
_COMMENT: Final = "comment"


def _prescan(text: str, at: int) -> Iterator[tuple[int, str, str]]:
    """Each character of ``text`` from ``at`` as sendmail's prescan sees it: its index, it
    (a ``\\`` pair whole) and what it is in: ``_PLAIN``, ``"escaped"`` (a pair outside
    comments), ``"quoted"`` (a quoted string, its quotes too) or ``_COMMENT`` (a nested
    comment, its parentheses and pairs too)."""
    depth = 0
    quoted = False
    i = at
    while i < len(text):
        c = text[i]
        if c == "\\":
            yield i, text[i : i + 2], _COMMENT if depth else "escaped"
            i += 2
            continue
        if quoted:
            quoted = c != '"'
            kind = "quoted"
        elif depth:
            depth += (c == "(") - (c == ")")
            kind = _COMMENT
        elif c == '"':
            quoted = True
            kind = "quoted"
        elif c == "(":
            depth = 1
            kind = _COMMENT
        else:
            kind = _PLAIN
        yield i, c, kind
        i += 1


def _unknown(line: str, at: int, head: re.Match[str], qid: str, ctx: ParseContext) -> None:
    """Hold ``<rcpt>... User unknown`` until its envelope's from= line names client and sender."""
    text = line[at : len(line) - len(_UNKNOWN)]
    try:
        whole = _argument_end(text + ", ", 0, "recipient") == len(text)
    except ParseError:
        whole = False
    if not whole:
        raise ParseError(
            f"sendmail User unknown line is not '<address>... User unknown': {line[:200]!r}"
        )
    rcpt = _recipient(text, line)
    if qid != "NOQUEUE":
        _hold(head, qid, _Pending(syslogline.header_time(head, ctx), rcpt, line, None), ctx)


def _hold(head: re.Match[str], qid: str, wait: _Pending, ctx: ParseContext) -> None:
    """Keep a refused recipient until its envelope's from= line, within the bounds."""
    held = ctx.held(NAME, _Held).ids
    key = (head.group("host"), qid)
    pending = held.get(key)
    if pending is None:
        pending = held[key] = []
        while len(held) > MAX_HELD_IDS:
            held.popitem(last=False)
    if len(pending) >= MAX_HELD_PER_ID:
        raise ParseError(
            f"sendmail queue id {qid} already has {MAX_HELD_PER_ID} refused recipients "
            f"waiting for its from= line: {wait.raw[:200]!r}"
        )
    pending.append(wait)


def _hit(
    wait: _Pending, client: _Client, sender: str | None, ctx: ParseContext, raw: str
) -> TrapHit:
    return TrapHit(
        at=wait.at,
        client_ip=client.ip,
        rcpt_to=wait.rcpt,
        mail_from=sender,
        helo=None,  # sendmail logs none
        feed=ctx.feed or NAME,
        raw=raw,
        client_name=client.name,
        stage="rcpt",
    )


def _envelope_end(
    line: str, at: int, head: re.Match[str], qid: str, ctx: ParseContext
) -> list[TrapHit]:
    """``from=<sender>, size=.., ..., relay=client``: the held recipients' hits.

    A check_rcpt verdict keeps the client its own line names; an unknown user
    gets this line's. Each hit's ``raw`` is its own line and this one.
    """
    held = ctx.held(NAME, _Held).ids
    pending = held.pop((head.group("host"), qid), None)
    if not pending:
        return []
    envelope = _last_relay(line)
    sender = _sender(line, at + len(_FROM))
    hits: list[TrapHit] = []
    for wait in pending:
        client = wait.client or envelope
        if client is None:
            continue  # submitted locally
        hits.append(_hit(wait, client, sender, ctx, f"{wait.raw}\n{line}"))
    return hits


def _last_relay(line: str) -> _Client | None:
    """The ``, relay=`` field that runs to the end of the line: sendmail writes it last."""
    at = line.rfind(", relay=")
    while at >= 0:
        try:
            client, end = _client(line, at + len(", relay="))
        except ParseError:
            end = -1
        if end == len(line):
            return client
        at = line.rfind(", relay=", 0, at)
    raise ParseError(f"sendmail from= line does not end in ', relay=client': {line[:200]!r}")


def _sender(line: str, at: int) -> str | None:
    """The envelope sender at ``line[at:]``; None when sendmail cut it (``%.200s``)."""
    try:
        end = _argument_end(line, at, "from=")
    except ParseError:
        end = -1
    if 0 <= end - at <= 200 and line.startswith(", size=", end):
        return _recipient(line[at:end], line)
    if line.startswith(", size=", at + 200):
        return None  # cut at 200 characters: the rest of it is unknown
    raise ParseError(f"sendmail from= is not '<sender>, size=..': {line[:200]!r}")
