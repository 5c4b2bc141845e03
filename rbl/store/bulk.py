"""Many rows in one ``INSERT``: on SQLite straight through the driver.

Bulk ingest writes thousands of hits, listings, change-log and audit rows a
batch; this is the one fast path they share, so that what it writes stays
exactly what Core writes.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Table, insert

SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's sqlite.DATETIME storage format


def insert_many(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """``INSERT`` many rows; on SQLite straight through the driver.

    Core's executemany processes every bound value in Python (about half the
    cost of a trap hit in bulk ingest). On SQLite the values need no more
    than SQLAlchemy's own DATETIME text form, written here the same way so
    that comparisons and reads through Core see exactly what Core writes.
    """
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        conn.execute(insert(table), rows)
        return
    columns = list(rows[0])
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    )
    texts: dict[datetime, str] = {}  # a batch repeats the same few moments

    def value(item: Any) -> Any:
        if isinstance(item, datetime):
            text = texts.get(item)
            if text is None:
                moment = item.astimezone(UTC) if item.tzinfo else item
                text = texts[item] = moment.strftime(SQLITE_DATETIME)
            return text
        return item

    conn.exec_driver_sql(sql, [tuple(value(row[c]) for c in columns) for row in rows])
