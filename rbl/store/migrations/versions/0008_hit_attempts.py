"""hits.attempt: what tells one attempt from another in the same second"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"


def upgrade() -> None:
    # Nullable, no default: hits stored before it have no attempt, which merges as before.
    with op.batch_alter_table("hits") as batch:
        batch.add_column(sa.Column("attempt", sa.String(64)))


def downgrade() -> None:
    with op.batch_alter_table("hits") as batch:
        batch.drop_column("attempt")
