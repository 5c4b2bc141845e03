"""Timestamps read back from the store are UTC, whatever the backend returns.

SQLite hands back naive datetimes (PostgreSQL's timestamptz comes back aware);
everything rbl stores is UTC, so a naive value is UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import overload


@overload
def utc(moment: datetime) -> datetime: ...
@overload
def utc(moment: None) -> None: ...
@overload
def utc(moment: datetime | None) -> datetime | None: ...


def utc(moment: datetime | None) -> datetime | None:
    if moment is not None and moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment
