"""Mail Postfix accepted for a trap: three lines joined by queue id (part of ``postfix``).

A message that got through smtpd to a trap mailbox leaves no verdict, only
its trail through the queue::

    postfix/smtpd[123]: 4C2B81E0F2A: client=mail.example.com[192.0.2.1]
    postfix/qmgr[99]: 4C2B81E0F2A: from=<spammer@example.net>, size=2345, nrcpt=1 (queue active)
    postfix/local[456]: 4C2B81E0F2A: to=<trap@example.org>, relay=local, delay=0.1,
      delays=0.05/0/0/0.05, dsn=2.0.0, status=sent (delivered to mailbox)
    postfix/qmgr[99]: 4C2B81E0F2A: removed

(smtpd.c after the queue file is opened; qmgr_message.c; log_adhoc.c for
every delivery agent: local, virtual, lmtp, smtp, pipe, discard, error, and
qmgr itself when it defers). The client line is kept in ``ParseContext.held``
under its queue id, the sender added from qmgr's line, and the delivery line
with status ``sent``, ``bounced`` or ``deferred`` is a hit (stage "data",
attempt ``queue:ID``) for the original recipient (``orig_to`` when the
address was rewritten, else ``to``), once per recipient and message however
often a deferred one is retried. ``removed`` forgets the message, as does a
refusal of the whole message after DATA (which logs no ``removed``), and at most
MAX_HELD messages are kept (the oldest forgotten first), so a log with
millions of queue ids holds only those still in flight. The newest of
them (``context.newest``) are carried to the next run (``ParseContext.carry``), so a
message in flight when one run ends is still joined by the next.

A delivery whose client line was not seen (it is in an earlier file or
before a resumed run's start, or the mail was submitted locally and has no
client) is no hit and not malformed: without the client there is no
evidence. Neither is a reinjection from a content filter (``orig_queue_id=``
on the client line: the original message's delivery to the filter was
the hit) nor an address-verification probe (``deliverable``/``undeliverable``).
A recipient a verdict already counted (``reject_warning``, ``hold``,
``discard``, ``filter`` at RCPT, a cleanup hold; see postfix.py ``counted``)
is not counted again when the message is delivered. Imports only the
standard library and this package.
"""

from __future__ import annotations

import re
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Final

from rbl.feeds.parsers import addresses, syslogline
from rbl.feeds.parsers.context import CARRIED_ITEMS, ParseContext, carried_state, newest
from rbl.feeds.parsers.normalise import client_ip
from rbl.model.traphit import ParseError, TrapHit

# Messages kept waiting for their delivery lines; beyond this the oldest is forgotten.
MAX_HELD: Final = 100_000
# smtpd processes with recipients counted before their queue file was opened.
MAX_SESSIONS: Final = 10_000
_STATE: Final = "postfix.queue"
MAX_LINE: Final = 16 * 1024
_HIT_STATUS: Final = frozenset({"sent", "bounced", "deferred"})

_QID: Final = r"(?P<qid>[0-9A-Za-z]+)"
_CLIENT: Final = re.compile(
    _QID + r": client=(?P<name>[^ \[\],]*)\[(?P<addr>[^\] ]*)\](?::[0-9]+)?(?P<rest>,.*)?",
    re.ASCII,
)
_QUEUED: Final = re.compile(_QID + r": (?P<what>to=<|from=<|removed$)", re.ASCII)
# After the recipient(s): relay and the fixed fields, none with a space, then the status.
_DELIVERY_TAIL: Final = re.compile(
    r", relay=[^ ,]*(?:, [a-z_]+=[^ ,]*)*?, dsn=[0-9]\.[0-9]{1,3}\.[0-9]{1,3}, "
    r"status=(?P<status>[a-z]+)(?: |$)",
    re.ASCII,
)


@dataclass(slots=True)
class _Message:
    client_ip: str
    client_name: str | None
    lines: list[str]
    reinjected: bool = False
    sender: str | None = None
    counted: set[str] = field(default_factory=set)  # recipients already hit


@dataclass(slots=True)
class _Held:
    messages: OrderedDict[str, _Message] = field(default_factory=OrderedDict)
    # smtpd pid -> recipients a verdict counted before the queue id existed (NOQUEUE).
    sessions: OrderedDict[str, set[str]] = field(default_factory=OrderedDict)

    def to_json(self) -> object:
        """The newest messages and sessions that fit (``newest``), oldest first; None if none."""
        if not self.messages and not self.sessions:
            return None
        messages = newest(list(self.messages.items()), _message_size)
        sessions = newest(list(self.sessions.items()), _session_size)
        return {
            "messages": [
                [
                    qid,
                    m.client_ip,
                    m.client_name,
                    m.lines,
                    m.reinjected,
                    m.sender,
                    sorted(m.counted),
                ]
                for qid, m in messages
            ],
            "sessions": [[pid, sorted(rcpts)] for pid, rcpts in sessions],
        }

    @classmethod
    def from_json(cls, data: dict[str, list[list[Any]]]) -> _Held:
        held = cls()
        for qid, ip, name, lines, reinjected, sender, rcpts in data["messages"][-CARRIED_ITEMS:]:
            held.messages[_text(qid)] = _Message(
                client_ip=_text(ip),
                client_name=_text(name, none=True),
                lines=[_text(line) for line in lines],
                reinjected=bool(reinjected),
                sender=_text(sender, none=True),
                counted={_text(rcpt) for rcpt in rcpts},
            )
        for pid, rcpts in data["sessions"][-CARRIED_ITEMS:]:
            held.sessions[_text(pid)] = {_text(rcpt) for rcpt in rcpts}
        return held


def _message_size(item: tuple[str, _Message]) -> int:
    message = item[1]
    return 64 + len(message.sender or "") + sum(map(len, [*message.lines, *message.counted]))


def _session_size(item: tuple[str, set[str]]) -> int:
    return 16 + sum(map(len, item[1]))


def _text(value: object, *, none: bool = False) -> Any:
    """A carried string (or None where ``none``); ValueError otherwise."""
    if isinstance(value, str) or (none and value is None):
        return value
    raise ValueError(f"expected a string, got {value!r:.40}")


carried_state(_STATE, _Held.from_json)


def _held(ctx: ParseContext) -> _Held:
    return ctx.held(_STATE, _Held)


def may_join(line: str, ctx: ParseContext) -> bool:
    """Whether ``line`` may be a queue line of a held message: its queue id (the word
    before ``: to=<``, ``: from=<`` or ``: removed``) is held. A cheap test before the
    syslog header is parsed; ``parse`` decides."""
    held: _Held | None = ctx.states.get(_STATE)
    if held is None or not held.messages:
        return False
    for mark in (": to=<", ": from=<", ": removed"):
        at = line.find(mark)
        if at > 0:
            return line[line.rfind(" ", 0, at) + 1 : at] in held.messages
    return False


def client(line: str, head: re.Match[str], ctx: ParseContext) -> bool:
    """smtpd's ``QID: client=name[addr]``: remember the message's client. False when the
    line is not one (NOQUEUE, or another line that merely holds ``: client=``)."""
    m = _CLIENT.fullmatch(line, head.end())
    if m is None or m.group("qid") == "NOQUEUE" or len(line) > MAX_LINE:
        return False
    held = _held(ctx)
    qid = m.group("qid")
    name = m.group("name")
    rest = m.group("rest") or ""
    message = _Message(
        client_ip=client_ip(m.group("addr")),
        client_name=None if name in ("", "unknown") else name,
        lines=[line],
        reinjected=", orig_queue_id=" in rest or ", orig_client=" in rest,
    )
    pid = head.group("pid")
    if pid is not None:
        message.counted |= held.sessions.pop(pid, set())
    held.messages.pop(qid, None)
    held.messages[qid] = message
    while len(held.messages) > MAX_HELD:
        held.messages.popitem(last=False)
    return True


def forget(ctx: ParseContext, qid: str) -> None:
    """The message was refused after DATA (smtpd or cleanup): it will not be delivered, and
    Postfix logs no ``removed`` for it."""
    held: _Held | None = ctx.states.get(_STATE)
    if held is not None:
        held.messages.pop(qid, None)


def session_ends(ctx: ParseContext, pid: str | None) -> None:
    """smtpd's ``connect from``/``disconnect from``: what a verdict counted before a queue
    id existed belongs to no later session of the same process."""
    held: _Held | None = ctx.states.get(_STATE)
    if pid is not None and held is not None and held.sessions:
        held.sessions.pop(pid, None)


def counted(ctx: ParseContext, qid: str | None, pid: str | None, rcpt: str) -> None:
    """A verdict after which the message may still be delivered hit ``rcpt``: its delivery
    is that attempt, not another. Before the queue id exists, kept by smtpd pid."""
    held = _held(ctx)
    if qid is not None:
        message = held.messages.get(qid)
        if message is not None:
            message.counted.add(rcpt)
        return
    if pid is None:
        return
    held.sessions.setdefault(pid, set()).add(rcpt)
    held.sessions.move_to_end(pid)
    while len(held.sessions) > MAX_SESSIONS:
        held.sessions.popitem(last=False)


def parse(line: str, head: re.Match[str], ctx: ParseContext) -> list[TrapHit]:
    """qmgr's sender and removal lines, and the delivery lines: a hit or none."""
    m = _QUEUED.match(line, head.end())
    if m is None:
        return []
    held = _held(ctx)
    qid = m.group("qid")
    message = held.messages.get(qid)
    if message is None:
        return []  # not joined: no client seen for this queue id, so no evidence
    what = m.group("what")
    if what == "removed":
        del held.messages[qid]
        return []
    if len(line) > MAX_LINE:
        raise ParseError(f"postfix line is {len(line)} characters long, over {MAX_LINE}")
    if what == "from=<":
        return _sender(line, m.end(), message)
    return _delivery(line, m.end(), head, ctx, message, qid)


def _address(line: str, at: int, what: str) -> tuple[int, str]:
    scanned = addresses.postfix(line, at)
    if scanned is None or not line.startswith(">", scanned[0]):
        raise ParseError(f"postfix {what}=<...> is not a Postfix address: {line[:200]!r}")
    return scanned[0] + 1, scanned[1]


def _sender(line: str, at: int, message: _Message) -> list[TrapHit]:
    """qmgr's ``from=<S>, size=N, nrcpt=N (queue active)``; other from= lines are not it."""
    end, sender = _address(line, at, "from")
    if line.startswith(", size=", end):
        message.sender = sender
        message.lines.append(line)
    return []


def _delivery(
    line: str, at: int, head: re.Match[str], ctx: ParseContext, message: _Message, qid: str
) -> list[TrapHit]:
    end, rcpt = _address(line, at, "to")
    if line.startswith(", orig_to=<", end):
        end, rcpt = _address(line, end + 11, "orig_to")
    tail = _DELIVERY_TAIL.match(line, end)
    if tail is None:
        raise ParseError(
            f"postfix delivery is not 'to=<..>, relay=.., ..., status=..': {line[:200]!r}"
        )
    if tail.group("status") not in _HIT_STATUS or message.reinjected or rcpt in message.counted:
        return []
    message.counted.add(rcpt)
    return [
        TrapHit(
            at=syslogline.header_time(head, ctx),
            client_ip=message.client_ip,
            rcpt_to=rcpt,
            mail_from=message.sender,
            helo=None,
            feed=ctx.feed or "postfix",
            raw="\n".join([*message.lines, line]),
            client_name=message.client_name,
            stage="data",
            attempt=f"queue:{qid}",
        )
    ]
