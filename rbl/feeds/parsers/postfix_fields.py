"""The ``from=<..> to=<..> proto=.. helo=<..>`` block that ends Postfix's verdict lines.

Three writers, two styles:

- smtpd (smtpd_check.c ``log_whatsup``) and cleanup (cleanup_milter.c
  ``cleanup_milter_apply``, cleanup_message.c ``cleanup_act_log``): ``;`` then
  `` from=<S>`` `` to=<R>`` `` proto=P`` `` helo=<H>``, each only when known,
  separated by spaces; smtpd may add SASL fields, cleanup's content verdicts
  ``: text``. smtpd replaces spaces and ``<>()\\";@`` in the HELO with ``?``
  (cleanup logs smtpd's copy), so it ends at the first ``>``.
- postscreen (postscreen_smtpd.c ``psc_rcpt_cmd``): ``; from=<S>, to=<R>,
  proto=P, helo=<H>``, all four always, comma separated, to the end of the
  line. postscreen keeps the HELO as sent: one word (no spaces) that may hold
  ``<>,;``, so it runs from the last `` helo=<`` to the final ``>``.

The addresses are in Postfix's external form (quote_822_local: a local part
with specials quoted, ``"`` and ``\\`` escaped; the domain as sent) and are
scanned by that grammar (rbl.feeds.parsers.addresses), never by looking for
the next ``>``. The reply text before the block can hold semicolons and
addresses of its own, and a quoted local part can hold a whole imitation of the
block, so every ``;`` the block could start after is tried and the caller
takes a line only when exactly one reading runs to the end. Imports only the
standard library and this package.
"""

from __future__ import annotations

import re
from typing import Final, NamedTuple

from rbl.feeds.parsers import addresses
from rbl.model.traphit import ParseError

# More places after the reply text where a field block could start: refused unread.
MAX_READINGS: Final = 64

_PROTO: Final = re.compile(r" proto=[A-Za-z0-9]+", re.ASCII)
_NEUTERED_HELO: Final = re.compile(r" helo=<(?P<helo>[^ <>]*)>", re.ASCII)
_SASL: Final = re.compile(
    r"(?: sasl_method=[^ ]*)?(?: sasl_username=[^ ]*)?(?: sasl_sender=[^ ]*)?", re.ASCII
)
_POSTSCREEN_TAIL: Final = re.compile(r", proto=(?:E?SMTP), helo=<(?P<helo>[^ ]*)>", re.ASCII)


class Fields(NamedTuple):
    """One reading of the block: the sender, recipient and HELO it names (None: absent)."""

    sender: str | None
    rcpt: str | None
    helo: str | None


def _address(line: str, at: int) -> tuple[int, str] | None:
    """A ``<external-form address>`` whose text starts at ``at``: index past ``>``, address."""
    scanned = addresses.postfix(line, at)
    if scanned is None or not line.startswith(">", scanned[0]):
        return None
    return scanned[0] + 1, scanned[1]


def smtpd_block(line: str, at: int) -> tuple[Fields, int] | None:
    """The space-separated block starting at ``at`` (just after a ``;``) and where it ends."""
    i = at
    sender = rcpt = helo = None
    if line.startswith(" from=<", i):
        got = _address(line, i + 7)
        if got is None:
            return None
        i, sender = got
    if line.startswith(" to=<", i):
        got = _address(line, i + 5)
        if got is None:
            return None
        i, rcpt = got
    proto = _PROTO.match(line, i)
    if proto is not None:
        i = proto.end()
    named = _NEUTERED_HELO.match(line, i)
    if named is not None:
        helo = named.group("helo")
        i = named.end()
    return Fields(sender, rcpt, helo), i


def smtpd_fields(line: str, at: int) -> Fields | None:
    """smtpd's block (and SASL fields) if it runs from ``at`` to the end of the line."""
    block = smtpd_block(line, at)
    if block is None or _SASL.fullmatch(line, block[1]) is None:
        return None
    return block[0]


def postscreen_fields(line: str, at: int) -> Fields | None:
    """postscreen's ``from=<>, to=<>, proto=, helo=<>`` if it runs from ``at`` to the end."""
    if not line.startswith(" from=<", at):
        return None
    got = _address(line, at + 7)
    if got is None or not line.startswith(", to=<", got[0]):
        return None
    i, sender = got
    got = _address(line, i + 6)
    if got is None:
        return None
    i, rcpt = got
    tail = _POSTSCREEN_TAIL.fullmatch(line, i)
    if tail is None:
        return None
    return Fields(sender, rcpt, tail.group("helo"))


_STARTS: Final = (" from=<", " to=<", " proto=", " helo=<", " sasl_")


def starts(line: str, text_at: int, what: str) -> list[int]:
    """Every ``;`` after ``text_at`` that a field block (or the end) follows; too many: refused."""
    found: list[int] = []
    at = line.find(";", text_at)
    while at >= 0:
        if line.startswith(_STARTS, at + 1) or at + 1 == len(line):
            found.append(at + 1)
            if len(found) > MAX_READINGS:
                raise ParseError(
                    f"{what} has over {MAX_READINGS} places where its "
                    f"'; from=<..> to=<..>' fields could start: {line[:200]!r}"
                )
        at = line.find(";", at + 1)
    return found


def only(readings: set[Fields], line: str, what: str, shape: str) -> Fields:
    """The one reading of a line; ParseError for none (not the shape) or several (ambiguous)."""
    if len(readings) == 1:
        return next(iter(readings))
    if not readings:
        raise ParseError(f"{what} is not {shape!r}: {line[:200]!r}")
    raise ParseError(
        f"{what} can be read {len(readings)} ways (a sender or recipient "
        f"imitates the '; from=<..> to=<..>' fields): {line[:200]!r}"
    )
