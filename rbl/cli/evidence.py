"""``rbl show``, ``rbl expire`` and ``rbl allowlist ...``."""

from __future__ import annotations

import sys

import click

from rbl.cli.base import LIMIT, REASON, Context, _key_for, main, pass_context
from rbl.cli.output import echo, safe
from rbl.config import ZoneSettings
from rbl.model.keys import IpKey, ListingKey, ZoneKind

# -- evidence, expiry, allowlist --------------------------------------------------------


@main.command()
@click.argument("key")
@click.option("--zone", default=None)
@click.option("--limit", default=20, show_default=True, type=LIMIT, help="Evidence rows to show.")
@pass_context
def show(obj: Context, key: str, zone: str | None, limit: int) -> None:
    """Show KEY's listing with its evidence (operator view: includes trap addresses).

    An address inside a listed network (an IPv6 /64, an escalated /48 or /24) shows
    that listing, the network's evidence, and the listings inside an escalated one.
    """
    from rbl.store.listings import Listing, covering_listings, get_listing, listings_inside
    from rbl.store.queries import evidence_for
    from rbl.store.schema import ACTIVE

    zone_settings = obj.pick_zone(zone, key)
    parsed = _key_for(zone_settings, key)
    with obj.engine().connect() as conn:
        exact = get_listing(conn, zone_settings.name, parsed)
        covering = covering_listings(conn, zone_settings.name, parsed)
        if exact is not None and (exact.state == ACTIVE or not covering):
            listing: Listing | None = exact
        else:
            listing = covering[0] if covering else None
        through = listing is not None and listing.key != parsed.text
        evidence_key = _key_for(zone_settings, listing.key) if listing and through else parsed
        total, rows = evidence_for(conn, evidence_key, limit)
        inside = []
        if listing is not None and isinstance(evidence_key, IpKey) and "/" in listing.key:
            inside = listings_inside(conn, zone_settings.name, _ip(zone_settings, listing.key))
    if listing is None:
        echo(f"{parsed.text}: no listing in {zone_settings.name}")
    else:
        if through:
            echo(f"{parsed.text} is listed as part of {listing.key}")
        echo(
            f"{listing.key} in {listing.zone}: {listing.state}, codes "
            f"{','.join(listing.codes)}, source {listing.source}"
        )
        for label, moment in (
            ("first seen", listing.first_seen),
            ("last seen", listing.last_seen),
            ("expires", listing.expires_at),
        ):
            if moment is not None:
                echo(f"  {label}: {moment:%Y-%m-%d %H:%M:%S}Z")
        echo(f"  hits: {listing.hit_count}, times listed: {listing.times_listed}")
        if listing.reason:
            echo(f"  reason: {safe(listing.reason)}")
        if inside:
            echo(f"  listed inside it: {len(inside)}")
            for each in inside[:limit]:
                until = f"{each.expires_at:%Y-%m-%d %H:%M:%S}Z" if each.expires_at else "removed"
                echo(f"    {each.key} ({each.source}, until {until})")
    shown = f" inside {evidence_key.text}" if evidence_key is not parsed else ""
    echo(f"evidence{shown}: {total} hit(s){'' if total <= limit else f', newest {limit}'}")
    for hit in rows:
        echo(
            f"  {hit.at:%Y-%m-%d %H:%M:%S}Z {hit.client_ip} feed={hit.feed} "
            f"helo={safe(hit.helo or '-')} "
            f"from=<{safe(hit.mail_from) if hit.mail_from is not None else '?'}> "
            f"to=<{safe(hit.rcpt_to or '?')}> {hit.action}: {safe(hit.reason)}"
        )
    if listing is None and total == 0:
        sys.exit(1)


def _ip(zone: ZoneSettings, text: str) -> IpKey:
    key = _key_for(zone, text)
    assert isinstance(key, IpKey)
    return key


@main.command()
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


@main.group(name="allowlist")
def allowlist_group() -> None:
    """Addresses, networks and domains that are never listed automatically."""


@allowlist_group.command("add")
@click.argument("key")
@click.option("--reason", required=True, type=REASON)
@pass_context
def allowlist_add(obj: Context, key: str, reason: str) -> None:
    from rbl.store.allowlist import add_allowed, parse_allow_key
    from rbl.store.listings import now_utc

    parsed = parse_allow_key(key)
    with obj.engine().begin() as conn:
        added = add_allowed(
            conn,
            parsed,
            reason=reason,
            actor=obj.actor,
            now=now_utc(),
            zones=_zones_for(obj, parsed),
        )
    echo(f"{parsed.text} {'allowlisted' if added else 'was already allowlisted'}")


@allowlist_group.command("remove")
@click.argument("key")
@click.option("--reason", required=True, type=REASON)
@pass_context
def allowlist_remove(obj: Context, key: str, reason: str) -> None:
    from rbl.store.allowlist import parse_allow_key, remove_allowed
    from rbl.store.listings import now_utc

    parsed = parse_allow_key(key)
    with obj.engine().begin() as conn:
        remove_allowed(
            conn,
            parsed,
            reason=reason,
            actor=obj.actor,
            now=now_utc(),
            zones=_zones_for(obj, parsed),
        )
    echo(f"{parsed.text} removed from the allowlist")


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
