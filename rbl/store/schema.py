"""Table definitions (SQLAlchemy Core).

Core tables rather than ORM classes: the DNS process loads a million rows at
start-up and follows the change log, and the ORM would cost both time per row
and about 6 MB of resident memory in every DNS process for nothing it uses.
"""

from __future__ import annotations

from sqlalchemy import (
    Column,
    DateTime,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()

ACTIVE = "active"
REMOVED = "removed"

OP_SET = "set"
OP_DELETE = "delete"

listings = Table(
    "listings",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("zone", String(253), nullable=False),
    Column("key", String(260), nullable=False),  # canonical text: 192.0.2.0/24, *.example.com
    Column("family", SmallInteger, nullable=False),  # 4, 6, or 0 for domains
    Column("prefixlen", SmallInteger, nullable=False),  # 0 for domains
    Column("network", LargeBinary(16)),  # big-endian first address; sorts like the integer
    Column("codes", String(200), nullable=False),  # "127.0.0.2,127.0.0.4"
    Column("txt", Text),  # own TXT template, else the zone's
    Column("reason", Text),
    Column("source", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    UniqueConstraint("zone", "key", name="uq_listings_zone_key"),
    # Covers the DNS start-up query, so a million rows stream in index order.
    Index("ix_listings_load", "state", "zone", "family", "prefixlen", "network", "codes", "txt"),
)

change_log = Table(
    "change_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("zone", String(253), nullable=False),
    Column("key", String(260), nullable=False),
    Column("op", String(8), nullable=False),
    Column("codes", String(200)),
    Column("txt", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    sqlite_autoincrement=True,  # ids are never reused, even after pruning
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("action", String(32), nullable=False),
    Column("zone", String(253)),
    Column("key", String(260)),
    Column("reason", Text),
    Column("detail", Text),
    sqlite_autoincrement=True,
)
