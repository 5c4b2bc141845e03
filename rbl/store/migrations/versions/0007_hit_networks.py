"""hits.family and hits.network: a network's hits found as a range (IPv6 /64 listings)"""

import ipaddress

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"

_BATCH = 10_000


def upgrade() -> None:
    op.add_column("hits", sa.Column("family", sa.SmallInteger()))
    op.add_column("hits", sa.Column("network", sa.LargeBinary(16)))
    op.create_index("ix_hits_network_at", "hits", ["family", "network", "at"])
    # Existing hits: the same bytes the store writes (rbl.store.hitrows), in id order.
    conn = op.get_bind()
    hits = sa.table(
        "hits",
        sa.column("id", sa.Integer()),
        sa.column("client_ip", sa.String()),
        sa.column("family", sa.SmallInteger()),
        sa.column("network", sa.LargeBinary()),
    )
    last = 0
    while True:
        rows = conn.execute(
            sa.select(hits.c.id, hits.c.client_ip)
            .where(hits.c.id > last, hits.c.network.is_(None))
            .order_by(hits.c.id)
            .limit(_BATCH)
        ).all()
        if not rows:
            break
        values = []
        for row_id, text in rows:
            try:
                address = ipaddress.ip_address(text)
            except ValueError:
                continue  # no address: found by its text alone, as before
            values.append({"b_id": row_id, "family": address.version, "network": address.packed})
        if values:
            conn.execute(
                hits.update()
                .where(hits.c.id == sa.bindparam("b_id"))
                .values(family=sa.bindparam("family"), network=sa.bindparam("network")),
                values,
            )
        last = rows[-1][0]


def downgrade() -> None:
    op.drop_index("ix_hits_network_at", table_name="hits")
    op.drop_column("hits", "network")
    op.drop_column("hits", "family")
