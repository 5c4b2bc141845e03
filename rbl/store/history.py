"""What the policy needs to know of a batch's listings, read in a few queries.

``record_hits`` (rbl.store.evidence) decides hit by hit in time order, so it
reads everything first: each listing's row as a ``ListingState`` (which the
batch then changes as the policy decides, and which gives the policy its
``History``), the times of the counted hits within the window, and the
listings inside each network that may escalate. Reads only.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, or_, select

from rbl.model.keys import MAX_PREFIXLEN, IpKey, ListingKey
from rbl.model.traphit import TrapHit
from rbl.policy.listing import Action, Decision, History
from rbl.store.locate import in_network
from rbl.store.schema import ACTIVE, HELD, SOURCE_MANUAL, SOURCE_TRAP, hits, listings
from rbl.store.timestamps import utc

_CHUNK = 500  # keys per IN list
_RANGES = 100  # network ranges per query


class ListingState:
    """A listing row as the batch changes it (mirrors the columns it touches)."""

    __slots__ = (
        "delisted_at",
        "dirty",
        "expires_at",
        "first_seen",
        "hit_count",
        "id",
        "key",
        "last_seen",
        "manual",
        "new_episode",
        "new_hold",
        "reason",
        "state",
        "text",
        "times_listed",
    )

    def __init__(self, key: ListingKey, row: Any | None, text: str) -> None:
        self.key = key
        self.text = text
        self.id = None if row is None else row.id
        self.state = None if row is None else row.state
        self.expires_at = None if row is None else utc(row.expires_at)
        self.first_seen = None if row is None else utc(row.first_seen)
        self.last_seen = None if row is None else utc(row.last_seen)
        self.hit_count = 0 if row is None else row.hit_count
        self.times_listed = 0 if row is None else row.times_listed
        self.manual = row is not None and row.source == SOURCE_MANUAL
        self.delisted_at = None if row is None else utc(row.delisted_at)
        self.reason: str | None = None if row is None else row.reason
        self.dirty = False
        self.new_episode = False
        self.new_hold = False

    def history(self, hits_in_window: int, allowlisted: bool) -> History:
        active = self.state == ACTIVE
        held = self.state == HELD
        return History(
            hits_in_window=hits_in_window,
            earlier_listings=self.times_listed - 1 if active else self.times_listed,
            active=active,
            active_expires_at=self.expires_at if active else None,
            active_manual=active and self.manual,
            allowlisted=allowlisted,
            delisted_at=self.delisted_at,
            held=held,
            held_expires_at=self.expires_at if held else None,
        )

    def apply(self, hit: TrapHit, decision: Decision) -> None:
        supporting = decision.action is Action.RECORD and decision.expires_at is not None
        if decision.action in (Action.LIST, Action.EXTEND, Action.HOLD) or supporting:
            self.dirty = True
            if self.first_seen is None or hit.at < self.first_seen:
                self.first_seen = hit.at
            if self.last_seen is None or hit.at > self.last_seen:
                self.last_seen = hit.at
            self.hit_count += 1
            if not supporting:
                self.expires_at = decision.expires_at
                if not (decision.action is Action.HOLD and self.state == HELD):
                    self.reason = decision.reason  # a hold keeps the reason it was held for
            if decision.action is Action.LIST:
                self.state = ACTIVE
                self.times_listed += 1
                self.manual = False
                self.new_episode = True
            elif decision.action is Action.HOLD and self.state != HELD:
                self.state = HELD  # not a listing episode: times_listed waits for release
                self.manual = False
                self.new_hold = True


def load_listings(
    conn: Connection, zone: str, keys: Sequence[ListingKey], texts: list[str] | None = None
) -> dict[str, ListingState]:
    """Listing rows (or blank ones) for ``keys``; ``texts`` saves recomputing key texts."""
    found: dict[str, ListingState] = {}
    texts = texts if texts is not None else [key.text for key in keys]
    by_text = dict(zip(texts, keys, strict=True))
    for start in range(0, len(texts), _CHUNK):
        for row in conn.execute(
            select(listings).where(
                listings.c.zone == zone, listings.c.key.in_(texts[start : start + _CHUNK])
            )
        ):
            found[row.key] = ListingState(by_text[row.key], row, row.key)
    for text, key in by_text.items():
        found.setdefault(text, ListingState(key, None, text))
    return found


def hit_times(
    conn: Connection, keys: dict[str, IpKey], since: datetime
) -> dict[str, list[datetime]]:
    """Times of the counted hits since ``since`` per listing key text, sorted.

    A single address's hits are found by its text, a network's (an IPv6 /64) as
    the range of its addresses, so every address a spammer rotates through counts.
    """
    times: dict[str, list[datetime]] = {}
    single = [text for text, key in keys.items() if key.prefixlen == MAX_PREFIXLEN[key.family]]
    for start in range(0, len(single), _CHUNK):
        for address, at in conn.execute(
            select(hits.c.client_ip, hits.c.at).where(
                hits.c.client_ip.in_(single[start : start + _CHUNK]),
                hits.c.at > since,
                hits.c.counted,
            )
        ):
            times.setdefault(address, []).append(utc(at))
    networks = [key for key in keys.values() if key.prefixlen != MAX_PREFIXLEN[key.family]]
    for start in range(0, len(networks), _RANGES):
        chunk = networks[start : start + _RANGES]
        by_network = {key: key.text for key in chunk}
        lengths = {key.prefixlen for key in chunk}
        for family, network, at in conn.execute(
            select(hits.c.family, hits.c.network, hits.c.at).where(
                or_(*(in_network(hits, key) for key in chunk)), hits.c.at > since, hits.c.counted
            )
        ):
            address = IpKey(family, int.from_bytes(network, "big"), MAX_PREFIXLEN[family])
            for length in lengths:
                text = by_network.get(address.widen(length))
                if text is not None:
                    times.setdefault(text, []).append(utc(at))
                    break
    for found in times.values():
        found.sort()
    return times


def members(
    conn: Connection, zone: str, networks: list[IpKey], base: dict[int, int]
) -> dict[str, dict[str, datetime | None]]:
    """Active trap listings of the base width (``base`` per family) inside each network:
    network text -> {listing key text: expiry}."""
    found: dict[str, dict[str, datetime | None]] = {key.text: {} for key in networks}
    for start in range(0, len(networks), _RANGES):
        chunk = networks[start : start + _RANGES]
        conditions = [
            and_(listings.c.prefixlen == base[key.family], in_network(listings, key))
            for key in chunk
        ]
        for family, network, prefixlen, text, expires in conn.execute(
            select(
                listings.c.family,
                listings.c.network,
                listings.c.prefixlen,
                listings.c.key,
                listings.c.expires_at,
            ).where(
                listings.c.zone == zone,
                listings.c.state == ACTIVE,
                listings.c.source == SOURCE_TRAP,
                or_(*conditions),
            )
        ):
            member = IpKey(family, int.from_bytes(network, "big"), prefixlen)
            for key in chunk:
                if key.overlaps(member):
                    found[key.text][text] = utc(expires)
    return found
