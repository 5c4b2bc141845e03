"""``rbl delist``: end a key's listing now, audited with the operator's reason.

Only evidence newer than the delisting can list the key again. A key listed only
through a wider listing (its network) is refused with the way out: delist the wider
one, or allowlist the key.
"""

from __future__ import annotations

import click

from rbl.cli.base import Context, pass_context
from rbl.cli.keys import zone_and_key
from rbl.cli.options import reason_option, yes_option, zone_option
from rbl.cli.output import echo
from rbl.errors import NotListedError, ZoneError


@click.command()
@click.argument("key")
@zone_option()
@reason_option("Why, for the audit log (required).")
@yes_option()
@pass_context
def delist(obj: Context, key: str, zone: str | None, reason: str, yes: bool) -> None:
    """Delist KEY now; only evidence newer than this can list it again."""
    from rbl.store.listings import covering_listings, now_utc, remove_listing

    zone_settings, parsed = zone_and_key(obj, zone, key)
    with obj.engine().begin() as conn:
        covering = covering_listings(conn, zone_settings.name, parsed)
        if not covering:
            raise NotListedError(f"{parsed.text} is not listed in {zone_settings.name}")
        target = covering[0]
        if target.key != parsed.text:
            raise ZoneError(
                f"{parsed.text} is listed through {target.key}; delist that, or allowlist "
                f"{parsed.text} (rbl allowlist add)"
            )
        if not yes:
            click.confirm(f"Delist {target.key} from {zone_settings.name}?", abort=True)
        remove_listing(
            conn, zone_settings.name, target.key, reason=reason, actor=obj.actor, now=now_utc()
        )
    echo(f"delisted {target.key} from {zone_settings.name}")
