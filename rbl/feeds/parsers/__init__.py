"""Parsers: pure functions from one log line to the TrapHits it shows.

Every parser is ``parse(line, ctx) -> list[TrapHit]``: an empty list for a
line that belongs to its log but shows no SMTP attempt (other daemons, other
messages, blank lines), one hit per recipient otherwise (an Exim arrival with
``+received_recipients`` or a JSON line may name several). A line that claims
to be a kind the parser reads but is malformed raises ParseError saying what
is wrong; no other exception escapes. ``TrapHit.raw`` is the line without its
trailing newline; a hit joined from two lines (sendmail's unknown user and its
envelope's ``from=`` line, via ``ParseContext.held``) comes out of the later
one, ``raw`` holding both, newline-separated.

Every parser in PARSERS also refuses (ParseError) a hit that the rest of rbl
could not keep: a time more than a day after the reader's clock or before
1970, text that is not valid Unicode (lone surrogates, from JSON escapes), or
a field longer than the store's column for it (FIELD_LIMITS). Such a line is
then set aside like any malformed one instead of stopping ingest later.

Formats (one module each): ``spamd`` (OpenBSD spamd syslog), ``spamdb``
(spamdb(8) listing), ``postfix`` (smtpd and cleanup verdicts, postscreen
rejections, accepted mail joined by queue id: postfix.py, postscreen.py,
postfix_queue.py), ``exim`` (main/reject log), ``sendmail`` (sendmail 8.x
syslog: check_rcpt rejections, unknown users), ``json`` (JSON lines). A
parser that joins lines keeps its state in ``ParseContext.held``; a hit joined
from several lines has them, newline-separated, as its ``raw``. Which format's log a line belongs
to at all, hit or not, is ``recognise`` (used to say a file was read with the
wrong format, and by ``--format auto``). Imports neither Twisted nor
SQLAlchemy; only the standard library and rbl.model.traphit.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Final

from rbl.feeds.parsers import exim, jsonlines, postfix, sendmail, spamd, spamdb
from rbl.feeds.parsers.context import ParseContext
from rbl.model.traphit import EARLIEST, FUTURE_SKEW, ParseError, TrapHit, lone_surrogate

__all__ = ["FIELD_LIMITS", "PARSERS", "LineParser", "ParseContext", "get_parser"]

LineParser = Callable[[str, ParseContext], list[TrapHit]]

# The store's column sizes for a hit's text (rbl/store/schema.py, table hits); a
# test keeps the two in step. PostgreSQL refuses longer values outright.
FIELD_LIMITS: Final = {
    "client_ip": 45,
    "client_name": 253,
    "helo": 255,
    "mail_from": 320,
    "rcpt_to": 320,
    "feed": 32,
    "attempt": 64,
}


def _check(hit: TrapHit, ctx: ParseContext) -> None:
    """Refuse a hit the store could not keep or the policy could not reason about."""
    if hit.at > ctx.now + FUTURE_SKEW:
        raise ParseError(
            f"time {hit.at.isoformat()} is more than a day after the reader's clock "
            f"({ctx.now.isoformat()})"
        )
    if hit.at < EARLIEST:
        raise ParseError(f"time {hit.at.isoformat()} is before 1970")
    for field, limit in FIELD_LIMITS.items():
        value: str | None = getattr(hit, field)
        if value is None:
            continue
        if len(value) > limit:
            raise ParseError(f"{field} is {len(value)} characters long, over {limit}")
        _unicode(value, field)
    _unicode(hit.raw, "the line")


def _unicode(value: str, what: str) -> None:
    at = lone_surrogate(value)
    if at is not None:
        raise ParseError(f"{what} is not valid Unicode (surrogates not allowed at {at})")


def _checked(parse: LineParser) -> LineParser:
    @wraps(parse)
    def checked(line: str, ctx: ParseContext) -> list[TrapHit]:
        hits = parse(line, ctx)
        for hit in hits:
            _check(hit, ctx)
        return hits

    return checked


PARSERS: dict[str, LineParser] = {
    spamd.NAME: _checked(spamd.parse),
    spamdb.NAME: _checked(spamdb.parse),
    postfix.NAME: _checked(postfix.parse),
    exim.NAME: _checked(exim.parse),
    sendmail.NAME: _checked(sendmail.parse),
    jsonlines.NAME: _checked(jsonlines.parse),
}


def get_parser(name: str) -> LineParser:
    """The parser for a format name; ParseError names the unknown one and the known ones."""
    try:
        return PARSERS[name]
    except KeyError as exc:
        known = ", ".join(sorted(PARSERS))
        raise ParseError(f"unknown log format {name!r}; known formats: {known}") from exc
