"""Listing policy: what a trap hit does to the list, and why. Pure.

Given a hit, whether its recipient is a trap, what the store knows about the
address (``History``) and the rules, ``decide`` says ignore / record / list /
extend, with a reason that is stored with the evidence. Same inputs, same
decision: the clock is an input, and times derive from the hit's own time,
so re-reading the same evidence gives the same list.

The safeguards encode the field's hard lessons:

* never list reserved or the operator's own networks, nor allowlisted ones;
* sender-verification callback probes hit traps without any spam being sent:
  recorded, never listed. A probe is known by its shape (``probe_reason``),
  never by a sender's name alone: ``postmaster@`` of a stranger's domain is
  what phishing sends from;
* a bounce (null sender with a message) to a trap is backscatter: recorded,
  never listed (``backscatter_reason``);
* a big provider's outbound host (Gmail, Outlook, SES, ...) relays millions of
  innocent users for every spammer: its listing is held for the operator's
  review instead of going to DNS (``Rules.hold_reason``, ``Action.HOLD``);
* a domain in MAIL FROM is usually forged (a victim), so a domain is listed
  only when the sending host's forward-confirmed name lies inside it
  (``rbl.policy.senders.tied_domain``), and only as its host is (``decide_domain``);
* a spammer rotates addresses inside the IPv6 /64 one customer gets: an IPv6
  hit lists (and counts toward) its /64 (``listing_key``), and, when the zone
  asks for it, enough listings inside a /48 or an IPv4 /24 list that too
  (``escalate``), never over reserved, own or held space.

Imports no Twisted and no SQLAlchemy.
"""

from __future__ import annotations

import ipaddress
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Final

from rbl.config import ListingSettings, PrefixSettings
from rbl.index.tables import PrefixTable
from rbl.model.keys import IpKey, address_key
from rbl.model.suffixes import is_public_suffix
from rbl.model.traphit import EARLIEST, TrapHit
from rbl.policy.senders import backscatter_reason, host_name, probe_reason

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

# Bounds of time arithmetic on hits: no listing lasts past LATEST (a listing for good,
# and far from datetime's year 9999 limit in any time zone), no window reaches before
# EARLIEST (the store refuses hits older than that: rbl.store.evidence.refusal).
LATEST: Final = datetime(9000, 1, 1, tzinfo=UTC)


class Action(StrEnum):
    IGNORE = "ignore"  # not evidence: the recipient is no trap
    RECORD = "record"  # evidence kept, list unchanged
    LIST = "list"  # a new listing
    EXTEND = "extend"  # an active listing lives longer
    HOLD = "hold"  # would list, but waits for the operator's review; never in DNS until released


@dataclass(frozen=True)
class Rules:
    threshold: int
    window: timedelta
    duration: timedelta
    repeat_factor: float
    max_duration: timedelta
    protected: tuple[Network, ...]
    # Big providers' outbound hosts, by the domain their verified names lie inside,
    # and networks held the same way: their listings wait for review.
    provider_hosts: frozenset[str] = frozenset()
    held: tuple[Network, ...] = ()
    _tables: dict[int, PrefixTable] = field(init=False, repr=False, compare=False)
    _held_tables: dict[int, PrefixTable] = field(init=False, repr=False, compare=False)
    # (family, first, last, network) of every protected and held network, as ints.
    _guarded: tuple[tuple[int, int, int, Network], ...] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        # Longest-prefix lookups over the networks: an int compare or two per hit
        # instead of testing every network.
        object.__setattr__(self, "_tables", _prefix_tables(self.protected))
        object.__setattr__(self, "_held_tables", _prefix_tables(self.held))
        guarded = tuple(
            (n.version, int(n.network_address), int(n.broadcast_address), n)
            for n in (*self.protected, *self.held)
        )
        object.__setattr__(self, "_guarded", guarded)

    def protected_network(self, address: str) -> Network | None:
        return _lookup(self._tables, self.protected, address)

    def guarded_inside(self, key: IpKey) -> Network | None:
        """A protected or held network that shares addresses with network ``key``, or None.

        Listing ``key`` would then list what is never listed (or only after review),
        so the policy lists a narrower key instead (``listing_key``) or does not widen.
        """
        low, high = key.network, key.last
        for family, first, last, network in self._guarded:
            if family == key.family and first <= high and low <= last:
                return network
        return None

    def hold_reason(self, hit: TrapHit) -> str | None:
        """Why a listing of this hit's host waits for review, or None.

        Only the forward-confirmed name counts: HELO is the sender's to choose,
        so a spammer saying ``EHLO mail.google.com`` is no reason to hold.
        """
        name = host_name(hit.client_name)
        if name and self.provider_hosts:
            labels = name.split(".")
            for start in range(len(labels) - 1):
                suffix = ".".join(labels[start:])
                if suffix in self.provider_hosts:
                    return f"{name} is a big provider's outbound host ({suffix})"
        network = _lookup(self._held_tables, self.held, hit.client_ip) if self.held else None
        if network is not None:
            return f"{hit.client_ip} is inside {network}, held for review by configuration"
        return None

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
            provider_hosts=frozenset(settings.provider_hosts),
            held=tuple(ipaddress.ip_network(n, strict=False) for n in settings.held_networks),
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


def _prefix_tables(networks: tuple[Network, ...]) -> dict[int, PrefixTable]:
    tables = {4: PrefixTable(32), 6: PrefixTable(128)}
    for position, network in enumerate(networks):
        tables[network.version].set(int(network.network_address), network.prefixlen, position + 1)
    return tables


def _lookup(
    tables: dict[int, PrefixTable], networks: tuple[Network, ...], address: str
) -> Network | None:
    key = address_key(address)
    found = tables[key.family].lookup(key.network)
    return None if found is None else networks[found - 1]


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
    held: bool = False  # a listing waits for the operator's review (never active too)
    held_expires_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Decision:
    action: Action
    reason: str
    expires_at: datetime | None = None
    counts: bool = True  # evidence against the address (counts toward the threshold)


def decide(
    hit: TrapHit, *, is_trap: bool, history: History, rules: Rules, now: datetime
) -> Decision:
    """What this hit does to the listing of ``hit.client_ip``.

    A hit that would list a held host (``Rules.hold_reason``) holds it
    instead, and a held listing stays held, later hits extending it, until
    the operator releases or rejects it. An active listing (one released, or
    made before the host was held) is extended as usual.
    """
    if not is_trap and not hit.trap_asserted:
        return Decision(Action.IGNORE, "recipient is not a trap", counts=False)
    network = rules.protected_network(hit.client_ip)
    if network is not None:
        return Decision(
            Action.RECORD, f"never listed: {network} is reserved or our own", counts=False
        )
    if history.allowlisted:
        return Decision(Action.RECORD, "never listed: allowlisted", counts=False)
    probe = probe_reason(hit) or backscatter_reason(hit)
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
    if history.held:  # stays held until the operator decides, whatever later hits say
        if history.held_expires_at is not None and history.held_expires_at >= expires:
            return Decision(
                Action.RECORD, "held for review; expiry already later", history.held_expires_at
            )
        return Decision(Action.HOLD, "held for review; hit extends the hold", expires)
    hold = rules.hold_reason(hit)
    if hold is not None:
        return Decision(Action.HOLD, f"held for review: {hold}", expires)
    repeat = (
        f" (listed {history.earlier_listings} time(s) before)" if history.earlier_listings else ""
    )
    return Decision(Action.LIST, f"{seen} trap hit(s) within the window{repeat}", expires)


def decide_domain(
    hit: TrapHit, domain: str, host: Decision, *, history: History, now: datetime
) -> Decision | None:
    """What ``hit`` does to the listing of ``domain``, the sending host's own
    (``tied_domain``), once ``host`` is the decision on the host's address. None: nothing.

    A domain follows its host: a hit that lists or extends the host lists or
    extends the domain until the same time, and nothing else touches it. Never
    a public suffix (nobody's own domain: rbl.model.suffixes) nor an allowlisted
    domain (``history.allowlisted``); otherwise the rules of ``follow``.
    """
    if host.action not in (Action.LIST, Action.EXTEND) or host.expires_at is None:
        return None
    if history.allowlisted or is_public_suffix(domain):
        return None
    reason = f"sending host {hit.client_name} ({hit.client_ip}) is inside it"
    return follow(history, at=hit.at, expires=host.expires_at, now=now, reason=reason)


def follow(
    history: History, *, at: datetime, expires: datetime, now: datetime, reason: str
) -> Decision | None:
    """A listing that follows from other listings (a domain from its host's, a network
    from those inside it, ``escalate``): listed or extended until ``expires``, or None.

    The rules ``decide`` applies to a host's own listing: a listing the operator
    made is theirs, one the operator delisted (or rejected) comes back only on
    evidence at ``at`` newer than that, a held one waits for the operator, an
    expiry in the past lists nothing and an active listing is only ever extended.
    """
    if history.delisted_at is not None and at <= history.delisted_at:
        return None
    if history.held or (history.active and history.active_manual):
        return None
    if expires <= now:
        return None
    if history.active:
        if history.active_expires_at is not None and history.active_expires_at >= expires:
            return None
        return Decision(Action.EXTEND, reason, expires)
    return Decision(Action.LIST, reason, expires)


def listing_key(address: str, prefixes: PrefixSettings, rules: Rules) -> IpKey:
    """The network a trap hit from ``address`` lists, and whose hits count together.

    IPv6: the /ipv6_prefix around it (a provider gives a customer a /64 and a
    spammer rotates inside it); the address alone when that network would take in
    reserved, own or held space. IPv4: the address.
    """
    key = address_key(address)
    if key.family == 4 or prefixes.ipv6_prefix >= key.prefixlen:
        return key
    wide = key.widen(prefixes.ipv6_prefix)
    return key if rules.guarded_inside(wide) is not None else wide


def escalation_key(key: IpKey, prefixes: PrefixSettings) -> IpKey | None:
    """The wider network that listings like ``key`` escalate to, or None (off, or not one)."""
    if key.family == 6:
        after, base, wide = (
            prefixes.ipv6_escalate_after,
            prefixes.ipv6_prefix,
            prefixes.ipv6_escalate_prefix,
        )
    else:
        after, base, wide = prefixes.ipv4_escalate_after, 32, prefixes.ipv4_escalate_prefix
    if not after or key.prefixlen != base:
        return None
    return key.widen(wide)


def escalation_after(key: IpKey, prefixes: PrefixSettings) -> int:
    """How many listings inside escalation network ``key`` list it."""
    return prefixes.ipv6_escalate_after if key.family == 6 else prefixes.ipv4_escalate_after


_NAMED_MEMBERS: Final = 8  # listings named in an escalation's reason; the rest counted


def escalate(
    network: IpKey,
    members: dict[str, datetime | None],
    *,
    after: int,
    history: History,
    rules: Rules,
    at: datetime,
    now: datetime,
) -> Decision | None:
    """Does network ``network`` get listed (or extended) because of the listings inside it?

    ``members`` are the active trap listings of the base width inside it (key text:
    expiry, None for none), as they stand after the hit at ``at``. With ``after``
    of them alive at ``at``, the network is listed until the time at least
    ``after`` of them still are (the ``after``-th latest expiry): it lives as long as
    the evidence that escalated it, and a later listing inside extends it. None when
    nothing changes. The reason names the listings (public in DNS anyway), never a hit.
    """
    alive = sorted(
        (key for key, expires in members.items() if expires is None or expires > at),
        key=lambda text: (members[text] or LATEST, text),
        reverse=True,
    )
    if len(alive) < after:
        return None
    if rules.guarded_inside(network) is not None or history.allowlisted:
        return None
    expires = members[alive[after - 1]] or LATEST
    named = ", ".join(sorted(alive[:_NAMED_MEMBERS]))
    more = f" and {len(alive) - _NAMED_MEMBERS} more" if len(alive) > _NAMED_MEMBERS else ""
    what = "networks" if network.family == 6 else "addresses"
    reason = f"escalated: {len(alive)} listed {what} inside it (at least {after}): {named}{more}"
    return follow(history, at=at, expires=expires, now=now, reason=reason)
