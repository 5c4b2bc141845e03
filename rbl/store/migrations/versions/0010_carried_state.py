"""ingest_sources.carried: what the parsers held at the committed position

A message in flight when a run stopped (its client line read, its delivery not
yet) joined nothing in the next run, which resumed after the client line.
"""

import importlib

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"

# SQLite rebuilds the table to drop a column: foreign keys off meanwhile (see 0006).
_per_format = importlib.import_module("rbl.store.migrations.versions.0006_positions_per_format")


def upgrade() -> None:
    # Nullable: a row written before it held nothing that is known now.
    with op.batch_alter_table("ingest_sources") as batch:
        batch.add_column(sa.Column("carried", sa.Text()))


def downgrade() -> None:
    with _per_format._rebuilding(), op.batch_alter_table("ingest_sources") as batch:
        batch.drop_column("carried")
