"""listings.codes and change_log.codes wide enough for 100 codes

A listing may carry up to 100 return codes (rbl.model.codes.MAX_CODES, BIND's
max-records-per-type); 100 of "127.255.254.255" and their commas are 1599
characters. VARCHAR(200) held about 16: SQLite never enforced it, PostgreSQL
refused the row.
"""

import importlib

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"

# The SQLite copy of change_log keeps AUTOINCREMENT and the id sequence (see 0003).
_op_width = importlib.import_module("rbl.store.migrations.versions.0003_change_log_op_width")


def _change_log(codes_width: int) -> sa.Table:
    return sa.Table(
        "change_log",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("zone", sa.String(length=253), nullable=False),
        sa.Column("key", sa.String(length=260), nullable=False),
        sa.Column("op", sa.String(length=16), nullable=False),
        sa.Column("codes", sa.String(length=codes_width), nullable=True),
        sa.Column("txt", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sqlite_autoincrement=True,
    )


def _widths(old: int, new: int) -> None:
    with op.batch_alter_table("listings") as batch:
        batch.alter_column(
            "codes",
            existing_type=sa.String(length=old),
            type_=sa.String(length=new),
            existing_nullable=False,
        )
    sequence = _op_width._sqlite_sequence()
    sqlite = op.get_bind().dialect.name == "sqlite"
    copy_from = _change_log(old) if sqlite else None
    with op.batch_alter_table("change_log", copy_from=copy_from) as batch:
        batch.alter_column(
            "codes",
            existing_type=sa.String(length=old),
            type_=sa.String(length=new),
            existing_nullable=True,
        )
    _op_width._restore_sqlite_sequence(sequence)


def upgrade() -> None:
    _widths(200, 1600)


def downgrade() -> None:
    _widths(1600, 200)
