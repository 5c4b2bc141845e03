"""change_log_pruned: how far the change log has been pruned"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"


def upgrade() -> None:
    op.create_table(
        "change_log_pruned",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("through", sa.Integer(), nullable=False),
        sa.Column("pruned_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("change_log_pruned")
