"""Timestamps of MTA logs, turned into aware UTC datetimes.

Three shapes occur: the traditional syslog stamp ``Nov 23 06:15:31`` (no
year, no zone), RFC 3339 (``2026-11-23T06:15:31.123456+01:00`` from rsyslog's
high-precision template or ``journalctl -o short-iso``; also what JSON feeds
send) and Exim's ``2026-11-23 06:15:31`` with optional ``.123`` milliseconds
and `` +0100`` (``log_selector = +millisec``, ``log_timezone = true``). A stamp
without a zone is in ``ParseContext.tz``. A traditional stamp gets the latest
year that puts it at most one day after ``ParseContext.now``, so a
``Dec 31 23:59:59`` line read on January 1st belongs to the year before, and
a clock slightly ahead of ``now`` is still this year.

Results are cached on the stamp text: bulk logs carry many lines per second.
Imports only the standard library and rbl.model.traphit.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from functools import lru_cache
from typing import Final

from rbl.model.traphit import ParseError

MONTHS: Final = {
    "Jan": 1,
    "Feb": 2,
    "Mar": 3,
    "Apr": 4,
    "May": 5,
    "Jun": 6,
    "Jul": 7,
    "Aug": 8,
    "Sep": 9,
    "Oct": 10,
    "Nov": 11,
    "Dec": 12,
}
# How far after the reader's clock a year-less stamp may lie (clock skew,
# zones ahead of the reader) before it is taken to be from the year before.
FUTURE_SLACK: Final = timedelta(days=1)
_YEARS_BACK: Final = 8  # enough to reach a leap year for "Feb 29"

_RFC3339: Final = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:[.,](\d{1,9}))?"
    r"(?:([Zz])|([+-])(\d\d):?(\d\d))?",
    re.ASCII,
)
_EXIM: Final = re.compile(
    r"(\d{4})-(\d\d)-(\d\d) (\d\d):(\d\d):(\d\d)(?:\.(\d{3}))?(?: ([+-])(\d\d)(\d\d))?", re.ASCII
)


def _offset(sign: str, hours: str, minutes: str, text: str) -> tzinfo:
    try:
        delta = timedelta(hours=int(hours), minutes=int(minutes))
        return timezone(-delta if sign == "-" else delta)
    except ValueError as exc:
        raise ParseError(f"timestamp {text!r} has an impossible UTC offset") from exc


def _utc(fields: tuple[str, ...], micro: int, zone: tzinfo, text: str) -> datetime:
    """Year, month, day, hour, minute and second as matched (digits), in ``zone``."""
    year, month, day, hour, minute, second = (int(f) for f in fields)
    try:
        return datetime(year, month, day, hour, minute, second, micro, zone).astimezone(UTC)
    except (ValueError, OverflowError) as exc:
        raise ParseError(f"timestamp {text!r} is not a valid date and time: {exc}") from exc


def _micro(fraction: str | None) -> int:
    return int(fraction[:6].ljust(6, "0")) if fraction else 0


@lru_cache(maxsize=4096)
def rfc3339(text: str, tz: tzinfo) -> datetime:
    """Parse an RFC 3339 date-time (``T`` or space; offset optional, else ``tz``)."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise ParseError(f"timestamp {text!r} is not an RFC 3339 date-time")
    year, month, day, hour, minute, second, fraction, zulu, sign, oh, om = m.groups()
    if zulu is not None:
        zone: tzinfo = UTC
    elif sign is not None:
        zone = _offset(sign, oh, om, text)
    else:
        zone = tz
    return _utc((year, month, day, hour, minute, second), _micro(fraction), zone, text)


@lru_cache(maxsize=4096)
def exim(text: str, tz: tzinfo) -> datetime:
    """Parse Exim's ``2026-11-23 06:15:31[.123][ +0100]``."""
    m = _EXIM.fullmatch(text)
    if m is None:
        raise ParseError(f"timestamp {text!r} is not an Exim log timestamp")
    year, month, day, hour, minute, second, millis, sign, oh, om = m.groups()
    zone = _offset(sign, oh, om, text) if sign is not None else tz
    micro = int(millis) * 1000 if millis else 0
    return _utc((year, month, day, hour, minute, second), micro, zone, text)


@lru_cache(maxsize=4096)
def traditional(month: str, day: str, clock: str, now: datetime, tz: tzinfo) -> datetime:
    """Parse ``Nov``, `` 3``/``23``, ``06:15:31`` with the year inferred from ``now``."""
    text = f"{month} {day} {clock}"
    try:
        month_number = MONTHS[month]
        day_number = int(day)
        hour, minute, second = (int(part) for part in clock.split(":"))
    except (KeyError, ValueError) as exc:
        raise ParseError(f"timestamp {text!r} is not a syslog timestamp") from exc
    limit = now + FUTURE_SLACK
    reason = "no such day"
    for year in range(now.year + 1, now.year - _YEARS_BACK, -1):
        try:
            local = datetime(year, month_number, day_number, hour, minute, second, tzinfo=tz)
        except ValueError as exc:
            reason = str(exc)
            if "day is out of range" in reason and month_number == 2 and day_number == 29:
                continue  # Feb 29: look for a leap year
            break
        except OverflowError as exc:  # pragma: no cover - years near datetime's limits
            reason = str(exc)
            break
        if local <= limit:
            return local.astimezone(UTC)
    raise ParseError(f"timestamp {text!r} is not a valid date and time: {reason}")


def epoch(seconds: float, text: str) -> datetime:
    """Seconds since the epoch (as spamdb and JSON feeds give them) in UTC."""
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise ParseError(f"time {text} is outside the range of dates") from exc
