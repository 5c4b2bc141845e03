"""hits.attempt: what tells one attempt from another in the same second

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-03 10:10:00

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Nullable, no default: hits stored before it have no attempt, which merges as before.
    with op.batch_alter_table("hits") as batch:
        batch.add_column(sa.Column("attempt", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("hits") as batch:
        batch.drop_column("attempt")
