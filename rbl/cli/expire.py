"""``rbl expire``: end the listings whose evidence has stopped, now.

``rbl serve`` runs the same sweep (``rbl.store.evidence.expire_listings``) every
``[listing] expiry_interval``; this one is for when no server is running.
"""

from __future__ import annotations

import click

from rbl.cli.base import Context, pass_context
from rbl.cli.output import echo


@click.command()
@pass_context
def expire(obj: Context) -> None:
    """End listings whose evidence has stopped (``rbl serve`` does this on its own too)."""
    from rbl.store.evidence import expire_listings
    from rbl.store.listings import now_utc

    with obj.engine().begin() as conn:
        ended = expire_listings(conn, now=now_utc())
    echo(f"expired {len(ended)} listing(s)")
    for item in ended:
        echo(f"  {item}")
