"""change_log_pruned: how far the change log has been pruned

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23 10:00:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "change_log_pruned",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("through", sa.Integer(), nullable=False),
        sa.Column("pruned_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("change_log_pruned")
