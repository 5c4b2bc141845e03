"""``rbl list ...``: manual listings (add, remove, show, import) and the review of held ones.

The module is named after what the group manages, not ``list.py``: that name would
shadow the builtin wherever the module is imported by name.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, BinaryIO

import click

from rbl.cli.base import Context, Text, pass_context
from rbl.cli.keys import zone_and_key
from rbl.cli.lines import refuse_bad_lines, source_name
from rbl.cli.options import limit_option, reason_option, yes_option, zone_option
from rbl.cli.output import echo, safe
from rbl.config import check_template
from rbl.errors import ZoneError
from rbl.model.codes import parse_codes
from rbl.model.keys import IpKey, ListingKey

if TYPE_CHECKING:
    from rbl.store.importer import ImportRow
    from rbl.store.listings import Listing


@click.group(name="list")
def list_group() -> None:
    """Add, remove, show and import listings."""


@list_group.command("add")
@click.argument("key")
@zone_option("Zone to list in (default: the only one fitting).")
@click.option(
    "--code",
    "codes",
    multiple=True,
    help="Return code(s), e.g. 127.0.0.3, at most 100 (default: the zone's).",
)
@click.option(
    "--txt",
    default=None,
    type=Text(1000),
    help="Own TXT template ({key}, {url}); default the zone's.",
)
@reason_option()
@pass_context
def list_add(
    obj: Context, key: str, zone: str | None, codes: tuple[str, ...], txt: str | None, reason: str
) -> None:
    """List KEY (an IP, CIDR, domain or *.domain)."""
    from rbl.store.listings import add_listing, now_utc
    from rbl.store.traps import trap_filter

    zone_settings, parsed = zone_and_key(obj, zone, key)
    code_set = parse_codes(",".join(codes)) if codes else zone_settings.default_codes
    if txt is not None:
        check_template(txt, frozenset({"key", "url"}), "--txt")
    with obj.engine().begin() as conn:
        if txt is not None:  # answered to anyone who asks DNS: no trap may be in it
            trap_filter(conn).check(txt, "--txt")
        listing = add_listing(
            conn,
            zone_settings.name,
            parsed,
            code_set,
            txt=txt,
            reason=reason,
            actor=obj.actor,
            now=now_utc(),
        )
    echo(f"listed {listing.key} in {listing.zone} as {','.join(listing.codes)}")


@list_group.command("remove")
@click.argument("key")
@zone_option()
@reason_option()
@yes_option()
@pass_context
def list_remove(obj: Context, key: str, zone: str | None, reason: str, yes: bool) -> None:
    """Remove the listing of exactly KEY."""
    from rbl.store.listings import now_utc, remove_listing

    zone_settings, parsed = zone_and_key(obj, zone, key)
    if not yes:
        click.confirm(f"Remove the listing of {parsed.text} from {zone_settings.name}?", abort=True)
    with obj.engine().begin() as conn:
        listing = remove_listing(
            conn, zone_settings.name, parsed, reason=reason, actor=obj.actor, now=now_utc()
        )
    echo(f"removed {listing.key} from {listing.zone}")


@list_group.command("show")
@click.argument("key", required=False)
@zone_option()
@click.option("--all", "include_removed", is_flag=True, help="Include removed listings.")
@limit_option(50)
@click.option("--search", default=None, type=Text(300), help="Only keys containing this text.")
@click.option("--source", type=click.Choice(["manual", "trap"]), default=None)
@pass_context
def list_show(
    obj: Context,
    key: str | None,
    zone: str | None,
    include_removed: bool,
    limit: int,
    search: str | None,
    source: str | None,
) -> None:
    """Show KEY's listing (and wider listings covering it), or the latest listings."""
    from rbl.store.listings import covering_listings, get_listing, list_listings

    engine = obj.engine()
    if key is None:
        zone_name = obj.settings.zone(zone).name if zone else None
        with engine.connect() as conn:
            rows = list_listings(
                conn,
                zone_name,
                include_removed=include_removed,
                limit=limit,
                search=search,
                source=source,
            )
        for listing in rows:
            echo(
                f"{listing.zone}\t{listing.key}\t{','.join(listing.codes)}\t"
                f"{listing.state}\t{listing.updated_at:%Y-%m-%d %H:%M:%S}Z\t"
                f"{safe(listing.reason or '')}"
            )
        return
    zone_settings, parsed = zone_and_key(obj, zone, key)
    with engine.connect() as conn:
        exact = get_listing(conn, zone_settings.name, parsed)
        covering = covering_listings(conn, zone_settings.name, parsed)
    if exact is None and not covering:
        echo(f"{parsed.text} is not listed in {zone_settings.name}")
        sys.exit(1)
    shown = [exact] if exact is not None else []
    shown += [c for c in covering if exact is None or c.key != exact.key]
    for listing in shown:
        echo(f"key:      {listing.key}")
        echo(f"zone:     {listing.zone}")
        echo(f"state:    {listing.state}")
        echo(f"codes:    {','.join(listing.codes)}")
        echo(f"txt:      {safe(zone_settings.txt_for(_query_text(parsed), listing.txt))}")
        echo(f"source:   {listing.source}")
        echo(f"reason:   {safe(listing.reason or '')}")
        echo(f"listed:   {listing.created_at:%Y-%m-%d %H:%M:%S}Z")
        echo(f"changed:  {listing.updated_at:%Y-%m-%d %H:%M:%S}Z")
        if listing.expires_at is not None:
            echo(f"expires:  {listing.expires_at:%Y-%m-%d %H:%M:%S}Z")
        echo("")


@list_group.command("held")
@zone_option()
@limit_option(50)
@pass_context
def list_held(obj: Context, zone: str | None, limit: int) -> None:
    """Show listings held for review (big providers' hosts): none of them is in DNS."""
    from rbl.store.listings import list_listings
    from rbl.store.schema import HELD

    zone_name = obj.settings.zone(zone).name if zone else None
    with obj.engine().connect() as conn:
        rows = list_listings(conn, zone_name, state=HELD, limit=limit)
    if not rows:
        echo("no listings are held for review")
        return
    for listing in rows:
        seen = f"{listing.first_seen:%Y-%m-%d %H:%M}Z..{listing.last_seen:%Y-%m-%d %H:%M}Z"
        expires = f"{listing.expires_at:%Y-%m-%d %H:%M:%S}Z" if listing.expires_at else "never"
        echo(
            f"{listing.zone}\t{listing.key}\t{listing.hit_count} hit(s)\t{seen}\t"
            f"lapses {expires}\t{listing.reason or ''}"
        )


@list_group.command("release")
@click.argument("key")
@zone_option()
@reason_option()
@yes_option()
@pass_context
def list_release(obj: Context, key: str, zone: str | None, reason: str, yes: bool) -> None:
    """List the held KEY for real: it goes to DNS."""
    listing = _settle(obj, key, zone, reason, release=True, confirm=not yes)
    echo(f"released {listing.key}: listed in {listing.zone} as {','.join(listing.codes)}")


@list_group.command("reject")
@click.argument("key")
@zone_option()
@reason_option()
@pass_context
def list_reject(obj: Context, key: str, zone: str | None, reason: str) -> None:
    """Drop the hold on KEY: it is not listed, and only newer evidence can hold it again."""
    listing = _settle(obj, key, zone, reason, release=False, confirm=False)
    echo(f"rejected the hold on {listing.key} in {listing.zone}: not listed")


def _settle(
    obj: Context, key: str, zone: str | None, reason: str, *, release: bool, confirm: bool
) -> Listing:
    """Release or reject the hold on ``key``, audited as the operator."""
    from rbl.store.listings import now_utc, reject_hold, release_hold

    zone_settings, parsed = zone_and_key(obj, zone, key)
    if confirm:
        click.confirm(
            f"Publish the held listing of {parsed.text} in {zone_settings.name}?", abort=True
        )
    decide = release_hold if release else reject_hold
    with obj.engine().begin() as conn:
        return decide(
            conn, zone_settings.name, parsed, reason=reason, actor=obj.actor, now=now_utc()
        )


def _query_text(key: ListingKey) -> str:
    return key.text.split("/", 1)[0] if isinstance(key, IpKey) else key.text


@list_group.command("import")
@click.argument("source", type=click.File("rb"))
@zone_option()
@click.option("--code", "codes", multiple=True, help="Codes for lines that name none.")
@reason_option()
@pass_context
def list_import(
    obj: Context, source: BinaryIO, zone: str | None, codes: tuple[str, ...], reason: str
) -> None:
    """Import listings from SOURCE ('-' for stdin), one per line: KEY [:CODES[:TXT]].

    The whole file is checked first; if any line is bad nothing is stored and
    every bad line is reported with its number.
    """
    from rbl.cli.importfile import parse_import
    from rbl.store.importer import import_rows
    from rbl.store.listings import MANUAL, now_utc
    from rbl.store.traps import trap_filter

    zone_settings = obj.pick_zone(zone) if zone or len(obj.settings.zones) == 1 else None
    if zone_settings is None:
        raise ZoneError("give --zone: the configuration has more than one zone")
    default = parse_codes(",".join(codes)) if codes else zone_settings.default_codes
    name = source_name(source)
    rows: list[ImportRow] = []
    errors = []
    for number, row in parse_import(source, zone_settings, default):
        if isinstance(row, str):
            errors.append(f"{name}:{number}: {row}")
        else:
            rows.append(row)
    refuse_bad_lines(errors)
    with obj.engine().begin() as conn:
        traps = trap_filter(conn)
        for row in [row for row in rows if row[5] is not None]:
            traps.check(str(row[5]), f"{name}: the TXT of {row[0]}")
        added, changed = import_rows(
            conn,
            zone_settings.name,
            rows,
            reason=reason,
            actor=obj.actor,
            now=now_utc(),
            source=MANUAL,
        )
    echo(
        f"imported into {zone_settings.name}: {added} added, {changed} changed, "
        f"{len(rows) - added - changed} unchanged"
    )
