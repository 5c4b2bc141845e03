"""removal requests"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"


def upgrade() -> None:
    op.create_table(
        "removal_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=40), nullable=False),
        sa.Column("zone", sa.String(length=253), nullable=False),
        sa.Column("key", sa.String(length=260), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("client_ip", sa.String(length=45), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("self_service", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=100), nullable=True),
        sa.Column("decision_message", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token", name="uq_removal_requests_token"),
    )
    with op.batch_alter_table("removal_requests", schema=None) as batch_op:
        batch_op.create_index("ix_removal_requests_key", ["zone", "key"], unique=False)
        batch_op.create_index("ix_removal_requests_state", ["state", "created_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("removal_requests", schema=None) as batch_op:
        batch_op.drop_index("ix_removal_requests_state")
        batch_op.drop_index("ix_removal_requests_key")

    op.drop_table("removal_requests")
