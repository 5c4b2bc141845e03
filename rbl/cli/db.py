"""``rbl db ...``: database maintenance."""

from __future__ import annotations

import click

from rbl.cli.base import Context, main, pass_context


@main.group()
def db() -> None:
    """Database maintenance."""


@db.command("init")
@pass_context
def db_init(obj: Context) -> None:
    """Create the database tables (idempotent)."""
    obj.engine()
    from rbl.store.reader import hide_password

    click.echo(f"database ready: {hide_password(obj.settings.database.url)}")
