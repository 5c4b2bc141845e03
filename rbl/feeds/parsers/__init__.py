"""Parsers: pure functions from one log line to the TrapHits it shows.

Every parser is ``parse(line, ctx) -> list[TrapHit]``: an empty list for a
line that belongs to its log but shows no SMTP attempt (other daemons, other
messages, blank lines), one hit per recipient otherwise (an Exim arrival with
``+received_recipients`` or a JSON line may name several). A line that claims
to be a kind the parser reads but is malformed raises ParseError saying what
is wrong; no other exception escapes. ``TrapHit.raw`` is the line without its
trailing newline.

Formats (one module each): ``spamd`` (OpenBSD spamd syslog), ``spamdb``
(spamdb(8) listing), ``postfix`` (smtpd restriction verdicts), ``exim``
(main/reject log), ``json`` (JSON lines). Imports neither Twisted nor
SQLAlchemy; only the standard library and rbl.traphit.
"""

from __future__ import annotations

from collections.abc import Callable

from rbl.feeds.parsers import exim, jsonlines, postfix, spamd, spamdb
from rbl.feeds.parsers.context import ParseContext
from rbl.traphit import ParseError, TrapHit

__all__ = ["PARSERS", "LineParser", "ParseContext", "get_parser"]

LineParser = Callable[[str, ParseContext], list[TrapHit]]

PARSERS: dict[str, LineParser] = {
    spamd.NAME: spamd.parse,
    spamdb.NAME: spamdb.parse,
    postfix.NAME: postfix.parse,
    exim.NAME: exim.parse,
    jsonlines.NAME: jsonlines.parse,
}


def get_parser(name: str) -> LineParser:
    """The parser for a format name; ParseError names the unknown one and the known ones."""
    try:
        return PARSERS[name]
    except KeyError as exc:
        known = ", ".join(sorted(PARSERS))
        raise ParseError(f"unknown log format {name!r}; known formats: {known}") from exc
