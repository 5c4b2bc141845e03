"""Trap hits into the store: evidence rows, and the listings the policy decides.

``record_hits`` runs one batch in the caller's transaction: it reads what
the policy needs for every address in the batch in a few queries
(rbl.store.history), decides hit by hit in time order with rbl.policy.listing
(the same evidence gives the same decisions), then writes the hits, the
listing changes, the change-log rows DNS follows and the audit rows together
(rbl.store.outcome). Expiry is a change too (``expire_listings``).
An IPv6 hit's listing is its /64 (``policy.listing_key``): the hits of every
address inside it are read as a range of ``hits.network``; escalated networks
are decided after the listing inside them changes (``policy.escalate``), and
the sending host's own domain with its host (``policy.decide_domain``).
A held listing (``Action.HOLD``) is a row in state "held" with an audit row
and no change-log row: DNS, transfers and dumps read only active listings and
the change log, so it reaches none of them until the operator releases it.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from sqlalchemy import Connection, and_, func, select, update

from rbl.config import ZoneSettings
from rbl.model.changes import OP_DELETE
from rbl.model.keys import MAX_PREFIXLEN, DomainKey, IpKey
from rbl.model.traphit import EARLIEST, FUTURE_SKEW, TrapHit, lone_surrogate
from rbl.model.traps import TrapMatcher
from rbl.policy.allowlist import Allowlist
from rbl.policy.listing import (
    Action,
    Rules,
    decide,
    decide_domain,
    escalate,
    escalation_after,
    escalation_key,
    listing_key,
)
from rbl.policy.senders import tied_domain
from rbl.store.attempts import Moment, moment, stored_attempts
from rbl.store.audit import POLICY_ACTOR, audit
from rbl.store.bulk import insert_many
from rbl.store.changelog import append_change, lock_change_log
from rbl.store.history import ListingState, hit_times, load_listings, members
from rbl.store.hitrows import fit, hit_row
from rbl.store.outcome import write_listings
from rbl.store.schema import ACTIVE, EXPIRED, HELD, change_log, hits, listings


@dataclass
class BatchResult:
    """What one batch did; ``actions`` counts hits per policy action."""

    actions: Counter[str] = field(default_factory=Counter)
    listed: list[str] = field(default_factory=list)  # keys newly listed, "zone key"
    held: list[str] = field(default_factory=list)  # keys newly held for review, "zone key"
    # The highest change-log id the batch wrote (None: it changed nothing DNS answers),
    # and which of its hits (by position in the batch) a new listing answers: a live
    # feed answers those once DNS has applied that id (rbl.server.visibility).
    change_id: int | None = None
    changed: set[int] = field(default_factory=set)

    def add(self, other: BatchResult) -> None:
        self.actions.update(other.actions)
        self.listed.extend(other.listed)
        self.held.extend(other.held)
        if other.change_id is not None:
            self.change_id = max(self.change_id or 0, other.change_id)


_TEXT_FIELDS = (
    "client_ip",
    "rcpt_to",
    "mail_from",
    "helo",
    "client_name",
    "feed",
    "raw",
    "attempt",
)


class HitRefused(ValueError):
    """The hit cannot be evidence as it stands (its time, or text no database can hold)."""


def refusal(hit: TrapHit, now: datetime) -> str | None:
    """Why the store refuses ``hit`` for good, or None: checked before anything is written.

    A time more than FUTURE_SKEW after ``now`` would list the sender until
    that time (year 9999 overflowed the expiry arithmetic); one before 1970
    is no MTA's. A lone surrogate (a JSON ``\\udc80``) is no Unicode text,
    and neither SQLite nor PostgreSQL can store it.
    """
    return _refusal(hit, now, now + FUTURE_SKEW)


def _refusal(hit: TrapHit, now: datetime, latest: datetime) -> str | None:
    if hit.at > latest:
        return (
            f"time {hit.at.isoformat()} is more than {FUTURE_SKEW.days} day after now "
            f"({now.isoformat(timespec='seconds')}): a wrong clock or a forged time"
        )
    if hit.at < EARLIEST:
        return f"time {hit.at.isoformat()} is before 1970: no log of a real attempt"
    for name in _TEXT_FIELDS:
        value = getattr(hit, name)
        at = None if value is None else lone_surrogate(value)
        if at is not None:
            bad = value[at]
            return (
                f"field {name} holds {bad.encode('utf-8', 'backslashreplace').decode()}, "
                "a lone surrogate: not Unicode text, no database can store it"
            )
    return None


def record_hits(
    conn: Connection,
    batch: Sequence[TrapHit],
    *,
    matcher: TrapMatcher,
    allow: Allowlist,
    rules: Rules,
    ip_zone: ZoneSettings,
    domain_zone: ZoneSettings | None,
    now: datetime,
    source_id: int | None = None,
) -> BatchResult:
    """Decide and store one batch of hits; hits whose recipient is no trap are not stored.

    HitRefused for the first hit ``refusal`` refuses: the caller sets it aside.
    """
    latest = now + FUTURE_SKEW
    for hit in batch:
        why = _refusal(hit, now, latest)
        if why is not None:
            raise HitRefused(why)
    result = BatchResult()
    if batch:
        lock_change_log(conn)  # decisions read listings that other writers change
    relevant = _new_attempts(conn, batch, matcher, result)
    if not relevant:
        return result
    relevant.sort(key=lambda item: item[0].at)  # stable: input order within a second
    prefixes = ip_zone.prefixes
    # Each address's listing key: itself, or (IPv6) its /64, whose hits count together.
    listed_as: dict[str, str] = {}
    keys: dict[str, IpKey] = {}
    for address in sorted({hit.client_ip for hit, _ in relevant}):
        key = listing_key(address, prefixes, rules)
        text = address if key.prefixlen == MAX_PREFIXLEN[key.family] else key.text
        listed_as[address] = text
        keys[text] = key
    ip_rows = load_listings(conn, ip_zone.name, list(keys.values()), texts=list(keys))
    times: dict[str, list[datetime]] = {}
    if rules.threshold > 1:
        times = hit_times(conn, keys, rules.window_start(relevant[0][0].at))
    # Escalation (off by default): the wider networks these listings count toward.
    wider: dict[str, IpKey] = {}
    for text, key in keys.items():
        target = escalation_key(key, prefixes)
        if target is not None:
            wider[text] = target
    inside: dict[str, dict[str, datetime | None]] = {}
    if wider:
        targets = sorted(set(wider.values()), key=lambda k: (k.family, k.network))
        inside = members(conn, ip_zone.name, targets, {4: 32, 6: prefixes.ipv6_prefix})
        ip_rows.update(load_listings(conn, ip_zone.name, targets))
    domain_rows: dict[str, ListingState] = {}
    if domain_zone is not None:
        candidates = {d for d in (tied_domain(hit) for hit, _ in relevant) if d}
        domain_rows = load_listings(
            conn, domain_zone.name, [DomainKey(d) for d in sorted(candidates)]
        )

    hit_rows = []
    for hit, _index in relevant:
        row = ip_rows[listed_as[hit.client_ip]]  # parsers give canonical text
        earlier = times.setdefault(row.text, [])
        in_window = len(earlier) - bisect_right(earlier, rules.window_start(hit.at))
        decision = decide(
            hit,
            is_trap=True,
            history=row.history(in_window, allow.covers_ip(hit.client_ip)),
            rules=rules,
            now=now,
        )
        if decision.counts and rules.threshold > 1:
            # With threshold 1 earlier hits are not read (one query fewer a batch), so
            # none are counted within the batch either: the reason a listing states
            # must not depend on where a batch started.
            earlier.insert(bisect_right(earlier, hit.at), hit.at)
        was_held = row.state == HELD
        row.apply(hit, decision)
        result.actions[decision.action.value] += 1
        if decision.action is Action.LIST:
            result.listed.append(f"{ip_zone.name} {row.text}")
        elif decision.action is Action.HOLD and not was_held:
            result.held.append(f"{ip_zone.name} {row.text}")
        domain = None if domain_zone is None else tied_domain(hit)
        if domain is not None and domain_zone is not None:
            own = domain_rows[domain]
            history = own.history(0, allow.covers_domain(domain))
            follows = decide_domain(hit, domain, decision, history=history, now=now)
            if follows is not None:
                own.apply(hit, follows)
                if follows.action is Action.LIST:
                    result.listed.append(f"{domain_zone.name} {domain}")
        target = wider.get(row.text)
        if target is not None and decision.action in (Action.LIST, Action.EXTEND):
            network = inside[target.text]
            network[row.text] = row.expires_at
            wide = ip_rows[target.text]
            escalation = escalate(
                target,
                network,
                after=escalation_after(target, prefixes),
                history=wide.history(0, allow.covers_key(target)),
                rules=rules,
                at=hit.at,
                now=now,
            )
            if escalation is not None:
                wide.apply(hit, escalation)
                if escalation.action is Action.LIST:
                    result.listed.append(f"{ip_zone.name} {wide.text}")
        hit_rows.append(hit_row(hit, decision, source_id))
    insert_many(conn, hits, hit_rows)
    changed = write_listings(conn, ip_zone, ip_rows.values(), now)
    if domain_zone is not None:
        changed = write_listings(conn, domain_zone, domain_rows.values(), now) or changed
    if changed:
        # The change-log lock is held (or SQLite's one writer): no other writer's
        # rows can be newer than this transaction's.
        result.change_id = conn.execute(select(func.max(change_log.c.id))).scalar_one()
        for hit, index in relevant:
            domain = tied_domain(hit) if domain_zone is not None else None
            listed_as_key = listed_as[hit.client_ip]
            target = wider.get(listed_as_key)
            # A hit waits for its own listing, or the escalated one it caused, in DNS.
            if (
                ip_rows[listed_as_key].new_episode
                or (target is not None and ip_rows[target.text].new_episode)
                or (
                    domain is not None and domain in domain_rows and domain_rows[domain].new_episode
                )
            ):
                result.changed.add(index)
    return result


def _new_attempts(
    conn: Connection, batch: Sequence[TrapHit], matcher: TrapMatcher, result: BatchResult
) -> list[tuple[TrapHit, int]]:
    """The batch's hits to a trap, fitted to their columns, each attempt once, with
    their positions in the batch; counts the others in ``result``."""
    relevant: list[tuple[TrapHit, int]] = []
    seen = stored_attempts(conn, batch)
    in_batch: dict[Moment, int] = {}  # where each moment's first hit is in ``relevant``
    for index, hit in enumerate(batch):
        if matcher.match(hit.rcpt_to) is None and not hit.trap_asserted:
            result.actions[Action.IGNORE.value] += 1
            continue
        hit = fit(hit)
        # One attempt logged twice (spamd -v: "(GREY)" and "Trapping"; Postfix "hold"
        # then "reject") counts once: same client, sender, recipient and second, and
        # no attempt key telling them apart (rbl.store.attempts).
        when = moment(hit.client_ip, hit.mail_from, hit.rcpt_to, hit.at)
        if not seen.add(when, hit.attempt):
            result.actions["duplicate"] += 1
            kept = in_batch.get(when)
            if kept is not None and relevant[kept][0].helo is None and hit.helo is not None:
                # spamd's GREY line has no HELO; its "new entry"/"Trapping" twin has.
                first, position = relevant[kept]
                relevant[kept] = (replace(first, helo=hit.helo), position)
            continue
        in_batch.setdefault(when, len(relevant))
        relevant.append((hit, index))
    return relevant


def expire_listings(conn: Connection, *, now: datetime, limit: int = 10_000) -> list[str]:
    """End active and held listings whose time has come; DNS drops the active ones via
    the change log. A held one was never in DNS, so it lapses without a change row:
    a hold outlives no listing it would have been."""
    lock_change_log(conn)
    due = conn.execute(
        select(listings.c.id, listings.c.zone, listings.c.key, listings.c.state)
        .where(
            and_(
                listings.c.state.in_((ACTIVE, HELD)),
                listings.c.expires_at.is_not(None),
                listings.c.expires_at <= now,
            )
        )
        .order_by(listings.c.expires_at)
        .limit(limit)
    ).all()
    ended = []
    for row_id, zone, key, state in due:
        conn.execute(
            update(listings)
            .where(listings.c.id == row_id, listings.c.state == state)
            .values(state=EXPIRED, updated_at=now)
        )
        held = state == HELD
        if not held:
            append_change(conn, zone=zone, key=key, op=OP_DELETE, created_at=now)
        audit(
            conn,
            now=now,
            actor=POLICY_ACTOR,
            action="expire",
            zone=zone,
            key=key,
            reason="no new evidence; held for review, never published"
            if held
            else "no new evidence",
        )
        ended.append(f"{zone} {key}")
    return ended
