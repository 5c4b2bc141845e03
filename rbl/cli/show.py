"""``rbl show``: a key's listing and the evidence behind it, as the operator sees them.

The operator view: each hit with the trap address it went to
(``rbl.store.queries.evidence_for``), which the public page never shows
(``rbl.store.public``). Every field a sender wrote is printed escaped.
"""

from __future__ import annotations

import sys

import click

from rbl.cli.base import Context, pass_context
from rbl.cli.keys import key_for, zone_and_key
from rbl.cli.options import limit_option, zone_option
from rbl.cli.output import echo, safe
from rbl.config import ZoneSettings
from rbl.model.keys import IpKey


@click.command()
@click.argument("key")
@zone_option()
@limit_option(20, "Evidence rows to show.")
@pass_context
def show(obj: Context, key: str, zone: str | None, limit: int) -> None:
    """Show KEY's listing with its evidence (operator view: includes trap addresses).

    An address inside a listed network (an IPv6 /64, an escalated /48 or /24) shows
    that listing, the network's evidence, and the listings inside an escalated one.
    """
    from rbl.store.listings import Listing, covering_listings, get_listing, listings_inside
    from rbl.store.queries import evidence_for
    from rbl.store.schema import ACTIVE

    zone_settings, parsed = zone_and_key(obj, zone, key)
    with obj.engine().connect() as conn:
        exact = get_listing(conn, zone_settings.name, parsed)
        covering = covering_listings(conn, zone_settings.name, parsed)
        if exact is not None and (exact.state == ACTIVE or not covering):
            listing: Listing | None = exact
        else:
            listing = covering[0] if covering else None
        through = listing is not None and listing.key != parsed.text
        evidence_key = key_for(zone_settings, listing.key) if listing and through else parsed
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
    key = key_for(zone, text)
    assert isinstance(key, IpKey)
    return key
