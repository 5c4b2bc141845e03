"""Which log a line belongs to: the syslog tag, or the shape of the line.

A parser answers "what hits does this line show"; most lines of a real log
show none, and a parser cannot tell a line of its own log that is not a
verdict (Postfix's qmgr, smtpd's ``connect from``) from a line of another
daemon's (the kernel, cron, sendmail). ``recognise`` tells them apart, so that
ingest can say when a whole file was read with the wrong ``--format``, and
``--format auto`` can send each line of a combined syslog to its own parser.

What belongs to each format::

    postfix   syslog program postfix/..., postfix-NAME/... (multi-instance) or postfix
    spamd     syslog program spamd, spamlogd or spamd-setup
    sendmail  syslog program sendmail, sm-mta, sm-msp-queue or sm-msp
    exim      Exim's own stamp "2026-11-23 06:15:31 ..." starting the line, or syslog
              program exim/exim4
    spamdb    "TRAPPED|", "GREY|", "WHITE|", "SPAMTRAP|" or "DOMAIN|" starting the line
    json      a line starting with "{" (spaces before it allowed)

Anything else (other daemons' syslog lines, comments, unknown text) belongs to
none: ``recognise`` gives None. Blank lines are nobody's and are not counted.
Recognition is by the start of the line only, never by what a sender wrote
later in it, and never raises. A format listed here need not have a parser
(``rbl.feeds.parsers.PARSERS``): a line can be recognised as sendmail's so
that an operator is told what the file is. Imports only the standard library
and this package's syslog header.
"""

from __future__ import annotations

import re
from typing import Final

from rbl.feeds.parsers import syslogline

AUTO: Final = "auto"  # the --format that dispatches on recognise()
FORMATS: Final = ("postfix", "spamd", "sendmail", "exim", "spamdb", "json")

_PROGRAMS: Final = {
    "spamd": "spamd",
    "spamlogd": "spamd",
    "spamd-setup": "spamd",
    "sendmail": "sendmail",
    "sm-mta": "sendmail",
    "sm-msp-queue": "sendmail",
    "sm-msp": "sendmail",
    "exim": "exim",
    "exim4": "exim",
    "postfix": "postfix",
}
# postfix/smtpd, postfix/submission/smtpd, postfix-out/smtpd (syslog_name of an instance)
_POSTFIX: Final = re.compile(r"postfix(?:-[A-Za-z0-9_.-]+)?/", re.ASCII)
_EXIM_STAMP: Final = re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[. ]", re.ASCII)
_SPAMDB: Final = re.compile(r"(?:TRAPPED|GREY|WHITE|SPAMTRAP|DOMAIN)\|", re.ASCII)


def recognise(line: str) -> str | None:
    """The format whose log ``line`` belongs to (one of FORMATS), or None."""
    head = syslogline.header(line)
    if head is not None:
        program = head.group("prog")
        found = _PROGRAMS.get(program)
        if found is not None:
            return found
        return "postfix" if _POSTFIX.match(program) else None
    if _EXIM_STAMP.match(line):
        return "exim"
    if _SPAMDB.match(line):
        return "spamdb"
    if line.lstrip(" \t").startswith("{"):
        return "json"
    return None


def is_blank(line: str) -> bool:
    """A line that belongs to no log and says nothing either way."""
    return not line.strip()
