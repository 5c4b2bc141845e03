"""TrapHit: the one record every feed produces.

A TrapHit describes one SMTP attempt seen by a feed: who connected (IP and,
when the MTA verified it, the forward-confirmed reverse DNS name), what it
said (HELO, MAIL FROM) and to whom (RCPT TO). Whether the recipient is a
trap is decided later, against the trap definitions in the store, except
when the feed itself asserts it (OpenBSD spamd's own greytrap list,
``spamdb`` TRAPPED entries): then ``trap_asserted`` is true and ``rcpt_to``
may be unknown. Parsers are pure functions from text to TrapHits; they never
touch the store. Imports only the standard library.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from rbl.errors import RblError

# The times a hit can have and still be evidence: none before 1970 is any MTA's, and
# one more than FUTURE_SKEW after the reader's or writer's clock is a wrong clock or a
# forged time (clocks differ, zones are misread by hours); it would list the sender
# until then. The parsers refuse such hits, and so does the store for every feed.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
FUTURE_SKEW = timedelta(days=1)


def lone_surrogate(text: str) -> int | None:
    """Where ``text`` holds a lone surrogate (a JSON ``\\udc80``: no Unicode text, and no
    database can store it), or None."""
    if text.isascii():
        return None
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        return exc.start
    return None


class ParseError(RblError):
    """The line is not in the expected format."""


@dataclass(frozen=True, slots=True)
class TrapHit:
    at: datetime  # timezone-aware, UTC
    client_ip: str  # canonical text form (ipaddress)
    rcpt_to: str | None  # lowercased address as given; None when the feed does not say
    mail_from: str | None  # "" for the null sender <>; None when the feed does not say
    helo: str | None
    feed: str  # "spamd", "spamdb", "postfix", "exim", "sendmail", "json", "policy"
    raw: str  # the line (or request) as received, for the evidence trail
    client_name: str | None = None  # FCrDNS-verified host name, when the MTA logged one
    trap_asserted: bool = False  # the feed says this was a trap hit (its own trap list)
    # How far the SMTP transaction got: "rcpt" (refused or seen at RCPT, no message
    # sent), "data" (message content was sent: an accepted arrival, a verdict at
    # DATA/END-OF-MESSAGE), or None when the feed does not say. Verification probes
    # never send DATA, so a "data" hit is never taken for one.
    stage: str | None = None
    # What tells this attempt apart from another by the same client, sender and
    # recipient in the same second: "kind:value", e.g. "pid:123" (the smtpd process),
    # "queue:4ABC" (the Postfix queue id), "port:5123" (postscreen's client port),
    # "instance:..." (a policy request's). None when the feed has nothing such; two
    # hits are one attempt unless both have an attempt of the same kind, differing.
    attempt: str | None = None


def hit_to_json(hit: TrapHit) -> str:
    """The hit losslessly as ASCII JSON (a lone surrogate stays a ``\\udc80`` escape)."""
    data = asdict(hit)
    data["at"] = hit.at.isoformat()
    return json.dumps(data, sort_keys=True)


def hit_from_json(text: str) -> TrapHit:
    """The hit ``hit_to_json`` wrote; keys this version does not know are ignored."""
    data = json.loads(text)
    known = {f.name for f in fields(TrapHit)}
    values: dict[str, Any] = {k: v for k, v in data.items() if k in known}
    values["at"] = datetime.fromisoformat(data["at"])
    return TrapHit(**values)
