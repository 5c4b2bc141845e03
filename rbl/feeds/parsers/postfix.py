"""Postfix syslog lines -> TrapHits: smtpd and cleanup verdicts; postscreen and
accepted mail in their own modules.

The ``postfix`` format reads four sources of one log:

- smtpd's access-restriction verdicts (below);
- cleanup's verdicts after DATA: milter replies (``milter-reject: END-OF-MESSAGE``
  from rspamd or amavis, the same shape as smtpd's) and header/body_checks
  (``QID: reject: header Subject: ... from name[addr]; from=<..> to=<..> ...:
  text``, cleanup_message.c ``cleanup_act_log``), hits of stage "data" when
  they name a recipient (cleanup names the last one of the message);
- postscreen's RCPT rejections (rbl.feeds.parsers.postscreen);
- mail accepted for a trap, joined from smtpd's ``client=``, qmgr's ``from=``
  and the delivery line by queue id (rbl.feeds.parsers.postfix_queue).

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
hits, since they accompany another verdict or an accepted recipient. A verdict
after which the message may still be delivered (``reject_warning``, ``hold``,
``discard``, ``filter``, ``redirect``) marks its recipient counted, so the
delivery of that message is not a second hit.

A RCPT verdict always names its recipient, so one without ``to=<...>`` raises
ParseError; DATA, BDAT and END-OF-MESSAGE verdicts are hits when they name a
recipient (single-recipient transactions) and no hits otherwise; CONNECT,
HELO/EHLO, MAIL, VRFY and ETRN verdicts name none and are no hits.

The fields after the reply text are read from their fixed order (from=, to=,
proto=, helo=, then SASL ones; rbl.feeds.parsers.postfix_fields), the
addresses by Postfix's own quoting (``info_log_address_format = external``,
the default since 3.5: a local part with spaces, ``<>``, ``;`` or ``=`` is
quoted, ``"`` and ``\\`` escaped), so a sender or recipient imitating ``;
from=<..> to=<..>`` cannot stand in for the real fields; a line that can be
read two ways is refused. The HELO cannot imitate anything: smtpd replaces
spaces and ``<>()\\";@`` in it with ``?``. A header or body text can imitate
a cleanup verdict's origin and fields; such a line reads two ways and is
refused.

The client is ``name[addr]``, optionally ``:port`` (``smtpd_client_port_logging``);
``name`` is ``unknown`` unless it was forward-confirmed, and then becomes
``client_name``. IPv6 addresses appear bare or as ``IPv6:...``. Programs are
judged by their last part (``postfix/smtpd``, ``postfix/submission/smtpd``,
``postfix-out/smtpd``). ``TrapHit.attempt`` is ``queue:ID`` when the line has a
queue id, else ``pid:N`` (the smtpd process), so attempts from two processes
in one second stay two, and "hold" then "reject" of one RCPT stays one.
Imports only the standard library and this package.
"""

from __future__ import annotations

import re
from typing import Final

from rbl.feeds.parsers import postfix_fields, postfix_queue, postscreen, syslogline
from rbl.feeds.parsers.context import ParseContext
from rbl.feeds.parsers.normalise import client_ip, helo_name
from rbl.feeds.parsers.postfix_fields import Fields
from rbl.model.traphit import ParseError, TrapHit

NAME: Final = "postfix"

# A line matching the prefix claims to be a verdict this parser reads.
_PREFIX: Final = re.compile(
    r"(?P<qid>NOQUEUE|[0-9A-Za-z]+): "
    r"(?P<action>(?:milter-)?(?:reject|discard|hold)|reject_warning|filter|redirect): "
    r"(?P<where>[A-Z][A-Z-]*) from ",
    re.ASCII,
)
# cleanup's header/body_checks verdicts (cleanup_act_log): "QID: action: class content
# from origin; fields[: text]"; the actions that stop or keep the message as it is.
_CONTENT: Final = re.compile(
    r"(?P<qid>[0-9A-Za-z]+): (?P<action>reject|hold|discard): "
    r"(?P<class>header|body|content|mime-header|nested-header) ",
    re.ASCII,
)
# The client: Postfix's verified name (or "unknown") and the socket's address.
_CLIENT: Final = re.compile(r"(?P<name>[^ \[\]]*)\[(?P<addr>[^\] ]*)\](?::[0-9]+)?: ", re.ASCII)
# The origin just before a content verdict's fields: " from name[addr]" then ";".
_ORIGIN: Final = re.compile(r" from (?:(?P<name>[^ \[\]]*)\[(?P<addr>[^\] ]*)\]|local)\Z", re.ASCII)
_WITH_RECIPIENT: Final = frozenset({"RCPT", "DATA", "BDAT", "END-OF-MESSAGE"})
# Verdicts after which the message may still be delivered (to this recipient or at
# all, once released): the delivery is the same attempt, not a second hit.
_KEEPS: Final = frozenset(
    {"reject_warning", "hold", "filter", "redirect", "discard", "milter-hold", "milter-discard"}
)
# Verdicts after DATA that refuse the whole message.
_ENDS: Final = frozenset({"reject", "milter-reject"})
MAX_LINE: Final = 16 * 1024
MAX_READINGS: Final = postfix_fields.MAX_READINGS
_SHAPE: Final = "name[addr]: text; from=<..> to=<..> ..."
_CONTENT_SHAPE: Final = "content from name[addr]; from=<..> to=<..> ...[: text]"
_SESSION_ENDS: Final = ("connect from ", "disconnect from ")


def _reading(line: str, text_at: int, where: str) -> Fields:
    """The one field block of the line: after some ";" of the reply text, to the end.

    The reply text may hold semicolons (RBL and policy replies) and the client's
    own addresses; the sender and recipient may hold ``"; from=<..> to=<..>``
    inside quoted local parts. Each ";" is tried, addresses scanned by
    Postfix's quoting (quote_822_local), and the line is refused unless exactly
    one reading runs to the end of the line.
    """
    what = f"postfix {where} verdict"
    found: set[Fields] = set()
    for at in postfix_fields.starts(line, text_at, what):
        fields = postfix_fields.smtpd_fields(line, at)
        if fields is not None:
            found.add(fields)
    return postfix_fields.only(found, line, what, _SHAPE)


def parse(line: str, ctx: ParseContext) -> list[TrapHit]:
    """The hits in one Postfix syslog line: none, or one."""
    if not (
        " from " in line
        or ": to=<" in line
        or ": client=" in line
        or ": from=<" in line
        or ": removed" in line
    ):
        return []  # the cheap test first: most lines of a busy log are none of these
    if " from " not in line and ": client=" not in line and not postfix_queue.may_join(line, ctx):
        return []  # a queue line (qmgr, delivery) of a message whose client was not seen
    line = line.rstrip("\r\n")
    head = syslogline.header(line)
    if head is None or "/" not in head.group("prog"):
        return []  # Postfix programs log as syslog_name/program ("postfix/smtpd")
    program = head.group("prog").rpartition("/")[2]
    if program == "smtpd":
        if ": client=" in line and postfix_queue.client(line, head, ctx):
            return []
        if line.startswith(_SESSION_ENDS, head.end()):
            postfix_queue.session_ends(ctx, head.group("pid"))
            return []
        return _verdict(line, head, ctx) if " from " in line else []
    if program == "postscreen":
        return postscreen.parse(line, head, ctx)
    if program == "cleanup":
        if " from " not in line:
            return []
        if _PREFIX.match(line, head.end()) is not None:
            return _verdict(line, head, ctx)
        return _content(line, head, ctx)
    return postfix_queue.parse(line, head, ctx)


def _verdict(line: str, head: re.Match[str], ctx: ParseContext) -> list[TrapHit]:
    """smtpd's restriction verdicts and cleanup's milter verdicts (the same shape)."""
    prefix = _PREFIX.match(line, head.end())
    if prefix is None:
        return []
    where = prefix.group("where")
    if where not in _WITH_RECIPIENT:
        return []
    if len(line) > MAX_LINE:
        raise ParseError(f"postfix line is {len(line)} characters long, over {MAX_LINE}")
    client = _CLIENT.match(line, prefix.end())
    if client is None:
        raise ParseError(f"postfix {where} verdict is not {_SHAPE!r}: {line[:200]!r}")
    fields = _reading(line, client.end(), where)
    qid = prefix.group("qid")
    if where != "RCPT" and prefix.group("action") in _ENDS and qid != "NOQUEUE":
        postfix_queue.forget(ctx, qid)  # refused whole: no delivery, no "removed" line
    if fields.rcpt is None:
        if where == "RCPT":
            raise ParseError(f"postfix RCPT verdict without to=<...>: {line[:200]!r}")
        return []
    pid = head.group("pid")
    attempt = f"queue:{qid}" if qid != "NOQUEUE" else f"pid:{pid}" if pid else None
    hit = _hit(line, head, ctx, client, fields, "rcpt" if where == "RCPT" else "data", attempt)
    if prefix.group("action") in _KEEPS:
        postfix_queue.counted(ctx, None if qid == "NOQUEUE" else qid, pid, fields.rcpt)
    return [hit]


def _content(line: str, head: re.Match[str], ctx: ParseContext) -> list[TrapHit]:
    """cleanup's header/body_checks verdicts: one hit when they name a recipient.

    The header or body text (the sender's, up to 200 characters) comes before
    the origin and can imitate " from name[addr]; from=<..>"; a line that has
    more than one reading is refused.
    """
    prefix = _CONTENT.match(line, head.end())
    if prefix is None:
        return []
    if len(line) > MAX_LINE:
        raise ParseError(f"postfix line is {len(line)} characters long, over {MAX_LINE}")
    what = f"postfix cleanup {prefix.group('class')} verdict"
    found: dict[tuple[str | None, str | None, Fields], re.Match[str]] = {}
    for at in postfix_fields.starts(line, prefix.end(), what):
        origin = _ORIGIN.search(line, prefix.end(), at - 1)
        block = None if origin is None else postfix_fields.smtpd_block(line, at)
        if origin is None or block is None:
            continue
        fields, end = block
        if end == len(line) or line.startswith(": ", end):
            found[origin.group("name"), origin.group("addr"), fields] = origin
    if len(found) != 1:
        if not found:
            raise ParseError(f"{what} is not {_CONTENT_SHAPE!r}: {line[:200]!r}")
        raise ParseError(
            f"{what} can be read {len(found)} ways (the content, sender or recipient "
            f"imitates the 'from name[addr]; from=<..> to=<..>' fields): {line[:200]!r}"
        )
    qid = prefix.group("qid")
    if prefix.group("action") == "reject":
        postfix_queue.forget(ctx, qid)  # refused whole: no delivery, no "removed" line
    ((_name, addr, fields), origin) = next(iter(found.items()))
    if fields.rcpt is None or addr is None:
        return []  # no recipient named, or mail submitted locally (origin "local")
    hit = _hit(line, head, ctx, origin, fields, "data", f"queue:{qid}")
    if prefix.group("action") != "reject":
        postfix_queue.counted(ctx, qid, None, fields.rcpt)
    return [hit]


def _hit(
    line: str,
    head: re.Match[str],
    ctx: ParseContext,
    client: re.Match[str],
    fields: Fields,
    stage: str,
    attempt: str | None,
) -> TrapHit:
    name = client.group("name")
    return TrapHit(
        at=syslogline.header_time(head, ctx),
        client_ip=client_ip(client.group("addr")),
        rcpt_to=fields.rcpt,
        mail_from=fields.sender,
        helo=helo_name(fields.helo),
        feed=ctx.feed or NAME,
        raw=line,
        client_name=None if name in ("", "unknown") else name,
        stage=stage,
        attempt=attempt,
    )
