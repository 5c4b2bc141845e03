"""Rows read back as the store's frozen records, and queries narrowed by column values.

A record (``Listing``, ``RemovalRequest``, ...) is a dataclass whose fields are
named after its table's columns: ``record`` fills it from a row, times in UTC
(rbl.store.timestamps), so a new column is one new field, not one more line in
every reader. ``narrowed`` is the filter every listing query of people shares.
"""

from __future__ import annotations

from dataclasses import fields
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Row, Select, Table

from rbl.store.timestamps import utc

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

Record = TypeVar("Record", bound="DataclassInstance")


def record(kind: type[Record], row: Row[*tuple[Any, ...]], **values: object) -> Record:
    """``kind`` from ``row``: each field not given in ``values`` is the column of its name,
    a time as UTC."""
    columns = row._mapping
    for field in fields(kind):
        if field.name not in values:
            value = columns[field.name]
            values[field.name] = utc(value) if isinstance(value, datetime) else value
    return kind(**values)


def narrowed(query: Select[Any], table: Table, **equal: object) -> Select[Any]:
    """``query`` keeping the rows whose column equals each value given (None: any)."""
    for name, value in equal.items():
        if value is not None:
            query = query.where(table.c[name] == value)
    return query
