"""A trap hit as a row of ``hits``: what a sender said cut to fit, and what is derived.

Everything in a hit but its time and address is the sender's to choose, and a
value longer than its column would make PostgreSQL refuse the whole batch (and
every later one of a live feed). ``fit`` makes a hit storable before anything
decides on it; ``hit_row`` adds the columns the store derives and the decision.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from sqlalchemy import String

from rbl.model.idn import ascii_domain
from rbl.model.keys import address_key
from rbl.model.traphit import TrapHit
from rbl.policy.listing import Decision
from rbl.policy.senders import domain_of, normalise_sender
from rbl.store.schema import hits

# What a sender controls can be longer than its column; PostgreSQL would refuse
# the whole batch, and with it every later one of a live feed or an ingest run.
_CUT = ("helo", "mail_from", "rcpt_to", "attempt")


def _length(column: Any) -> int:
    """A String column's length."""
    kind = column.type
    assert isinstance(kind, String) and kind.length is not None
    return kind.length


_LIMITS = {name: _length(hits.c[name]) for name in (*_CUT, "client_name", "feed")}


def fit(hit: TrapHit) -> TrapHit:
    """The hit as it can be stored: what a sender said cut to its column, the raw line whole.

    NUL becomes U+FFFD (PostgreSQL text cannot hold it). A host name over 253
    octets is no verified name, so it is dropped rather than cut (a cut name
    could tie a wrong domain to the sender). Cut values stay longer than any
    valid name, so they tie no domain either, and the same attempt coming
    again is fitted the same way and still counts once.
    """
    changes: dict[str, str | None] = {}
    for name in (*_CUT, "client_name", "feed", "raw"):
        value = getattr(hit, name)
        if value is None:
            continue
        fitted = value.replace("\x00", "\ufffd") if "\x00" in value else value
        limit = _LIMITS.get(name)
        if limit is not None and len(fitted) > limit:
            fitted = None if name == "client_name" else fitted[:limit]
        if fitted != value:
            changes[name] = fitted
    return replace(hit, **changes) if changes else hit  # type: ignore[arg-type]


def hit_row(hit: TrapHit, decision: Decision, source_id: int | None) -> dict[str, Any]:
    """The row of ``hits`` that keeps ``hit`` (already ``fit``) as evidence, with its decision."""
    client = address_key(hit.client_ip)
    sender = normalise_sender(hit.mail_from)
    trap_domain = domain_of(hit.rcpt_to)
    return {
        "at": hit.at,
        "client_ip": hit.client_ip,
        "family": client.family,
        "network": client.packed,
        "client_name": hit.client_name,
        "helo": hit.helo,
        "mail_from": hit.mail_from,
        "sender_domain": _cut(domain_of(sender), hits.c.sender_domain),
        "rcpt_to": hit.rcpt_to,
        # The ASCII form traps are stored in, whichever form the MTA logged.
        "trap_domain": _cut(
            None if trap_domain is None else ascii_domain(trap_domain), hits.c.trap_domain
        ),
        "feed": hit.feed,
        "raw": hit.raw,
        "action": decision.action.value,
        "counted": decision.counts,
        "reason": decision.reason,
        "source_id": source_id,
        "attempt": hit.attempt,
    }


def _cut(text: str | None, column: Any) -> str | None:
    return text if text is None else text[: _length(column)]
