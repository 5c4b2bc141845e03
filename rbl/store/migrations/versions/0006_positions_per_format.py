"""positions_per_format: an ingest position per (file, format), and where its format began

A file's position was unique by its identity alone, so a file read once with
the wrong format was skipped by every later run with the right one, and one
syslog could feed only one parser. Existing rows keep their position under
the format they were read with (the column was always there). Their lines
were read before rbl looked which belong to the format: ``recognised_at`` 0
says so, and no file read before this is reported as unrecognised.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"


@contextmanager
def _rebuilding() -> Iterator[None]:
    """SQLite's batch mode copies the table and drops the old one; with foreign keys
    on, the drop deletes it row by row and fails for the hits and quarantined lines
    that point at them (deferring does not help: the copy's rows do not undo it).
    So foreign keys are off meanwhile, as SQLite's own recipe says. The pragma is
    ignored inside a transaction, and Python's sqlite3 has one open after any data
    change of an earlier step: that is committed first (SQLite's DDL here never was
    one transaction anyway), and after the copy the references are checked."""
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        yield
        return
    raw: Any = bind.connection.dbapi_connection
    if raw.in_transaction:
        raw.commit()
    raw.execute("PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        if raw.in_transaction:
            raw.commit()
        raw.execute("PRAGMA foreign_keys = ON")
    broken = raw.execute("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise RuntimeError(f"ingest_sources rebuilt with dangling references: {broken[:5]}")


def upgrade() -> None:
    with _rebuilding(), op.batch_alter_table("ingest_sources") as batch:
        batch.drop_constraint("uq_ingest_sources_identity", type_="unique")
        batch.add_column(sa.Column("recognised_at", sa.Integer()))
        batch.add_column(
            sa.Column("unrecognised", sa.Integer(), nullable=False, server_default="0")
        )
        batch.create_unique_constraint("uq_ingest_sources_identity_format", ["identity", "format"])
    op.execute("UPDATE ingest_sources SET recognised_at = 0")


def downgrade() -> None:
    """Refused while a file has positions for two formats: which one to keep is not
    something a migration should guess."""
    shared = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT COUNT(*) FROM (SELECT identity FROM ingest_sources"
                " GROUP BY identity HAVING COUNT(*) > 1) AS shared"
            )
        )
        .scalar()
    )
    if shared:
        raise RuntimeError(
            f"{shared} file(s) have ingest positions for more than one format; delete "
            "all but one row per identity from ingest_sources before downgrading"
        )
    with _rebuilding(), op.batch_alter_table("ingest_sources") as batch:
        batch.drop_constraint("uq_ingest_sources_identity_format", type_="unique")
        batch.drop_column("unrecognised")
        batch.drop_column("recognised_at")
        batch.create_unique_constraint("uq_ingest_sources_identity", ["identity"])
