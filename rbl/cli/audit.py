"""``rbl audit``: the audit log, newest first: who changed what, when and why.

Every change to the list writes a row in the same transaction as the change
(rbl.store); this only reads them. Actors, reasons and details are people's
text, printed escaped.
"""

from __future__ import annotations

import click

from rbl.cli.base import Context, Text, pass_context
from rbl.cli.options import limit_option
from rbl.cli.output import echo, safe


@click.command()
@click.option("--key", default=None, type=Text(300), help="Only entries about this key.")
@click.option("--actor", "who", default=None, type=Text(200), help="Only entries by this actor.")
@click.option(
    "--action", default=None, type=Text(50), help="Only this action (list, unlist, allow, ...)."
)
@limit_option(50)
@pass_context
def audit(obj: Context, key: str | None, who: str | None, action: str | None, limit: int) -> None:
    """Show the audit log, newest first: who changed what, when and why."""
    from rbl.store.queries import audit_entries

    with obj.engine().connect() as conn:
        entries = audit_entries(conn, key=key, actor=who, action=action, limit=limit)
    for entry in entries:
        where = safe(f"{entry.zone or '-'} {entry.key or '-'}")
        detail = f" [{safe(entry.detail)}]" if entry.detail else ""
        echo(
            f"{entry.at:%Y-%m-%d %H:%M:%S}Z\t{safe(entry.actor)}\t{safe(entry.action)}\t{where}\t"
            f"{safe(entry.reason or '')}{detail}"
        )
