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

from rbl.feeds.parsers import syslogline
from rbl.feeds.parsers.context import ParseContext
from rbl.feeds.parsers.normalise import client_ip, helo_name, mail_address
from rbl.traphit import ParseError, TrapHit

NAME: Final = "postfix"

# A line matching the prefix claims to be a verdict this parser reads.
_PREFIX: Final = re.compile(
    r"(?:NOQUEUE|[0-9A-Za-z]+): "
    r"(?:(?:milter-)?(?:reject|discard|hold)|reject_warning|filter|redirect): "
    r"(?P<where>[A-Z][A-Z-]*) from "
)
# The text may hold semicolons of its own (RBL replies, policy texts): the tail
# Postfix appends after the last one that parses is the real one.
_REST: Final = re.compile(
    r"(?P<name>[^\s\[\]]*)\[(?P<addr>[^\]\s]*)\](?::\d+)?: .*;"
    r"(?: from=<(?P<from>.*?)>)?(?: to=<(?P<to>.*?)>)?(?: proto=\S+)?(?: helo=<(?P<helo>\S*)>)?"
)
_WITH_RECIPIENT: Final = frozenset({"RCPT", "DATA", "BDAT", "END-OF-MESSAGE"})


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
    m = _REST.fullmatch(line, prefix.end())
    if m is None:
        raise ParseError(
            f"postfix {where} verdict is not 'name[addr]: text; from=<..> to=<..> ...': "
            f"{line[:200]!r}"
        )
    rcpt = m.group("to")
    if rcpt is None:
        if where == "RCPT":
            raise ParseError(f"postfix RCPT verdict without to=<...>: {line[:200]!r}")
        return []
    name = m.group("name")
    sender = m.group("from")
    return [
        TrapHit(
            at=syslogline.header_time(head, ctx),
            client_ip=client_ip(m.group("addr")),
            rcpt_to=mail_address(rcpt),
            mail_from=None if sender is None else mail_address(sender),
            helo=helo_name(m.group("helo")),
            feed=ctx.feed or NAME,
            raw=line,
            client_name=None if name in ("", "unknown") else name,
            stage="rcpt" if where == "RCPT" else "data",
        )
    ]
