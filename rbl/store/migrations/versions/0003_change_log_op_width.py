"""change_log.op wide enough for 'unexclude'

SQLite never enforced VARCHAR(8); PostgreSQL refused the 9-letter op that
removing an allowlist entry writes.
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"


def _change_log(op_width: int) -> sa.Table:
    """The table as it is, so SQLite's copy keeps AUTOINCREMENT (reflection loses it)."""
    return sa.Table(
        "change_log",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("zone", sa.String(length=253), nullable=False),
        sa.Column("key", sa.String(length=260), nullable=False),
        sa.Column("op", sa.String(length=op_width), nullable=False),
        sa.Column("codes", sa.String(length=200), nullable=True),
        sa.Column("txt", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sqlite_autoincrement=True,
    )


def _batch(op_width: int):  # type: ignore[no-untyped-def]
    if op.get_bind().dialect.name == "sqlite":
        return op.batch_alter_table("change_log", copy_from=_change_log(op_width))
    return op.batch_alter_table("change_log")


def upgrade() -> None:
    _op_width(8, 16)


def _op_width(old: int, new: int) -> None:
    """Change ``change_log.op`` from VARCHAR(old) to VARCHAR(new), keeping SQLite's ids."""
    sequence = _sqlite_sequence()
    with _batch(old) as batch_op:
        batch_op.alter_column(
            "op",
            existing_type=sa.String(length=old),
            type_=sa.String(length=new),
            existing_nullable=False,
        )
    _restore_sqlite_sequence(sequence)


def _sqlite_sequence() -> int | None:
    """SQLite's last handed-out id: the copy would restart after MAX(id), reusing pruned ids."""
    if op.get_bind().dialect.name != "sqlite":
        return None
    return (
        op.get_bind()
        .execute(sa.text("SELECT seq FROM sqlite_sequence WHERE name = 'change_log'"))
        .scalar()
    )


def _restore_sqlite_sequence(sequence: int | None) -> None:
    if sequence is None:
        return
    op.get_bind().execute(
        sa.text("UPDATE sqlite_sequence SET seq = MAX(seq, :seq) WHERE name = 'change_log'"),
        {"seq": sequence},
    )


def downgrade() -> None:
    _op_width(16, 8)
