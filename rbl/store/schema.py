"""Table definitions (SQLAlchemy Core).

Core tables rather than ORM classes: the DNS process loads a million rows at
start-up and follows the change log, and the ORM would cost both time per row
and about 6 MB of resident memory in every DNS process for nothing it uses.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    DateTime,
    ForeignKey,
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
from sqlalchemy.schema import SchemaItem

metadata = MetaData()


def _table(name: str, *items: SchemaItem, **options: Any) -> Table:
    """A table of ``metadata`` whose key is an integer ``id``, first as every table's is."""
    return Table(name, metadata, Column("id", Integer, primary_key=True), *items, **options)


ACTIVE = "active"
REMOVED = "removed"  # by the operator (delisted)
EXPIRED = "expired"  # evidence stopped coming
HELD = "held"  # would be listed, waits for the operator's review; never in DNS

SOURCE_MANUAL = "manual"
SOURCE_TRAP = "trap"

TRAP_ADDRESS = "address"  # one exact recipient address
TRAP_DOMAIN = "domain"  # every address at the domain

listings = _table(
    "listings",
    Column("zone", String(253), nullable=False),
    Column("key", String(260), nullable=False),  # canonical text: 192.0.2.0/24, *.example.com
    Column("family", SmallInteger, nullable=False),  # 4, 6, or 0 for domains
    Column("prefixlen", SmallInteger, nullable=False),  # 0 for domains
    Column("network", LargeBinary(16)),  # big-endian first address; sorts like the integer
    Column("codes", String(1600), nullable=False),  # "127.0.0.2,127.0.0.4"; 100 codes fit
    Column("txt", Text),  # own TXT template, else the zone's
    Column("reason", Text),
    Column("source", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True)),
    # Trap evidence summary; a listing that lapses and returns keeps its row.
    Column("first_seen", DateTime(timezone=True)),
    Column("last_seen", DateTime(timezone=True)),
    Column("hit_count", Integer, nullable=False, default=0),
    Column("times_listed", Integer, nullable=False, default=1),
    Column("delisted_at", DateTime(timezone=True)),  # only newer hits may list it again
    UniqueConstraint("zone", "key", name="uq_listings_zone_key"),
    Index("ix_listings_expiry", "state", "expires_at"),
    # Covers the DNS start-up query, so a million rows stream in index order.
    Index("ix_listings_load", "state", "zone", "family", "prefixlen", "network", "codes", "txt"),
)

change_log = _table(
    "change_log",
    Column("zone", String(253), nullable=False),
    Column("key", String(260), nullable=False),
    Column("op", String(16), nullable=False),  # set, delete, exclude, unexclude
    Column("codes", String(1600)),
    Column("txt", Text),
    Column("created_at", DateTime(timezone=True), nullable=False),
    sqlite_autoincrement=True,  # ids are never reused, even after pruning
)

# How far the change log has been pruned: one row (id 1), written in the same
# transaction as each prune. A follower whose position is below ``through`` may
# have missed deleted rows and must load a fresh snapshot instead.
change_log_pruned = _table(
    "change_log_pruned",
    Column("through", Integer, nullable=False),  # the highest id ever deleted
    Column("pruned_at", DateTime(timezone=True), nullable=False),
)

audit_log = _table(
    "audit_log",
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(100), nullable=False),
    Column("action", String(32), nullable=False),
    Column("zone", String(253)),
    Column("key", String(260)),
    Column("reason", Text),
    Column("detail", Text),
    sqlite_autoincrement=True,
)

traps = _table(
    "traps",
    Column("kind", String(16), nullable=False),  # TRAP_ADDRESS or TRAP_DOMAIN
    Column("value", String(320), nullable=False),  # lowercased address or domain
    Column("note", Text),
    Column("active", Boolean, nullable=False, default=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("kind", "value", name="uq_traps_kind_value"),
)

ingest_sources = _table(
    "ingest_sources",
    Column("name", Text, nullable=False),  # path as given, or "-"
    Column("identity", String(200), nullable=False),  # device:inode:hash of the first line
    # The position is per file and format: one syslog feeds a parser per format,
    # each from its own position ("auto" has one of its own too).
    Column("format", String(16), nullable=False),
    Column("offset", Integer, nullable=False, default=0),  # bytes committed
    Column("lines", Integer, nullable=False, default=0),
    Column("malformed", Integer, nullable=False, default=0),
    # The first line that is the format's log (a hit or not; NULL: none yet, 0: read
    # before rbl looked) and the non-blank lines before it: a file with many such lines
    # and no first one was read with the wrong format, and is reported.
    Column("recognised_at", Integer),
    Column("unrecognised", Integer, nullable=False, server_default="0"),
    # What the parsers held at the position (messages in flight, as JSON): the next run
    # starts from it, so a message whose first lines were read before still joins.
    Column("carried", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("identity", "format", name="uq_ingest_sources_identity_format"),
)

hits = _table(
    "hits",
    Column("at", DateTime(timezone=True), nullable=False),
    Column("client_ip", String(45), nullable=False),
    # The address as family + big-endian bytes (as listings.network), so a network's
    # hits are a range: an IPv6 /64 counts the hits of every address inside it.
    Column("family", SmallInteger),
    Column("network", LargeBinary(16)),
    Column("client_name", String(253)),
    Column("helo", String(255)),
    Column("mail_from", String(320)),  # as sent; "" for the null sender
    Column("sender_domain", String(253)),  # after BATV normalisation
    Column("rcpt_to", String(320)),  # the trap address: never shown publicly
    Column("trap_domain", String(253)),  # what public pages show instead
    Column("feed", String(32), nullable=False),
    Column("raw", Text, nullable=False),
    Column("action", String(16), nullable=False),  # policy.Action
    Column("counted", Boolean, nullable=False),  # evidence toward the listing threshold
    Column("reason", Text, nullable=False),
    Column("source_id", Integer, ForeignKey("ingest_sources.id")),
    # What tells the attempt apart (TrapHit.attempt: "pid:123", "queue:4ABC", ...): part
    # of the key that merges one attempt logged twice (rbl.store.attempts).
    Column("attempt", String(64)),
    sqlite_autoincrement=True,
)
Index("ix_hits_client_at", hits.c.client_ip, hits.c.at)
Index("ix_hits_at", hits.c.at)
Index("ix_hits_network_at", hits.c.family, hits.c.network, hits.c.at)

allowlist = _table(
    "allowlist",
    Column("key", String(260), nullable=False),  # 192.0.2.0/24, example.com, *.example.com
    Column("family", SmallInteger, nullable=False),  # 4, 6, 0 for domains
    Column("prefixlen", SmallInteger, nullable=False),
    Column("network", LargeBinary(16)),
    Column("reason", Text, nullable=False),
    Column("actor", String(100), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    UniqueConstraint("key", name="uq_allowlist_key"),
)

PENDING = "pending"
APPROVED = "approved"
DENIED = "denied"
CLOSED = "closed"  # another request for the same listing was approved

removal_requests = _table(
    "removal_requests",
    Column("token", String(40), nullable=False),  # the public, unguessable id of its status page
    Column("zone", String(253), nullable=False),
    Column("key", String(260), nullable=False),  # the listing it asks to remove
    Column("email", String(320)),
    Column("message", Text, nullable=False),
    Column("client_ip", String(45)),
    Column("state", String(16), nullable=False),  # PENDING, APPROVED, DENIED, CLOSED
    Column("self_service", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("decided_at", DateTime(timezone=True)),
    Column("decided_by", String(100)),
    Column("decision_message", Text),
    UniqueConstraint("token", name="uq_removal_requests_token"),
    Index("ix_removal_requests_state", "state", "created_at"),
    Index("ix_removal_requests_key", "zone", "key"),
)

QUARANTINED = "new"  # set aside, waiting for a fix
REFED = "refed"  # stored after all by ``rbl quarantine refeed``
DROPPED = "dropped"  # given up on by the operator (audited)

SOURCE_POLICY = "policy"  # the live policy feed, not a file

# Lines (and live-feed hits) that could not be parsed or stored: kept whole so
# that nothing read is ever lost, and fed again once the cause is fixed.
quarantine = _table(
    "quarantine",
    Column("at", DateTime(timezone=True), nullable=False),  # when it was set aside
    Column("format", String(16), nullable=False),  # the parser's name, or "policy"
    Column("feed", String(32)),  # --feed, when one was given
    Column("tz", String(64)),  # --tz: how a syslog time without a zone is read again
    Column("source", Text, nullable=False),  # file path as given, "<stdin>" or "policy"
    Column("source_id", Integer, ForeignKey("ingest_sources.id")),  # the file, when known
    Column("offset", Integer),  # byte offset of the line's start in its file
    Column("line_number", Integer),
    Column("line", LargeBinary, nullable=False),  # the bytes as read (NUL and non-UTF-8 too)
    Column("hit", Text),  # a live-feed hit as JSON: the request alone has no time
    Column("reason", Text, nullable=False),  # the parser's or the store's refusal
    Column("state", String(16), nullable=False),  # QUARANTINED, REFED, DROPPED
    Column("refed_at", DateTime(timezone=True)),
    Index("ix_quarantine_state", "state", "id"),
    Index("ix_quarantine_position", "source_id", "offset"),
    sqlite_autoincrement=True,
)
