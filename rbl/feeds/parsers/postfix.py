"""Postfix smtpd access-restriction log lines -> TrapHits.

smtpd logs every restriction verdict through ``log_whatsup`` (Postfix
src/smtpd/smtpd_check.c)::

    "%s: %s: %s from %s: %s;" queue_id|NOQUEUE, action, where, name[addr], text
    then " from=<%s>" " to=<%s>" " proto=%s" " helo=<%s>" for what is known

for example::

    Nov 23 06:15:31 mx postfix/smtpd[123]: NOQUEUE: reject: RCPT from
      unknown[192.0.2.1]: 550 5.1.1 <trap@example.org>: Recipient address
      rejected: User unknown in local recipient table;
      from=<spammer@example.net> to=<trap@example.org> proto=ESMTP helo=<bad.example>

(one line). Every restriction class (``Client host rejected``, ``Relay access
denied``, RBL hits, policy services answering ``reject``/``defer``, 4xx and
5xx alike) produces the same shape, and so do the delegated actions. The
actions that become hits, each an attempt to deliver to that recipient:
``reject``, ``reject_warning`` (``warn_if_reject``), ``discard``, ``hold``,
``filter``, ``redirect`` and the milter forms ``milter-reject``,
``milter-discard``, ``milter-hold``. ``warn``, ``info``, ``permit`` (only
logged with ``smtpd_log_access_permit_actions``) and anything else are no
hits, since they accompany another verdict or an accepted recipient.

A RCPT verdict always names its recipient, so one without ``to=<...>`` raises
ParseError; DATA, BDAT and END-OF-MESSAGE verdicts are hits when they name a
recipient (single-recipient transactions) and no hits otherwise; CONNECT,
HELO/EHLO, MAIL, VRFY and ETRN verdicts name none and are no hits.

The fields after the reply text are read from their fixed order (from=, to=,
proto=, helo=, then SASL ones), the addresses by Postfix's own quoting
(``info_log_address_format = external``, the default since 3.5: a local part
with spaces, ``<>``, ``;`` or ``=`` is quoted, ``"`` and ``\\`` escaped), so a
sender or recipient imitating ``; from=<..> to=<..>`` cannot stand in for the
real fields; a line that can be read two ways is refused. The HELO cannot
imitate anything: smtpd replaces spaces and ``<>()\\";@`` in it with ``?``.

The client is ``name[addr]``, optionally ``:port`` (``smtpd_client_port_logging``);
``name`` is ``unknown`` unless it was forward-confirmed, and then becomes
``client_name``. IPv6 addresses appear bare or as ``IPv6:...``. Programs
ending in ``/smtpd`` count (``postfix/smtpd``, ``postfix/submission/smtpd``,
``postfix-out/smtpd``); postscreen, cleanup (header/body_checks) and the rest
are other logs as far as this parser is concerned. Imports only the standard
library and this package.
"""

from __future__ import annotations

import re
from typing import Final

from rbl.feeds.parsers import addresses, syslogline
from rbl.feeds.parsers.context import ParseContext
from rbl.feeds.parsers.normalise import client_ip, helo_name
from rbl.traphit import ParseError, TrapHit

NAME: Final = "postfix"

# A line matching the prefix claims to be a verdict this parser reads.
_PREFIX: Final = re.compile(
    r"(?:NOQUEUE|[0-9A-Za-z]+): "
    r"(?:(?:milter-)?(?:reject|discard|hold)|reject_warning|filter|redirect): "
    r"(?P<where>[A-Z][A-Z-]*) from ",
    re.ASCII,
)
# The client: Postfix's verified name (or "unknown") and the socket's address.
_CLIENT: Final = re.compile(r"(?P<name>[^ \[\]]*)\[(?P<addr>[^\] ]*)\](?::[0-9]+)?: ", re.ASCII)
_PROTO: Final = re.compile(r" proto=[A-Za-z0-9]+", re.ASCII)
# smtpd neuters " <>()\\";@" in the HELO name (NEUTER_CHARACTERS), so it ends at ">".
_HELO: Final = re.compile(r" helo=<(?P<helo>[^ <>]*)>", re.ASCII)
_SASL: Final = re.compile(
    r"(?: sasl_method=[^ ]*)?(?: sasl_username=[^ ]*)?(?: sasl_sender=[^ ]*)?", re.ASCII
)
_WITH_RECIPIENT: Final = frozenset({"RCPT", "DATA", "BDAT", "END-OF-MESSAGE"})
MAX_LINE: Final = 16 * 1024
# Places after the reply text where a field block could start, at most; more: refused.
MAX_READINGS: Final = 64

_Fields = tuple[str | None, str | None, str | None]  # from, to, helo


def _address(line: str, at: int) -> tuple[int, str] | None:
    """A ``<external-form address>`` whose text starts at ``at``: index past ``>``, address."""
    scanned = addresses.postfix(line, at)
    if scanned is None or not line.startswith(">", scanned[0]):
        return None
    return scanned[0] + 1, scanned[1]


def _fields(line: str, at: int) -> _Fields | None:
    """The ``from=<> to=<> proto= helo=<>`` block starting at ``at`` if it runs to the end."""
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
    named = _HELO.match(line, i)
    if named is not None:
        helo = named.group("helo")
        i = named.end()
    if _SASL.fullmatch(line, i) is None:
        return None
    return sender, rcpt, helo


def _reading(line: str, text_at: int, where: str) -> _Fields:
    """The one field block of the line: after some ";" of the reply text, to the end.

    The reply text may hold semicolons (RBL and policy replies) and the client's
    own addresses; the sender and recipient may hold ``"; from=<..> to=<..>``
    inside quoted local parts. Each ";" is tried, addresses scanned by
    Postfix's quoting (quote_822_local), and the line is refused unless exactly
    one reading runs to the end of the line.
    """
    found: set[_Fields] = set()
    tried = 0
    at = line.find(";", text_at)
    while at >= 0:
        if line.startswith((" from=<", " to=<", " proto=", " helo=<", " sasl_"), at + 1) or (
            at + 1 == len(line)
        ):
            tried += 1
            if tried > MAX_READINGS:
                raise ParseError(
                    f"postfix {where} verdict has over {MAX_READINGS} places where its "
                    f"'; from=<..> to=<..>' fields could start: {line[:200]!r}"
                )
            fields = _fields(line, at + 1)
            if fields is not None:
                found.add(fields)
        at = line.find(";", at + 1)
    if len(found) == 1:
        return found.pop()
    if not found:
        raise ParseError(
            f"postfix {where} verdict is not 'name[addr]: text; from=<..> to=<..> ...': "
            f"{line[:200]!r}"
        )
    raise ParseError(
        f"postfix {where} verdict can be read {len(found)} ways (a sender or recipient "
        f"imitates the '; from=<..> to=<..>' fields): {line[:200]!r}"
    )


def parse(line: str, ctx: ParseContext) -> list[TrapHit]:
    """The hits in one Postfix syslog line: none, or one."""
    if "smtpd" not in line or " from " not in line:
        return []
    line = line.rstrip("\r\n")
    head = syslogline.header(line)
    if head is None or not head.group("prog").endswith("/smtpd"):
        return []
    start = head.end()
    prefix = _PREFIX.match(line, start)
    if prefix is None:
        return []
    where = prefix.group("where")
    if where not in _WITH_RECIPIENT:
        return []
    if len(line) > MAX_LINE:
        raise ParseError(f"postfix line is {len(line)} characters long, over {MAX_LINE}")
    client = _CLIENT.match(line, prefix.end())
    if client is None:
        raise ParseError(
            f"postfix {where} verdict is not 'name[addr]: text; from=<..> to=<..> ...': "
            f"{line[:200]!r}"
        )
    sender, rcpt, helo = _reading(line, client.end(), where)
    if rcpt is None:
        if where == "RCPT":
            raise ParseError(f"postfix RCPT verdict without to=<...>: {line[:200]!r}")
        return []
    name = client.group("name")
    return [
        TrapHit(
            at=syslogline.header_time(head, ctx),
            client_ip=client_ip(client.group("addr")),
            rcpt_to=rcpt,
            mail_from=sender,
            helo=helo_name(helo),
            feed=ctx.feed or NAME,
            raw=line,
            client_name=None if name in ("", "unknown") else name,
            stage="rcpt" if where == "RCPT" else "data",
        )
    ]
