"""Mail Exim accepted for a trap without ``+received_recipients``: its arrival joined to
its delivery lines by message id (part of ``exim``, as postfix_queue is of postfix).

Without ``log_selector = +received_recipients`` (Exim's default) an arrival
names no recipient; its delivery lines do (deliver.c ``string_log_address``)::

    2026-11-23 06:15:31 1vABCD-000123-XY <= spammer@example.net H=mail.example.com [192.0.2.1] ...
    2026-11-23 06:15:40 1vABCD-000123-XY => trap <trap@example.org> R=local T=mailbox
    2026-11-23 06:15:40 1vABCD-000123-XY => :blackhole: <"spam trap"@example.org> R=bh
    2026-11-23 06:15:40 1vABCD-000123-XY ** "spam trap"@trap.example: retry timeout exceeded
    2026-11-23 06:15:40 1vABCD-000123-XY Completed

``exim`` reads the remote arrival and ``hold``s it, as the hit it would be
without a recipient, in ``ParseContext.held`` under its message id until its
``Completed`` (``forget``); each ``=>``, ``->``, ``*>``, ``**`` or ``==`` line
of it (``delivery``) is that hit for its top address, once per recipient
however often a deferred one is retried. At most MAX_HELD arrivals are kept
(the oldest dropped first): one whose Completed line is in another file. The
newest that fit are carried to the next run (``ParseContext.carry``).

The recipient is the top address, ``<...>`` in Exim's stored form, quotes
kept; what comes before it is the delivered address, a local part, a pipe or
a file, written *unquoted* (``q r <"q r"@example.org>``) and so free to
imitate anything. The ``<top>`` is the one bracketed address followed by
`` R=``, ``: `` or the end of the line (scanned left to right, each address
whole, so a quoted ``<x@y> R=`` inside it is not another); a line with two
such places is refused, and one with none names the top address itself
first. Imports only the standard library and this package.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from typing import Any, Final

from rbl.feeds.parsers import addresses
from rbl.feeds.parsers.context import CARRIED_ITEMS, ParseContext, carried_state, newest
from rbl.model.traphit import ParseError, TrapHit, hit_from_json, hit_to_json

MSGID: Final = r"[0-9A-Za-z]{6}-[0-9A-Za-z]{6,11}-[0-9A-Za-z]{2,4}"  # a message id
# deliver.c: delivered (=>, -> for more addresses of one delivery, *> when faked by -N),
# failed (**) or deferred (==); then the message's end.
DELIVERY: Final = re.compile(rf"(?P<id>{MSGID}) (?:=>|->|\*>|\*\*|==) ", re.ASCII)
# " QT=" with +queue_time_overall.
COMPLETED: Final = re.compile(rf"(?P<id>{MSGID}) Completed(?: QT=|$)", re.ASCII)
MARKS: Final = (" => ", " -> ", " *> ", " ** ", " == ", " Completed")
# What follows the top address of a delivery line: the router, an early failure's
# message, or nothing.
_AFTER_TOP: Final = re.compile(r"> R=|>: |>$")
# Remote arrivals waiting for their delivery lines, per file; the oldest are dropped
# past this many (a message whose Completed line is in another file).
MAX_HELD: Final = 100_000
_HELD: Final = "exim.arrivals"


@dataclass(slots=True)
class _Held:
    """A remote arrival without recipients (its hit, for no recipient yet), and the
    recipients its deliveries named so far."""

    hit: TrapHit
    seen: set[str] = field(default_factory=set)


class _Arrivals(dict[str, _Held]):
    """Held arrivals by message id, oldest first; at most MAX_HELD."""

    def hold(self, message_id: str, arrival: _Held) -> None:
        self.pop(message_id, None)
        self[message_id] = arrival
        while len(self) > MAX_HELD:
            del self[next(iter(self))]

    def to_json(self) -> object:
        """The newest arrivals that fit (``newest``), oldest first; None if none."""
        if not self:
            return None
        kept = newest(list(self.items()), _arrival_size)
        return [[mid, hit_to_json(held.hit), sorted(held.seen)] for mid, held in kept]

    @classmethod
    def from_json(cls, data: list[list[Any]]) -> _Arrivals:
        arrivals = cls()
        for message_id, hit, seen in data[-CARRIED_ITEMS:]:
            if not isinstance(message_id, str) or not all(isinstance(a, str) for a in seen):
                raise ValueError(f"a held arrival is not (id, hit, seen): {message_id!r:.40}")
            arrivals[message_id] = _Held(hit_from_json(hit), set(seen))
        return arrivals


def _arrival_size(item: tuple[str, _Held]) -> int:
    hit = item[1].hit
    return 256 + len(hit.raw) + sum(map(len, item[1].seen))


carried_state(_HELD, _Arrivals.from_json)


def hold(ctx: ParseContext, message_id: str, arrival: TrapHit) -> None:
    """Keep a remote arrival that named no recipient for its delivery lines."""
    ctx.held(_HELD, _Arrivals).hold(message_id, _Held(arrival))


def forget(ctx: ParseContext, message_id: str) -> None:
    """The message is completed: no more delivery lines."""
    ctx.held(_HELD, _Arrivals).pop(message_id, None)


def delivery(line: str, match: re.Match[str], ctx: ParseContext) -> list[TrapHit]:
    """A delivery line of a held arrival: one hit for its top address, once per message."""
    arrival = ctx.held(_HELD, _Arrivals).get(match.group("id"))
    if arrival is None:
        return []  # a local or already reported message, or its arrival is in another file
    rcpt = _top_address(line, match.end())
    if rcpt in arrival.seen:
        return []  # a retry (==) or a later line for a recipient already counted
    arrival.seen.add(rcpt)
    return [replace(arrival.hit, rcpt_to=rcpt, raw=line)]


def _top_address(line: str, at: int) -> str:
    """The recipient as the client gave it: ``<top>`` after the delivered address, or that
    address itself when Exim left ``<top>`` out because the two are the same.

    A place reads as ``<top>`` when an address in brackets is followed by `` R=``,
    ``: `` or the end, and the text before it is what string_log_address writes
    there: the top address or its local part unquoted (caselessly: Exim
    lowercases local parts), a pipe, file or ``:blackhole:``, or one other
    address (a redirection), maybe with its parents in parentheses. A remote
    server's message after the fields (``550 <a@b>: rejected``) fits none.
    """
    found: list[str] = []
    i = line.find(" <", at)
    while i >= 0:
        parts = addresses.exim_parts(line, i + 2)
        if parts is not None and _AFTER_TOP.match(line, parts[0]):
            end, value, domain = parts
            if _first_fits(line[at:i], value, domain):
                found.append(addresses.canonical(value, domain))
            i = end  # what is inside it (a quoted "<x@y> R=") is part of it
        i = line.find(" <", i + 1)
    if len(found) > 1:
        raise ParseError(
            f"exim delivery line has {len(found)} places that read as its '<top address>' "
            f"(a local part or message imitates it): {line[:200]!r}"
        )
    if found:
        return found[0]
    scanned = addresses.exim(line, at)
    if scanned is None or not re.match(r" R=|: |$", line[scanned[0] :]):
        raise ParseError(f"exim delivery line names no address Exim wrote: {line[:200]!r}")
    return scanned[1]


# string_log_address: a pipe, a file (maybe "save x"), an autoreply, the blackhole.
_PFR: Final = ("|", "/", ">", "save ", ":blackhole:")
_REDIRECTED: Final = re.compile(r"[^ ]+(?: \([^()]*\))?")


def _first_fits(first: str, value: str, domain: str | None) -> bool:
    """Whether ``first`` is what Exim writes before ``<top>`` for this top address."""
    unquoted = value if domain is None else f"{value}@{domain}"
    folded = first.lower()
    return (
        folded in (unquoted.lower(), value.lower())
        or first.startswith(_PFR)
        or _REDIRECTED.fullmatch(first) is not None
    )
