"""``rbl db ...``: database maintenance."""

from __future__ import annotations

import click

from rbl.cli.base import Context, pass_context
from rbl.cli.output import echo


@click.group()
def db() -> None:
    """Database maintenance."""


@db.command("init")
@pass_context
def db_init(obj: Context) -> None:
    """Create the database tables (idempotent)."""
    obj.engine()
    from rbl.store.reader import hide_password

    echo(f"database ready: {hide_password(obj.settings.database.url)}")


@db.command("prune")
@click.option(
    "--keep",
    "keep",
    default=None,
    help="Keep change-log rows younger than this (e.g. 7d, 12h); default [sync] keep_changes.",
)
@pass_context
def db_prune(obj: Context, keep: str | None) -> None:
    """Delete old change-log rows (each zone's newest stays); rbl serve does this hourly.

    DNS nodes that were behind the deleted rows load a fresh snapshot by themselves.
    """
    from datetime import UTC, datetime, timedelta

    from rbl.config import parse_duration
    from rbl.errors import ConfigError
    from rbl.store.changelog import prune_changes

    try:
        seconds = (
            parse_duration(keep, "--keep") if keep is not None else obj.settings.sync.keep_changes
        )
    except ConfigError as exc:
        raise click.BadParameter(str(exc), param_hint="--keep") from None
    if not seconds and keep is None:
        echo("[sync] keep_changes is 0: nothing is pruned")
        return
    deleted = prune_changes(obj.engine(), datetime.now(UTC) - timedelta(seconds=seconds))
    echo(f"pruned {deleted} change-log row(s) older than {timedelta(seconds=seconds)}")
