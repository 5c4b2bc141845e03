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
    click.echo(f"database ready: {obj.settings.database.url}")
