"""spamdb(8) listing lines (``spamdb`` without arguments) -> TrapHits.

The listing format (OpenBSD usr.sbin/spamdb/spamdb.c ``print_entry``, also
printed by greyd's greydb)::

    TRAPPED|ip|expire
    GREY|ip|helo|from|to|first|pass|expire|bcount|pcount
    WHITE|ip|||first|pass|expire|bcount|pcount
    SPAMTRAP|address
    DOMAIN|domain                               (greydb only)

Times are seconds since the epoch. ``TRAPPED`` is a client spamd trapped for
mailing a spamtrap: a hit with ``trap_asserted`` true and no envelope. Its
only time is ``expire``; spamd sets it to the moment of trapping plus TRAPEXP
(grey.c ``greyupdate``, ``spamdb -t -a``; TRAPEXP is 24 hours in grey.h and
not configurable), and later trap hits by the same client do not move it. So
``at`` is ``expire - 86400``, the time the client was first trapped in this
round, capped at ``ParseContext.now`` in case a peer synced a longer expiry.
``GREY`` is one greylisted attempt: a hit with ``trap_asserted`` false at
``first``, the time the tuple was first seen; from and to keep spamd's angle
brackets in the database and lose them here. ``WHITE``, ``SPAMTRAP`` and
``DOMAIN`` entries are no hits. A wrong number of fields, an unknown entry
type, a bad number or address raises ParseError. Imports only the standard
library and this package.
"""

from __future__ import annotations

from datetime import UTC
from typing import Final

from rbl.feeds.parsers import stamps
from rbl.feeds.parsers.context import ParseContext
from rbl.feeds.parsers.normalise import client_ip, helo_name, mail_address
from rbl.model.traphit import ParseError, TrapHit

NAME: Final = "spamdb"
TRAPEXP: Final = 24 * 60 * 60  # grey.h: "hitting a spamtrap blacklists for a day"

_FIELDS: Final = {"TRAPPED": 3, "GREY": 10, "WHITE": 9, "SPAMTRAP": 2, "DOMAIN": 2}


def _seconds(text: str, what: str, line: str) -> int:
    try:
        return int(text)
    except ValueError as exc:
        raise ParseError(f"spamdb {what} time {text!r} is not a number: {line[:200]!r}") from exc


def parse(line: str, ctx: ParseContext) -> list[TrapHit]:
    """The hits in one spamdb listing line: none, or one."""
    line = line.rstrip("\r\n")
    if not line.strip():
        return []
    fields = line.split("|")
    kind = fields[0]
    expected = _FIELDS.get(kind)
    if expected is None:
        raise ParseError(f"spamdb entry type {kind[:40]!r} is unknown: {line[:200]!r}")
    if len(fields) != expected:
        raise ParseError(
            f"spamdb {kind} entry has {len(fields)} fields, not {expected}: {line[:200]!r}"
        )
    if kind == "TRAPPED":
        expire = _seconds(fields[2], "expire", line)
        at = min(stamps.epoch(expire - TRAPEXP, fields[2]), ctx.now.astimezone(UTC))
        return [
            TrapHit(
                at=at,
                client_ip=client_ip(fields[1]),
                rcpt_to=None,
                mail_from=None,
                helo=None,
                feed=ctx.feed or NAME,
                raw=line,
                trap_asserted=True,
            )
        ]
    if kind == "GREY":
        first = _seconds(fields[5], "first", line)
        return [
            TrapHit(
                at=stamps.epoch(first, fields[5]),
                client_ip=client_ip(fields[1]),
                rcpt_to=mail_address(fields[4]),
                mail_from=mail_address(fields[3]),
                helo=helo_name(fields[2]),
                feed=ctx.feed or NAME,
                raw=line,
            )
        ]
    return []
