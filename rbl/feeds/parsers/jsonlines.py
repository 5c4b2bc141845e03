"""JSON lines -> TrapHits: one object per line, for feeds of any origin.

Keys::

    time         required; RFC 3339 string (no offset: ParseContext.tz) or
                 seconds since the epoch (integer or float)
    ip           required; the client address
    to           the recipient, or a list of recipients (one hit each);
                 required unless "trap" is true
    from         MAIL FROM; "" or "<>" is the null sender; absent or null: unknown
    helo         HELO/EHLO argument; absent or null: unknown
    client_name  forward-confirmed client host name, optional
    trap         optional boolean: the feed asserts a trap hit
    stage        optional "rcpt" (no message was sent) or "data" (one was); absent or
                 null: unknown (see rbl.policy.senders.probe_reason)
    feed         optional feed name, "json" by default (ParseContext.feed wins)

Unknown keys are ignored. A blank line is no hit; anything that is not a JSON
object, or whose fields are missing or of the wrong type, raises ParseError
naming the field. Imports only the standard library and this package.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any, Final

from rbl.feeds.parsers import stamps
from rbl.feeds.parsers.context import ParseContext
from rbl.feeds.parsers.normalise import client_ip, helo_name, mail_address
from rbl.model.traphit import ParseError, TrapHit

NAME: Final = "json"
_STAGES: Final = frozenset({None, "rcpt", "data"})


def _optional_text(obj: dict[str, Any], key: str) -> str | None:
    value = obj.get(key)
    if value is None or isinstance(value, str):
        return value
    raise ParseError(f"field {key!r} must be a string, not {type(value).__name__}")


def _time(value: Any, ctx: ParseContext) -> datetime:
    if isinstance(value, str):
        return stamps.rfc3339(value.strip(), ctx.tz)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not math.isfinite(value):
            raise ParseError(f"field 'time' is {value}, not a time")
        return stamps.epoch(value, repr(value))
    raise ParseError(
        "field 'time' must be an RFC 3339 string or seconds since the epoch, "
        f"not {type(value).__name__}"
    )


def _recipients(value: Any, trapped: bool) -> list[str | None]:
    if value is None:
        if trapped:
            return [None]
        raise ParseError("field 'to' is missing (required unless 'trap' is true)")
    if isinstance(value, str):
        items = [value]
    elif isinstance(value, list):
        if not value:
            if trapped:
                return [None]
            raise ParseError("field 'to' is an empty list")
        if not all(isinstance(item, str) for item in value):
            raise ParseError("field 'to' must be a string or a list of strings")
        items = value
    else:
        raise ParseError(
            f"field 'to' must be a string or a list of strings, not {type(value).__name__}"
        )
    recipients: list[str | None] = []
    for item in items:
        address = mail_address(item)
        if not address:
            raise ParseError(f"field 'to' has an empty address {item[:100]!r}")
        recipients.append(address)
    return recipients


def parse(line: str, ctx: ParseContext) -> list[TrapHit]:
    """The hits in one JSON line: none for a blank line, else one per recipient."""
    line = line.rstrip("\r\n")
    if not line.strip():
        return []
    try:
        obj = json.loads(line)
    except (ValueError, RecursionError) as exc:
        raise ParseError(f"line is not valid JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise ParseError(f"JSON line is a {type(obj).__name__}, not an object")
    if "time" not in obj:
        raise ParseError("field 'time' is missing")
    at = _time(obj["time"], ctx)
    ip_text = obj.get("ip")
    if not isinstance(ip_text, str):
        if ip_text is None:
            raise ParseError("field 'ip' is missing")
        raise ParseError(f"field 'ip' must be a string, not {type(ip_text).__name__}")
    try:
        ip = client_ip(ip_text.strip())
    except ParseError as exc:
        raise ParseError(f"field 'ip': {exc}") from exc
    trapped = obj.get("trap", False)
    if trapped is None:
        trapped = False
    if not isinstance(trapped, bool):
        raise ParseError(f"field 'trap' must be true or false, not {type(trapped).__name__}")
    recipients = _recipients(obj.get("to"), trapped)
    sender = _optional_text(obj, "from")
    helo = _optional_text(obj, "helo")
    name = _optional_text(obj, "client_name")
    stage = _optional_text(obj, "stage")
    if stage not in _STAGES:
        raise ParseError(f'field \'stage\' must be "rcpt" or "data", not {str(stage)[:20]!r}')
    feed = ctx.feed or _optional_text(obj, "feed") or NAME
    mail_from = None if sender is None else mail_address(sender)
    helo = helo_name(helo)
    client_name = (name.strip() or None) if name is not None else None
    return [
        TrapHit(
            at=at,
            client_ip=ip,
            rcpt_to=rcpt,
            mail_from=mail_from,
            helo=helo,
            feed=feed,
            raw=line,
            client_name=client_name,
            trap_asserted=trapped,
            stage=stage,
        )
        for rcpt in recipients
    ]
