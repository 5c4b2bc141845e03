"""Postfix postscreen's RCPT rejections -> TrapHits (part of the ``postfix`` format).

postscreen refuses every recipient of a client it does not pass on to smtpd
(a DNSBL score over the threshold with ``postscreen_dnsbl_action = enforce``,
a blocklisted address with ``postscreen_access_list`` and
``postscreen_blacklist_action = enforce``, failed deep protocol tests), and
logs each refusal (postscreen_smtpd.c ``psc_rcpt_cmd``)::

    postfix/postscreen[1200]: NOQUEUE: reject: RCPT from [192.0.2.1]:54321:
      550 5.7.1 Service unavailable; client [192.0.2.1] blocked using
      bl.example.org; from=<spammer@example.net>, to=<trap@example.org>,
      proto=ESMTP, helo=<bad.example>

(one line). On a site that uses rbl's own zone in postscreen this is the only
record of a listed host's repeat hits, so without it a listing expires while
the host keeps hitting traps. Unlike smtpd's verdicts the fields are comma
separated and always all four, the client has no name (postscreen does no
reverse lookup) and always a port, and the HELO is kept as sent (one word,
possibly holding ``<>,;``: it runs from the last `` helo=<`` to the final
``>``). The addresses are quoted the same way (rbl.feeds.parsers.postfix_fields),
so a sender imitating ``, to=<..>`` cannot move the recipient, and a line that
can be read two ways is refused. The client port tells one connection from
another (``TrapHit.attempt`` ``port:N``: postscreen is a single process, its pid
tells nothing). Imports only the standard library and this package.
"""

from __future__ import annotations

import re
from typing import Final

from rbl.feeds.parsers import postfix_fields, syslogline
from rbl.feeds.parsers.context import ParseContext
from rbl.feeds.parsers.normalise import client_ip, helo_name
from rbl.model.traphit import ParseError, TrapHit

_REJECT: Final = re.compile(
    r"NOQUEUE: reject: RCPT from \[(?P<addr>[^\] ]*)\]:(?P<port>[0-9]{1,5}): ", re.ASCII
)
_SHAPE: Final = "[addr]:port: text; from=<..>, to=<..>, proto=.., helo=<..>"
MAX_LINE: Final = 16 * 1024


def parse(line: str, head: re.Match[str], ctx: ParseContext) -> list[TrapHit]:
    """The hit in a postscreen line (already split from its syslog header): none or one."""
    start = head.end()
    if not line.startswith("NOQUEUE: reject: RCPT from ", start):
        return []
    if len(line) > MAX_LINE:
        raise ParseError(f"postfix line is {len(line)} characters long, over {MAX_LINE}")
    what = "postfix postscreen RCPT verdict"
    client = _REJECT.match(line, start)
    if client is None:
        raise ParseError(f"{what} is not {_SHAPE!r}: {line[:200]!r}")
    found: set[postfix_fields.Fields] = set()
    for at in postfix_fields.starts(line, client.end(), what):
        fields = postfix_fields.postscreen_fields(line, at)
        if fields is not None:
            found.add(fields)
    fields = postfix_fields.only(found, line, what, _SHAPE)
    return [
        TrapHit(
            at=syslogline.header_time(head, ctx),
            client_ip=client_ip(client.group("addr")),
            rcpt_to=fields.rcpt,
            mail_from=fields.sender,
            helo=helo_name(fields.helo),
            feed=ctx.feed or "postfix",
            raw=line,
            stage="rcpt",
            attempt=f"port:{int(client.group('port'))}",
        )
    ]
