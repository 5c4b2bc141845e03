"""KEY arguments: the zone a key typed on the command line is in, and the key parsed for it.

A key that does not fit its zone is an error naming the zone and the kind of keys it
lists, so the operator sees why ``example.org`` cannot go into an IP zone.
"""

from __future__ import annotations

from rbl.cli.base import Context
from rbl.config import ZoneSettings
from rbl.errors import KeyFormatError
from rbl.model.keys import ListingKey, parse_key


def key_for(zone: ZoneSettings, text: str) -> ListingKey:
    """``text`` parsed as a key of ``zone``."""
    try:
        return parse_key(zone.kind, text)
    except KeyFormatError as exc:
        raise KeyFormatError(f"{exc} (zone {zone.name} lists {zone.kind.value} keys)") from exc


def zone_and_key(obj: Context, zone_name: str | None, text: str) -> tuple[ZoneSettings, ListingKey]:
    """The zone ``--zone`` names (or the only one that can hold ``text``) and the key in it."""
    zone = obj.pick_zone(zone_name, text)
    return zone, key_for(zone, text)
