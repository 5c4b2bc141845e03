"""initial schema"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None


def upgrade() -> None:
    op.create_table(
        "allowlist",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=260), nullable=False),
        sa.Column("family", sa.SmallInteger(), nullable=False),
        sa.Column("prefixlen", sa.SmallInteger(), nullable=False),
        sa.Column("network", sa.LargeBinary(length=16), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key", name="uq_allowlist_key"),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("zone", sa.String(length=253), nullable=True),
        sa.Column("key", sa.String(length=260), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "change_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("zone", sa.String(length=253), nullable=False),
        sa.Column("key", sa.String(length=260), nullable=False),
        sa.Column("op", sa.String(length=8), nullable=False),
        sa.Column("codes", sa.String(length=200), nullable=True),
        sa.Column("txt", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    op.create_table(
        "ingest_sources",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.Text(), nullable=False),
        sa.Column("identity", sa.String(length=200), nullable=False),
        sa.Column("format", sa.String(length=16), nullable=False),
        sa.Column("offset", sa.Integer(), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("malformed", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("identity", name="uq_ingest_sources_identity"),
    )
    op.create_table(
        "listings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("zone", sa.String(length=253), nullable=False),
        sa.Column("key", sa.String(length=260), nullable=False),
        sa.Column("family", sa.SmallInteger(), nullable=False),
        sa.Column("prefixlen", sa.SmallInteger(), nullable=False),
        sa.Column("network", sa.LargeBinary(length=16), nullable=True),
        sa.Column("codes", sa.String(length=200), nullable=False),
        sa.Column("txt", sa.Text(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("first_seen", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True),
        sa.Column("hit_count", sa.Integer(), nullable=False),
        sa.Column("times_listed", sa.Integer(), nullable=False),
        sa.Column("delisted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("zone", "key", name="uq_listings_zone_key"),
    )
    with op.batch_alter_table("listings", schema=None) as batch_op:
        batch_op.create_index("ix_listings_expiry", ["state", "expires_at"], unique=False)
        batch_op.create_index(
            "ix_listings_load",
            ["state", "zone", "family", "prefixlen", "network", "codes", "txt"],
            unique=False,
        )

    op.create_table(
        "traps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("value", sa.String(length=320), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("kind", "value", name="uq_traps_kind_value"),
    )
    op.create_table(
        "hits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("client_ip", sa.String(length=45), nullable=False),
        sa.Column("client_name", sa.String(length=253), nullable=True),
        sa.Column("helo", sa.String(length=255), nullable=True),
        sa.Column("mail_from", sa.String(length=320), nullable=True),
        sa.Column("sender_domain", sa.String(length=253), nullable=True),
        sa.Column("rcpt_to", sa.String(length=320), nullable=True),
        sa.Column("trap_domain", sa.String(length=253), nullable=True),
        sa.Column("feed", sa.String(length=32), nullable=False),
        sa.Column("raw", sa.Text(), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("counted", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["source_id"],
            ["ingest_sources.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sqlite_autoincrement=True,
    )
    with op.batch_alter_table("hits", schema=None) as batch_op:
        batch_op.create_index("ix_hits_at", ["at"], unique=False)
        batch_op.create_index("ix_hits_client_at", ["client_ip", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("hits", schema=None) as batch_op:
        batch_op.drop_index("ix_hits_client_at")
        batch_op.drop_index("ix_hits_at")

    op.drop_table("hits")
    op.drop_table("traps")
    with op.batch_alter_table("listings", schema=None) as batch_op:
        batch_op.drop_index("ix_listings_load")
        batch_op.drop_index("ix_listings_expiry")

    op.drop_table("listings")
    op.drop_table("ingest_sources")
    op.drop_table("change_log")
    op.drop_table("audit_log")
    op.drop_table("allowlist")
