"""What the public lookup page may show about a key: status, counts and setup checks.

Nothing here can tell which recipient a hit went to. A sender chooses its
MAIL FROM, HELO and timing per message; shown per hit, any of them marks
the message, and the page would tell a spammer which of the recipients it
tried are traps. So no per-hit rows at all: the page gets dates and counts
(per day, or per hour when ``[public] time_resolution = "hour"``), the
domains of the address traps hit only when ``[public] show_trap_domains``
is set (never a whole-domain trap's domain: it is the trap), and checks on
the listed party's own setup as counts ("3 of 5 connections gave a HELO
that is not a fully qualified name"), never the HELO text.

``rcpt_to`` (the trap address), ``raw`` (the log line) and ``mail_from``
are never read here. A domain's evidence is the hits from hosts whose
forward-confirmed name is inside it (what lists a domain), never hits that
merely name it in MAIL FROM or HELO, which any sender can write.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import ColumnElement, Connection, func, or_, select

from rbl.model.keys import MAX_PREFIXLEN, IpKey, ListingKey, parse_ip_key
from rbl.store.listings import Listing, covering_listings, get_listing, listings_inside
from rbl.store.queries import evidence_condition
from rbl.store.schema import HELD, PENDING, TRAP_ADDRESS, TRAP_DOMAIN, hits, removal_requests, traps
from rbl.store.timestamps import utc

CHECKED_HITS = 1000  # the newest hits the setup checks look at
HOURS = 48  # hours of per-hour counts, when the hour is the resolution
MAX_INSIDE = 50  # listings named inside a listed network

# Setup problems, in the order the page lists them.
NO_HELO = "no-helo"
HELO_ADDRESS = "helo-address"
HELO_NOT_FQDN = "helo-not-fqdn"
NO_FCRDNS = "no-fcrdns"
HELO_NOT_FCRDNS = "helo-not-fcrdns"
PROBLEMS = (NO_HELO, HELO_ADDRESS, HELO_NOT_FQDN, NO_FCRDNS, HELO_NOT_FCRDNS)

_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


@dataclass(frozen=True, slots=True)
class SetupCheck:
    problem: str  # one of PROBLEMS
    connections: int  # how many of the checked hits have it


@dataclass(frozen=True, slots=True)
class PublicStatus:
    zone: str
    key: str  # what was looked up, canonical
    listing: Listing | None  # the active listing that makes it listed, if any
    last_listing: Listing | None  # the most recent one, for "was listed until ..."
    evidence_total: int
    first_hit: datetime | None
    last_hit: datetime | None
    daily_hits: list[tuple[date, int]]  # last ``days`` days, oldest first, zeros included
    hourly_hits: list[tuple[datetime, int]]  # last HOURS hours with hits, when asked for
    checked: int  # hits the setup checks looked at (the newest CHECKED_HITS)
    checks: list[SetupCheck]  # problems found, in PROBLEMS order; only those seen
    trap_domains: list[tuple[str, int]]  # address traps' domains hit, when asked for
    pending_requests: int  # waiting for review; never which ones (their links are private)
    # What the evidence counts: ``key``, or the network that lists it (an IPv6 /64, an
    # escalated /48 or /24), whose addresses' hits made the listing.
    evidence_key: str = ""
    inside: list[str] = field(default_factory=list)  # active listings inside that network


def public_condition(key: ListingKey) -> ColumnElement[bool]:
    """The hits that are public evidence for ``key``: its addresses, or its verified hosts."""
    if isinstance(key, IpKey):
        return evidence_condition(key)
    return or_(
        hits.c.client_name == key.name,
        hits.c.client_name.endswith("." + key.name, autoescape=True),
    )


def public_status(
    conn: Connection,
    zone: str,
    key: ListingKey,
    *,
    now: datetime,
    days: int = 90,
    hourly: bool = False,
    trap_domains: bool = False,
) -> PublicStatus:
    covering = covering_listings(conn, zone, key)
    active = covering[0] if covering else None
    last = active or get_listing(conn, zone, key)
    if last is not None and (last.state == HELD or last.times_listed == 0):
        last = None  # held for review, or a hold that ended: never published
    shown: ListingKey = key
    inside: list[str] = []
    if active is not None and isinstance(key, IpKey):
        network = parse_ip_key(active.key)
        if network != key:
            shown = network
        if network.prefixlen < MAX_PREFIXLEN[network.family]:
            found = listings_inside(conn, zone, network)
            inside = [each.key for each in found[:MAX_INSIDE]]
    condition = public_condition(shown)
    total, first, newest = conn.execute(
        select(func.count(), func.min(hits.c.at), func.max(hits.c.at)).where(condition)
    ).one()
    start = (now - timedelta(days=days - 1)).date()
    since = datetime.combine(start, datetime.min.time(), tzinfo=UTC)
    per_day: dict[date, int] = {}
    per_hour: dict[datetime, int] = {}
    hour_start = now.replace(minute=0, second=0, microsecond=0) - timedelta(hours=HOURS - 1)
    for (moment,) in conn.execute(select(hits.c.at).where(condition, hits.c.at >= since)):
        at = utc(moment)
        per_day[at.date()] = per_day.get(at.date(), 0) + 1
        if hourly and at >= hour_start:
            hour = at.replace(minute=0, second=0, microsecond=0)
            per_hour[hour] = per_hour.get(hour, 0) + 1
    daily = [
        (start + timedelta(days=i), per_day.get(start + timedelta(days=i), 0)) for i in range(days)
    ]
    pending = 0
    if last is not None:  # a count only: each request's token is its requester's alone
        pending = int(
            conn.execute(
                select(func.count())
                .select_from(removal_requests)
                .where(
                    removal_requests.c.zone == zone,
                    removal_requests.c.key == last.key,
                    removal_requests.c.state == PENDING,
                )
            ).scalar_one()
        )
    checked = list(
        conn.execute(
            select(hits.c.helo, hits.c.client_name)
            .where(condition)
            .order_by(hits.c.at.desc(), hits.c.id.desc())
            .limit(CHECKED_HITS)
        )
    )
    return PublicStatus(
        zone=zone,
        key=key.text,
        listing=active,
        last_listing=last,
        evidence_total=int(total),
        first_hit=utc(first),
        last_hit=utc(newest),
        daily_hits=daily,
        hourly_hits=sorted(per_hour.items()),
        checked=len(checked),
        checks=setup_checks((helo, name) for helo, name in checked),
        trap_domains=_address_trap_domains(conn, condition) if trap_domains else [],
        pending_requests=pending,
        evidence_key=shown.text,
        inside=inside,
    )


def setup_checks(seen: Iterable[tuple[str | None, str | None]]) -> list[SetupCheck]:
    """Count each setup problem over (HELO, forward-confirmed name) pairs.

    Real mail servers greet with their own forward-confirmed name (the PTR
    name of the address, which resolves back to it); a HELO that is an
    address, a bare word, or another name is what bots and misconfigured
    hosts send.
    """
    counts = dict.fromkeys(PROBLEMS, 0)
    for helo, name in seen:
        for problem in helo_problems(helo, name):
            counts[problem] += 1
    return [SetupCheck(problem, count) for problem, count in counts.items() if count]


def helo_problems(helo: str | None, name: str | None) -> list[str]:
    """The setup problems one connection shows."""
    found = [] if name else [NO_FCRDNS]
    text = (helo or "").strip().lower().rstrip(".")
    if not text:
        return [NO_HELO, *found]
    if text.startswith("[") or _is_address(text):
        return [HELO_ADDRESS, *found]
    labels = text.split(".")
    if len(labels) < 2 or labels[-1].isdigit() or not all(_LABEL.fullmatch(x) for x in labels):
        return [HELO_NOT_FQDN, *found]
    if name and text != name.strip().lower().rstrip("."):
        found.append(HELO_NOT_FCRDNS)
    return found


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _address_trap_domains(
    conn: Connection, condition: ColumnElement[bool]
) -> list[tuple[str, int]]:
    """Hits per trap domain, for domains of address traps that are not whole-domain traps."""
    kinds: dict[str, set[str]] = {TRAP_ADDRESS: set(), TRAP_DOMAIN: set()}
    for kind, value in conn.execute(select(traps.c.kind, traps.c.value)):
        if kind == TRAP_ADDRESS:
            kinds[kind].add(value.rpartition("@")[2])
        elif kind == TRAP_DOMAIN:
            kinds[kind].add(value)
    shown = kinds[TRAP_ADDRESS] - kinds[TRAP_DOMAIN]
    rows = conn.execute(
        select(hits.c.trap_domain, func.count())
        .where(condition, hits.c.trap_domain.is_not(None))
        .group_by(hits.c.trap_domain)
    )
    found = [(domain, int(count)) for domain, count in rows if domain in shown]
    return sorted(found, key=lambda item: (-item[1], item[0]))
