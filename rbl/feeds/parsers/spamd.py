"""OpenBSD spamd(8) syslog lines -> TrapHits.

What spamd logs about SMTP attempts (OpenBSD src, libexec/spamd):

- spamd.c, with ``-v``, once per RCPT::

      (GREY) 192.0.2.1: <spammer@example.net> -> <trap@example.org>
      (BLACK) 192.0.2.1: <spammer@example.net> -> <trap@example.org>

  (``"(%s) %s: %s -> %s"``; GREY for a greylisted client, BLACK for one on a
  blacklist.) Both become a hit with ``trap_asserted`` false: whether the
  recipient is a trap is decided against the store's trap list. spamd logs
  no HELO here.
- grey.c, at LOG_DEBUG, the first time the greylister sees a tuple::

      new entry 192.0.2.1 from <spammer@example.net> to <user@example.org>, helo mail.example.net
      new greytrap entry 192.0.2.1 from <spammer@example.net> to <trap@example.org>, helo x

  (``"new %sentry %s from %s to %s, helo %s"``.) The same attempt as the
  GREY line before it, with the HELO: a hit, ``trap_asserted`` true for the
  greytrap form (it follows a ``Trapping`` line).
- grey.c, at LOG_DEBUG, when the greylister traps a client::

      Trapping 192.0.2.1 for tuple 192.0.2.1 helo.example <spammer@example.net> <trap@example.org>
      Trapping 192.0.2.1 for trying 198.51.100.25 first for tuple 192.0.2.1 ...

  (``"Trapping %s for tuple %s"`` where the tuple is ip, helo, from and to
  joined by newlines, which syslogd writes as spaces; the second form is the
  ``-M`` low-priority-MX trap.) These are hits with ``trap_asserted`` true.
  spamd never logs ``(TRAP)``; there is no such tag in spamd.c or grey.c.

Everything else is no hit: ``disconnected after N seconds. lists: ...``,
sync, whitelist and database messages, and other programs (spamlogd,
spamd-setup). From and to are spamd's raw tokens (``setlog``: the word after
``MAIL FROM:``/``RCPT TO:``), so angle brackets are optional and stripped
here. The HELO is one word too (``gethelo``: the first word after
``HELO``/``EHLO``, empty when the client sent MAIL first), so no field of
these lines holds a space and each is read as one word: a HELO such
as ``x,from<a@b>`` cannot shift the others. The store counts an attempt
logged twice (GREY and new entry in the same second) once. Imports only the
standard library and this package.
"""

from __future__ import annotations

import re
from typing import Final

from rbl.feeds.parsers import syslogline
from rbl.feeds.parsers.context import ParseContext
from rbl.feeds.parsers.normalise import client_ip, helo_name, mail_address
from rbl.model.traphit import ParseError, TrapHit

NAME: Final = "spamd"

_ATTEMPT: Final = re.compile(r"\((?:GREY|BLACK)\) (?P<ip>\S+): (?P<from>\S*) -> (?P<to>\S*)")
_TRAPPING: Final = re.compile(
    r"Trapping (?P<ip>\S+) for (?:trying \S+ first for )?tuple"
    r" (?P<tip>\S+) (?P<helo>\S*) (?P<from>\S*) (?P<to>\S*)"
)
# grey.c greyupdate: every field one word (setlog, gethelo), the HELO last and maybe empty.
_NEW_ENTRY: Final = re.compile(
    r"new (?P<trap>greytrap )?entry (?P<ip>\S+) from (?P<from>\S*) to (?P<to>\S*),"
    r" helo(?: (?P<helo>\S*))?"  # syslogd may drop the space before an empty HELO
)


def parse(line: str, ctx: ParseContext) -> list[TrapHit]:
    """The hits in one spamd syslog line: none, or one."""
    if "spamd" not in line:
        return []
    line = line.rstrip("\r\n")
    head = syslogline.header(line)
    if head is None or head.group("prog") != "spamd":
        return []
    start = head.end()
    if line.startswith("(GREY) ", start) or line.startswith("(BLACK) ", start):
        m = _ATTEMPT.fullmatch(line, start)
        if m is None:
            raise ParseError(f"spamd GREY/BLACK line is not '(TAG) ip: from -> to': {line[:200]!r}")
        helo = None
        trapped = False
    elif line.startswith("Trapping ", start):
        m = _TRAPPING.fullmatch(line, start)
        if m is None:
            raise ParseError(
                "spamd Trapping line is not 'Trapping ip for tuple ip helo from to': "
                f"{line[:200]!r}"
            )
        if m.group("tip") != m.group("ip"):
            raise ParseError(f"spamd Trapping line names two different clients: {line[:200]!r}")
        helo = helo_name(m.group("helo"))
        trapped = True
    elif line.startswith("new entry ", start) or line.startswith("new greytrap entry ", start):
        m = _NEW_ENTRY.fullmatch(line, start)
        if m is None:
            raise ParseError(
                f"spamd new entry line is not 'new entry ip from F to T, helo H': {line[:200]!r}"
            )
        helo = helo_name(m.group("helo"))
        trapped = m.group("trap") is not None
    else:
        return []
    ip = client_ip(m.group("ip"))
    return [
        TrapHit(
            at=syslogline.header_time(head, ctx),
            client_ip=ip,
            rcpt_to=mail_address(m.group("to")),
            mail_from=mail_address(m.group("from")),
            helo=helo,
            feed=ctx.feed or NAME,
            raw=line,
            trap_asserted=trapped,
        )
    ]
