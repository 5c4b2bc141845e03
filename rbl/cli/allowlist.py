"""``rbl allowlist ...``: addresses, networks and domains never listed automatically.

An entry applies to every zone of its kind (IP or domain); adding or removing one is
audited with the operator's reason.
"""

from __future__ import annotations

import click

from rbl.cli.base import Context, pass_context
from rbl.cli.options import F, reason_option
from rbl.cli.output import echo
from rbl.model.keys import IpKey, ListingKey, ZoneKind


@click.group(name="allowlist")
def allowlist_group() -> None:
    """Addresses, networks and domains that are never listed automatically."""


def _key_and_reason(command: F) -> F:
    """KEY and ``--reason``: what adding an entry and removing one both take."""
    return click.argument("key")(reason_option(help=None)(command))


@allowlist_group.command("add")
@_key_and_reason
@pass_context
def allowlist_add(obj: Context, key: str, reason: str) -> None:
    _change(obj, key, reason, adding=True)


@allowlist_group.command("remove")
@_key_and_reason
@pass_context
def allowlist_remove(obj: Context, key: str, reason: str) -> None:
    _change(obj, key, reason, adding=False)


def _change(obj: Context, key: str, reason: str, *, adding: bool) -> None:
    """Allowlist ``key`` or take it off, in every zone of its kind, audited as the operator."""
    from rbl.store.allowlist import add_allowed, parse_allow_key, remove_allowed
    from rbl.store.listings import now_utc

    parsed = parse_allow_key(key)
    change = add_allowed if adding else remove_allowed
    with obj.engine().begin() as conn:
        added = change(
            conn,
            parsed,
            reason=reason,
            actor=obj.actor,
            now=now_utc(),
            zones=_zones_for(obj, parsed),
        )
    if not adding:
        echo(f"{parsed.text} removed from the allowlist")
    else:
        echo(f"{parsed.text} {'allowlisted' if added else 'was already allowlisted'}")


@allowlist_group.command("list")
@pass_context
def allowlist_list(obj: Context) -> None:
    from rbl.store.allowlist import allowed_keys

    with obj.engine().connect() as conn:
        for key in allowed_keys(conn):
            echo(key.text)


def _zones_for(obj: Context, key: ListingKey) -> list[str]:
    kind = ZoneKind.IP if isinstance(key, IpKey) else ZoneKind.DOMAIN
    return [zone.name for zone in obj.settings.zones if zone.kind is kind]
