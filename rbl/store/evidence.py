"""Trap hits into the store: evidence rows, and the listings the policy decides.

``record_hits`` runs one batch in the caller's transaction: it reads what
the policy needs for every address in the batch in a few queries, decides
hit by hit in time order (the same evidence gives the same decisions),
then writes the hits, the listing changes, the change-log rows DNS follows
and the audit rows together. Expiry is a change too (``expire_listings``).
An IPv6 hit's listing is its /64 (``policy.listing_key``): the hits of every
address inside it are read as a range of ``hits.network``; escalated networks
are decided after the listing inside them changes (``policy.escalate``).
A held listing (``Action.HOLD``) is a row in state "held" with an audit row
and no change-log row: DNS, transfers and dumps read only active listings and
the change log, so it reaches none of them until the operator releases it.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    String,
    Table,
    and_,
    bindparam,
    func,
    insert,
    or_,
    select,
    update,
)

from rbl.config import ZoneSettings
from rbl.model.changes import OP_DELETE, OP_SET
from rbl.model.idn import ascii_domain
from rbl.model.keys import MAX_PREFIXLEN, DomainKey, IpKey, ListingKey, address_key
from rbl.model.suffixes import is_public_suffix
from rbl.model.traphit import EARLIEST, FUTURE_SKEW, TrapHit, lone_surrogate
from rbl.model.traps import TrapMatcher
from rbl.policy.allowlist import Allowlist
from rbl.policy.listing import (
    Action,
    Decision,
    History,
    Rules,
    decide,
    domain_of,
    escalate,
    escalation_after,
    escalation_key,
    listing_key,
    normalise_sender,
    tied_domain,
)
from rbl.store.changelog import append_change, append_changes, lock_change_log
from rbl.store.listings import audit, in_network, key_columns
from rbl.store.schema import (
    ACTIVE,
    EXPIRED,
    HELD,
    SOURCE_MANUAL,
    SOURCE_TRAP,
    audit_log,
    change_log,
    hits,
    listings,
)
from rbl.store.timestamps import utc

POLICY_ACTOR = "policy"
_CHUNK = 500


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


class _Listing:
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


def _load_listings(
    conn: Connection, zone: str, keys: Sequence[ListingKey], texts: list[str] | None = None
) -> dict[str, _Listing]:
    """Listing rows (or blank ones) for ``keys``; ``texts`` saves recomputing key texts."""
    found: dict[str, _Listing] = {}
    texts = texts if texts is not None else [key.text for key in keys]
    by_text = dict(zip(texts, keys, strict=True))
    for start in range(0, len(texts), _CHUNK):
        for row in conn.execute(
            select(listings).where(
                listings.c.zone == zone, listings.c.key.in_(texts[start : start + _CHUNK])
            )
        ):
            found[row.key] = _Listing(by_text[row.key], row, row.key)
    for text, key in by_text.items():
        found.setdefault(text, _Listing(key, None, text))
    return found


def _hit_times(
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


_RANGES = 100  # network ranges per query


def _members(
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


def insert_many(conn: Connection, table: Table, rows: list[dict[str, Any]]) -> None:
    """``INSERT`` many rows; on SQLite straight through the driver.

    Core's executemany processes every bound value in Python (about half the
    cost of a trap hit in bulk ingest). On SQLite the values need no more
    than SQLAlchemy's own DATETIME text form, written here the same way so
    that comparisons and reads through Core see exactly what Core writes.
    """
    if not rows:
        return
    if conn.dialect.name != "sqlite":
        conn.execute(insert(table), rows)
        return
    columns = list(rows[0])
    sql = (
        f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    )
    texts: dict[datetime, str] = {}  # a batch repeats the same few moments

    def value(item: Any) -> Any:
        if isinstance(item, datetime):
            text = texts.get(item)
            if text is None:
                moment = item.astimezone(UTC) if item.tzinfo else item
                text = texts[item] = moment.strftime(SQLITE_DATETIME)
            return text
        return item

    conn.exec_driver_sql(sql, [tuple(value(row[c]) for c in columns) for row in rows])


SQLITE_DATETIME = "%Y-%m-%d %H:%M:%S.%f"  # SQLAlchemy's sqlite.DATETIME storage format

# Who, from whom, to whom, in which second: what one attempt logged twice shares.
Moment = tuple[str, str | None, str | None, int]


def _moment(client_ip: str, mail_from: str | None, rcpt_to: str | None, at: datetime) -> Moment:
    return client_ip, mail_from, rcpt_to, int(at.timestamp())


class _Attempts:
    """The attempts seen so far, to tell a hit that repeats one from a new attempt.

    Two hits with the same moment are one attempt (spamd -v logs "(GREY)" and
    "Trapping" for one; Postfix logs "hold" then "reject"; a policy request and
    the log line of the same RCPT) unless both carry an attempt of the same kind
    that differ: two smtpd processes (``pid:``), two queue files (``queue:``), two
    postscreen connections (``port:``) are two attempts even in one second.
    Attempts of different kinds, or none, cannot tell two attempts apart, so
    such hits merge as they did before attempts were recorded.
    """

    def __init__(self) -> None:
        self._seen: dict[Moment, set[str | None]] = {}

    def add(self, moment: Moment, attempt: str | None) -> bool:
        """Record the hit's attempt; False when it repeats one already seen."""
        seen = self._seen.get(moment)
        if seen is None:
            self._seen[moment] = {attempt}
            return True
        if attempt is None or attempt in seen:
            return False
        kind = attempt.partition(":")[0]
        if any(other is None or other.partition(":")[0] != kind for other in seen):
            return False
        seen.add(attempt)
        return True

    def keep(self, moment: Moment, attempt: str | None) -> None:
        """Record a stored hit's attempt as it is."""
        self._seen.setdefault(moment, set()).add(attempt)


def _stored_attempts(conn: Connection, batch: Sequence[TrapHit]) -> _Attempts:
    """Attempts already stored in the batch's seconds, so a duplicate split across two
    batches is caught as surely as one inside a batch (decisions must not depend on
    where batches start)."""
    found = _Attempts()
    if not batch:
        return found
    low = min(hit.at for hit in batch).replace(microsecond=0)
    high = max(hit.at for hit in batch).replace(microsecond=0) + timedelta(seconds=1)
    addresses = sorted({hit.client_ip for hit in batch})
    for start in range(0, len(addresses), _CHUNK):
        for client_ip, mail_from, rcpt_to, at, attempt in conn.execute(
            select(
                hits.c.client_ip, hits.c.mail_from, hits.c.rcpt_to, hits.c.at, hits.c.attempt
            ).where(
                hits.c.client_ip.in_(addresses[start : start + _CHUNK]),
                hits.c.at >= low,
                hits.c.at < high,
            )
        ):
            found.keep(_moment(client_ip, mail_from, rcpt_to, utc(at)), attempt)
    return found


# What a sender controls can be longer than its column; PostgreSQL would refuse
# the whole batch, and with it every later one of a live feed or an ingest run.
_CUT = ("helo", "mail_from", "rcpt_to", "attempt")


def _length(column: Any) -> int:
    """A String column's length."""
    kind = column.type
    assert isinstance(kind, String) and kind.length is not None
    return kind.length


_LIMITS = {name: _length(hits.c[name]) for name in (*_CUT, "client_name", "feed")}


def _fit(hit: TrapHit) -> TrapHit:
    """The hit as it can be stored: what a sender said cut to its column, the raw line whole.

    NUL becomes U+FFFD (PostgreSQL text cannot hold it). A host name over 253
    octets is no verified name, so it is dropped rather than cut (a cut name
    could tie a wrong domain to the sender). Cut values stay longer than any
    valid name, so they tie no domain either, and the same attempt coming
    again is fitted the same way and still counts once.
    """
    changes: dict[str, str | None] = {}
    for name in (*_CUT, "client_name", "feed", "raw"):
        value = getattr(hit, name)
        if value is None:
            continue
        fitted = value.replace("\x00", "\ufffd") if "\x00" in value else value
        limit = _LIMITS.get(name)
        if limit is not None and len(fitted) > limit:
            fitted = None if name == "client_name" else fitted[:limit]
        if fitted != value:
            changes[name] = fitted
    return replace(hit, **changes) if changes else hit  # type: ignore[arg-type]


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
    relevant: list[tuple[TrapHit, str | None, int]] = []
    seen = _stored_attempts(conn, batch)
    in_batch: dict[Moment, int] = {}  # where each moment's first hit is in ``relevant``
    for index, hit in enumerate(batch):
        trap = matcher.match(hit.rcpt_to)
        if trap is None and not hit.trap_asserted:
            result.actions[Action.IGNORE.value] += 1
            continue
        hit = _fit(hit)
        # One attempt logged twice (spamd -v: "(GREY)" and "Trapping"; Postfix "hold"
        # then "reject") counts once: same client, sender, recipient and second, and
        # no attempt key telling them apart (_Attempts).
        moment = _moment(hit.client_ip, hit.mail_from, hit.rcpt_to, hit.at)
        if not seen.add(moment, hit.attempt):
            result.actions["duplicate"] += 1
            kept = in_batch.get(moment)
            if kept is not None and relevant[kept][0].helo is None and hit.helo is not None:
                # spamd's GREY line has no HELO; its "new entry"/"Trapping" twin has.
                first, trap_value, position = relevant[kept]
                relevant[kept] = (replace(first, helo=hit.helo), trap_value, position)
            continue
        in_batch.setdefault(moment, len(relevant))
        relevant.append((hit, None if trap is None else trap.value, index))
    if not relevant:
        return result
    relevant.sort(key=lambda item: item[0].at)  # stable: input order within a second
    prefixes = ip_zone.prefixes
    # Each address's listing key: itself, or (IPv6) its /64, whose hits count together.
    listed_as: dict[str, str] = {}
    keys: dict[str, IpKey] = {}
    for address in sorted({hit.client_ip for hit, _, _ in relevant}):
        key = listing_key(address, prefixes, rules)
        text = address if key.prefixlen == MAX_PREFIXLEN[key.family] else key.text
        listed_as[address] = text
        keys[text] = key
    ip_rows = _load_listings(conn, ip_zone.name, list(keys.values()), texts=list(keys))
    times: dict[str, list[datetime]] = {}
    if rules.threshold > 1:
        times = _hit_times(conn, keys, rules.window_start(relevant[0][0].at))
    # Escalation (off by default): the wider networks these listings count toward.
    wider: dict[str, IpKey] = {}
    for text, key in keys.items():
        target = escalation_key(key, prefixes)
        if target is not None:
            wider[text] = target
    members: dict[str, dict[str, datetime | None]] = {}
    if wider:
        targets = sorted(set(wider.values()), key=lambda k: (k.family, k.network))
        members = _members(conn, ip_zone.name, targets, {4: 32, 6: prefixes.ipv6_prefix})
        ip_rows.update(_load_listings(conn, ip_zone.name, targets))
    domain_rows: dict[str, _Listing] = {}
    if domain_zone is not None:
        candidates = {d for d in (tied_domain(hit) for hit, _, _ in relevant) if d}
        domain_rows = _load_listings(
            conn, domain_zone.name, [DomainKey(d) for d in sorted(candidates)]
        )

    hit_rows: list[dict[str, Any]] = []
    for hit, _trap, _index in relevant:
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
        if decision.action in (Action.LIST, Action.EXTEND) and domain_zone is not None:
            _domain_decision(
                hit, decision, domain_rows, allow, rules, now, result, domain_zone.name
            )
        target = wider.get(row.text)
        if target is not None and decision.action in (Action.LIST, Action.EXTEND):
            inside = members[target.text]
            inside[row.text] = row.expires_at
            wide = ip_rows[target.text]
            escalation = escalate(
                target,
                inside,
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
        client = address_key(hit.client_ip)
        sender = normalise_sender(hit.mail_from)
        hit_rows.append(
            {
                "at": hit.at,
                "client_ip": hit.client_ip,
                "family": client.family,
                "network": client.packed,
                "client_name": hit.client_name,
                "helo": hit.helo,
                "mail_from": hit.mail_from,
                "sender_domain": _cut(domain_of(sender), hits.c.sender_domain),
                "rcpt_to": hit.rcpt_to,
                # The ASCII form traps are stored in, whichever form the MTA logged.
                "trap_domain": _cut(_ascii(domain_of(hit.rcpt_to)), hits.c.trap_domain),
                "feed": hit.feed,
                "raw": hit.raw,
                "action": decision.action.value,
                "counted": decision.counts,
                "reason": decision.reason,
                "source_id": source_id,
                "attempt": hit.attempt,
            }
        )
    insert_many(conn, hits, hit_rows)
    changed = _write_listings(conn, ip_zone, ip_rows.values(), now)
    if domain_zone is not None:
        changed = _write_listings(conn, domain_zone, domain_rows.values(), now) or changed
    if changed:
        # The change-log lock is held (or SQLite's one writer): no other writer's
        # rows can be newer than this transaction's.
        result.change_id = conn.execute(select(func.max(change_log.c.id))).scalar_one()
        for hit, _trap, index in relevant:
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


def _ascii(domain: str | None) -> str | None:
    return None if domain is None else ascii_domain(domain)


def _cut(text: str | None, column: Any) -> str | None:
    return text if text is None else text[: _length(column)]


def _domain_decision(
    hit: TrapHit,
    ip_decision: Decision,
    rows: dict[str, _Listing],
    allow: Allowlist,
    rules: Rules,
    now: datetime,
    result: BatchResult,
    zone: str,
) -> None:
    domain = tied_domain(hit)
    if domain is None or is_public_suffix(domain) or allow.covers_domain(domain):
        return  # a public suffix is nobody's own domain (rbl.model.suffixes)
    row = rows[domain]
    history = row.history(0, False)
    if history.active and history.active_manual:
        return
    if history.delisted_at is not None and hit.at <= history.delisted_at:
        return
    expires = ip_decision.expires_at
    if history.active:
        if (
            history.active_expires_at is not None
            and expires is not None
            and (history.active_expires_at >= expires)
        ):
            return
        action = Action.EXTEND
    else:
        action = Action.LIST
        result.listed.append(f"{zone} {domain}")
    reason = f"sending host {hit.client_name} ({hit.client_ip}) is inside it"
    row.apply(hit, Decision(action, reason, expires))


def _write_listings(conn: Connection, zone: ZoneSettings, rows: Any, now: datetime) -> bool:
    """Write the batch's listing changes with one executemany per statement shape.

    True if it wrote change-log rows (what DNS answers changed)."""
    codes = ",".join(zone.default_codes)
    inserts: list[dict[str, Any]] = []
    relisted: list[dict[str, Any]] = []
    extended: list[dict[str, Any]] = []
    changes: list[dict[str, Any]] = []
    audits: list[dict[str, Any]] = []
    for row in rows:
        if not row.dirty:
            continue
        values = {
            "state": row.state,
            "expires_at": row.expires_at,
            "first_seen": row.first_seen,
            "last_seen": row.last_seen,
            "hit_count": row.hit_count,
            "times_listed": row.times_listed,
            "updated_at": now,
            "reason": row.reason,
        }
        if row.id is None:
            inserts.append(
                {
                    "zone": zone.name,
                    "codes": codes,
                    "txt": None,
                    "source": SOURCE_TRAP,
                    "created_at": now,
                    **key_columns(row.key, row.text),
                    **values,
                }
            )
        elif row.new_episode or row.new_hold:
            relisted.append({"b_id": row.id, **values})
        else:
            extended.append({"b_id": row.id, **values})
        if row.new_hold:
            audits.append(
                {
                    "at": now,
                    "actor": POLICY_ACTOR,
                    "action": "hold",
                    "zone": zone.name,
                    "key": row.text,
                    "reason": row.reason,
                    "detail": f"codes={codes}",
                }
            )
        if row.new_episode:
            changes.append(
                {
                    "zone": zone.name,
                    "key": row.text,
                    "op": OP_SET,
                    "codes": codes,
                    "txt": None,
                    "created_at": now,
                }
            )
            audits.append(
                {
                    "at": now,
                    "actor": POLICY_ACTOR,
                    "action": "list",
                    "zone": zone.name,
                    "key": row.text,
                    "reason": row.reason,
                    "detail": f"codes={codes}",
                }
            )
    columns = (
        "state",
        "expires_at",
        "first_seen",
        "last_seen",
        "hit_count",
        "times_listed",
        "updated_at",
        "reason",
    )
    by_id = listings.c.id == bindparam("b_id")
    insert_many(conn, listings, inserts)
    if relisted:
        conn.execute(
            update(listings)
            .where(by_id)
            .values(
                codes=codes, txt=None, source=SOURCE_TRAP, **{c: bindparam(c) for c in columns}
            ),
            relisted,
        )
    if extended:
        conn.execute(
            update(listings).where(by_id).values(**{c: bindparam(c) for c in columns}), extended
        )
    append_changes(conn, changes)
    insert_many(conn, audit_log, audits)
    return bool(changes)


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
