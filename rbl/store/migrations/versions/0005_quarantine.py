"""quarantine: lines and live-feed hits that could not be parsed or stored"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"


def upgrade() -> None:
    op.create_table(
        "quarantine",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("feed", sa.String(32)),
        sa.Column("tz", sa.String(64)),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("source_id", sa.Integer(), sa.ForeignKey("ingest_sources.id")),
        sa.Column("offset", sa.Integer()),
        sa.Column("line_number", sa.Integer()),
        sa.Column("line", sa.LargeBinary(), nullable=False),
        sa.Column("hit", sa.Text()),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("refed_at", sa.DateTime(timezone=True)),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_quarantine_state", "quarantine", ["state", "id"])
    op.create_index("ix_quarantine_position", "quarantine", ["source_id", "offset"])


def downgrade() -> None:
    op.drop_index("ix_quarantine_position", table_name="quarantine")
    op.drop_index("ix_quarantine_state", table_name="quarantine")
    op.drop_table("quarantine")
