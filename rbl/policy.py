"""Listing policy: what a trap hit does to the list, and why. Pure.

Given a hit, whether its recipient is a trap, what the store knows about the
address (``History``) and the rules, ``decide`` says ignore / record / list /
extend, with a reason that is stored with the evidence. Same inputs, same
decision: the clock is an input, and times derive from the hit's own time,
so re-reading the same evidence gives the same list.

The safeguards encode the field's hard lessons:

* never list reserved or the operator's own networks, nor allowlisted ones;
* sender-verification callback probes (null sender, ``double-bounce``, Exim's
  ``host-EPOCH-testing`` random local parts) hit traps without any spam being
  sent: recorded, never listed;
* a domain in MAIL FROM is usually forged (a victim), so a domain is listed
  only when the sending host's forward-confirmed name lies inside it.

Imports no Twisted and no SQLAlchemy.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

from rbl.config import ListingSettings
from rbl.index import PrefixTable
from rbl.keys import address_key
from rbl.traphit import TrapHit

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Special-purpose space (RFC 6890 and successors): no legitimate public sender
# lives here, so a hit from it is a spoofed log line or a local relay.
RESERVED_NETWORKS: Final[tuple[Network, ...]] = tuple(
    ipaddress.ip_network(text)
    for text in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
        "::/128",
        "::1/128",
        "::ffff:0:0/96",
        "64:ff9b::/96",
        "64:ff9b:1::/48",
        "100::/64",
        "2001::/23",
        "2001:db8::/32",
        "2002::/16",
        "3fff::/20",
        "5f00::/16",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    )
)

_BATV_TAG: Final = re.compile(r"^[0-9]{4}[0-9a-f]{6}$")
# Exim's callout_random_local_part default is "$primary_hostname-$tod_epoch-testing".
_RANDOM_PROBE: Final = re.compile(r"^[a-z0-9.-]+-[0-9]{9,11}-testing$")
_PROBE_SENDERS: Final = frozenset({"double-bounce", "mailer-daemon", "postmaster"})
# Bounds of time arithmetic on hits: no listing lasts past LATEST (a listing for good,
# and far from datetime's year 9999 limit in any time zone), no window reaches before
# EARLIEST (the store refuses hits older than that: rbl.store.evidence.refusal).
LATEST: Final = datetime(9000, 1, 1, tzinfo=UTC)
EARLIEST: Final = datetime(1970, 1, 1, tzinfo=UTC)


class Action(StrEnum):
    IGNORE = "ignore"  # not evidence: the recipient is no trap
    RECORD = "record"  # evidence kept, list unchanged
    LIST = "list"  # a new listing
    EXTEND = "extend"  # an active listing lives longer


@dataclass(frozen=True)
class Rules:
    threshold: int
    window: timedelta
    duration: timedelta
    repeat_factor: float
    max_duration: timedelta
    protected: tuple[Network, ...]
    _tables: dict[int, PrefixTable] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Longest-prefix lookups over the protected networks: an int compare or two
        # per hit instead of testing every network.
        tables = {4: PrefixTable(32), 6: PrefixTable(128)}
        for position, network in enumerate(self.protected):
            tables[network.version].set(
                int(network.network_address), network.prefixlen, position + 1
            )
        object.__setattr__(self, "_tables", tables)

    def protected_network(self, address: str) -> Network | None:
        key = address_key(address)
        found = self._tables[key.family].lookup(key.network)
        return None if found is None else self.protected[found - 1]

    @classmethod
    def from_settings(cls, settings: ListingSettings) -> Rules:
        own = tuple(ipaddress.ip_network(n, strict=False) for n in settings.own_networks)
        return cls(
            threshold=settings.threshold,
            window=timedelta(seconds=settings.window),
            duration=timedelta(seconds=settings.duration),
            repeat_factor=settings.repeat_factor,
            max_duration=timedelta(seconds=settings.max_duration),
            protected=RESERVED_NETWORKS + own,
        )

    def expiry(self, at: datetime, earlier_listings: int) -> datetime:
        """When a listing on a hit at ``at`` ends; never past LATEST, never an OverflowError."""
        try:
            return min(at + self.duration_for(earlier_listings), LATEST)
        except OverflowError:
            return LATEST

    def window_start(self, at: datetime) -> datetime:
        """The earliest hit time that still counts with a hit at ``at``."""
        try:
            return max(at - self.window, EARLIEST)
        except OverflowError:
            return EARLIEST

    def duration_for(self, earlier_listings: int) -> timedelta:
        """Listing lifetime after the last hit: longer for repeat offenders, capped."""
        base = self.duration.total_seconds()
        cap = self.max_duration.total_seconds()
        exponent = max(earlier_listings, 0)
        # Compare in logarithms: factor ** exponent overflows a float for old offenders.
        if self.repeat_factor > 1 and exponent * math.log(self.repeat_factor) >= math.log(
            cap / base
        ):
            return self.max_duration
        return min(timedelta(seconds=base * self.repeat_factor**exponent), self.max_duration)


@dataclass(frozen=True, slots=True)
class History:
    """What the store knows about the address before this hit."""

    hits_in_window: int = 0  # earlier trap hits within the window (this one excluded)
    earlier_listings: int = 0  # listing episodes that ended before now
    active: bool = False
    active_expires_at: datetime | None = None
    active_manual: bool = False  # listed by the operator: its lifetime is theirs
    allowlisted: bool = False
    delisted_at: datetime | None = None  # only newer hits may list it again


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str
    expires_at: datetime | None = None
    counts: bool = True  # evidence against the address (counts toward the threshold)


def normalise_sender(address: str | None) -> str | None:
    """Lowercase and strip BATV: ``prvs=TAG=user@d`` and ``prvs=user=TAG@d`` give ``user@d``."""
    if address is None:
        return None
    address = address.strip().lower()
    local, at, domain = address.rpartition("@")
    if at and local.startswith("prvs="):
        first, sep, second = local[5:].partition("=")
        if sep and _BATV_TAG.match(first):
            local = second
        elif sep and _BATV_TAG.match(second):
            local = first
        return f"{local}@{domain}"
    return address


def domain_of(address: str | None) -> str | None:
    if not address or "@" not in address:
        return None
    domain = address.rpartition("@")[2].strip().rstrip(".").lower()
    return domain or None


def probe_reason(hit: TrapHit) -> str | None:
    """Why this looks like a sender-verification probe rather than spam, or None."""
    if hit.mail_from == "":
        return "null sender: a bounce or a sender-verification callback"
    sender = normalise_sender(hit.mail_from)
    if sender is not None and sender.partition("@")[0] in _PROBE_SENDERS:
        return f"sender {sender.partition('@')[0]}@: an address-verification probe"
    if hit.rcpt_to:
        local = hit.rcpt_to.rpartition("@")[0]
        if _RANDOM_PROBE.match(local):
            return "random-recipient probe (host-EPOCH-testing)"
    return None


def decide(
    hit: TrapHit, *, is_trap: bool, history: History, rules: Rules, now: datetime
) -> Decision:
    """What this hit does to the listing of ``hit.client_ip``."""
    if not is_trap and not hit.trap_asserted:
        return Decision(Action.IGNORE, "recipient is not a trap", counts=False)
    network = rules.protected_network(hit.client_ip)
    if network is not None:
        return Decision(
            Action.RECORD, f"never listed: {network} is reserved or our own", counts=False
        )
    if history.allowlisted:
        return Decision(Action.RECORD, "never listed: allowlisted", counts=False)
    probe = probe_reason(hit)
    if probe is not None:
        return Decision(Action.RECORD, f"not listed: {probe}", counts=False)
    if history.delisted_at is not None and hit.at <= history.delisted_at:
        return Decision(Action.RECORD, "not listed: older than the last delisting", counts=False)
    seen = history.hits_in_window + 1
    if seen < rules.threshold:
        return Decision(Action.RECORD, f"not listed yet: {seen} of {rules.threshold} hits")
    if history.active and history.active_manual:
        return Decision(Action.RECORD, "evidence for a listing the operator made")
    if history.active:
        episode = max(history.earlier_listings, 0)
        expires = rules.expiry(hit.at, episode)
        if history.active_expires_at is not None and history.active_expires_at >= expires:
            return Decision(
                Action.RECORD, "listed; expiry already later", history.active_expires_at
            )
        if expires <= now:  # old evidence never shortens a listing into the past
            return Decision(Action.RECORD, "listed; the hit is too old to extend it")
        return Decision(Action.EXTEND, "listed; hit extends the listing", expires)
    expires = rules.expiry(hit.at, history.earlier_listings)
    if expires <= now:
        return Decision(Action.RECORD, "not listed: the evidence is older than a listing lives")
    repeat = (
        f" (listed {history.earlier_listings} time(s) before)" if history.earlier_listings else ""
    )
    return Decision(Action.LIST, f"{seen} trap hit(s) within the window{repeat}", expires)


def tied_domain(hit: TrapHit) -> str | None:
    """A sender or HELO domain that the sending host's verified name lies inside, or None.

    Only then is a domain the sender's own: MAIL FROM alone is forged too often.
    """
    name = (hit.client_name or "").rstrip(".").lower()
    if not name:
        return None
    for candidate in (
        domain_of(normalise_sender(hit.mail_from)),
        (hit.helo or "").strip().rstrip(".").lower() or None,
    ):
        if candidate and "." in candidate and (name == candidate or name.endswith("." + candidate)):
            return candidate
    return None
