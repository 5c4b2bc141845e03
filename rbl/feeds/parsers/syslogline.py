"""The header of a syslog line: stamp, host, program, pid; then the message.

Accepted headers, each optionally preceded by a priority ``<22>`` (when the
line comes straight off the wire rather than out of a file)::

    Nov 23 06:15:31 mx1 postfix/smtpd[1234]: message
    2026-11-23T06:15:31.123456+01:00 mx1 postfix/smtpd[1234]: message

The program is whatever precedes ``[pid]:`` or ``:``; Postfix's multi-instance
and per-service names (``postfix-out/smtpd``, ``postfix/submission/smtpd``)
are kept whole for the caller to judge; the pid is group ``pid`` (None
without one). A line that does not start with such a header is not a syslog
line (``header`` returns None). Imports only the standard library and this
package's stamps module.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Final

from rbl.feeds.parsers import stamps
from rbl.feeds.parsers.context import ParseContext

HEADER: Final = re.compile(
    r"(?:<\d{1,3}>)?"
    r"(?:(?P<mon>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) {1,2}(?P<day>\d{1,2})"
    r" (?P<clock>\d\d:\d\d:\d\d)"
    r"|(?P<iso>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?))"
    r" (?P<host>\S+) (?P<prog>[^\s\[\]:]+)(?:\[(?P<pid>\d*)\])?: ",
    re.ASCII,
)


def header(line: str) -> re.Match[str] | None:
    """Match the syslog header; ``m.end()`` is where the message starts."""
    return HEADER.match(line)


def header_time(m: re.Match[str], ctx: ParseContext) -> datetime:
    """The aware UTC time of a matched header."""
    month = m.group("mon")
    if month is not None:
        return stamps.traditional(month, m.group("day"), m.group("clock"), ctx.now, ctx.tz)
    return stamps.rfc3339(m.group("iso"), ctx.tz)
