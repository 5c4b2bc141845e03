"""Removal requests: a listed party asks, the operator (or self-service) decides.

A request names the listing it asks to remove; approving it delists that
listing (audited, through the change log, so DNS follows within a second)
and closes the other requests pending for it. After a delisting only newer
evidence can list the key again (the policy reads ``delisted_at``).

Every request is kept with its own message, email and token: a stranger who
files first cannot swallow the owner's request. A listing takes at most
``RequestLimits.max_pending`` pending requests and ``per_hour`` new ones an
hour; past that a request is refused with a reason, never dropped.

Self-service removal approves at once, but only what the trap feed listed for
one address or one exact name (``review_reason``), and only once per key per
period: the operator's own listings, networks, wildcards and multi-code
listings always go to review, and a spammer cannot delist itself every day.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Row, func, insert, select, update

from rbl.config import DelistingSettings
from rbl.errors import NotListedError, StoreError
from rbl.model.keys import ListingKey
from rbl.store.audit import audit
from rbl.store.changelog import lock_change_log
from rbl.store.listings import Listing, covering_listings, remove_listing
from rbl.store.rows import narrowed, record
from rbl.store.schema import (
    APPROVED,
    CLOSED,
    DENIED,
    PENDING,
    SOURCE_TRAP,
    listings,
    removal_requests,
)
from rbl.store.timestamps import utc

SELF_SERVICE_ACTOR = "self-service"
MAX_MESSAGE = 4000


class RequestError(StoreError):
    """The removal request cannot be made or decided."""


class RequestLimitError(RequestError):
    """The listing already has as many removal requests as it takes for now."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after  # seconds; None: once an operator has decided some


@dataclass(frozen=True, slots=True)
class RequestLimits:
    """How many removal requests one listing takes: pending at once, and new per window."""

    max_pending: int = 20
    per_window: int = 10
    window: timedelta = timedelta(hours=1)

    @classmethod
    def from_settings(cls, settings: DelistingSettings) -> RequestLimits:
        return cls(
            max_pending=settings.max_pending_per_key,
            per_window=settings.requests_per_key_per_hour,
        )


@dataclass(frozen=True, slots=True)
class RemovalRequest:
    id: int
    token: str
    zone: str
    key: str
    email: str | None
    message: str
    client_ip: str | None
    state: str
    self_service: bool
    created_at: datetime
    decided_at: datetime | None
    decided_by: str | None
    decision_message: str | None


def _request(row: Row[tuple[object, ...]]) -> RemovalRequest:
    return record(RemovalRequest, row, self_service=bool(row.self_service))


def new_token() -> str:
    """A request token (32 URL-safe characters) that does not start with "-".

    Operators type it into the CLI (``rbl requests deny TOKEN``), where a
    leading "-" reads as an option: about one token in 64 would be refused.
    """
    while True:
        token = secrets.token_urlsafe(24)
        if not token.startswith("-"):
            return token


def review_reason(covering: Sequence[Listing]) -> str | None:
    """Why self-service may not remove what makes a key listed (None: it may).

    ``covering`` is what ``covering_listings`` returns, the narrowest first.
    Only a listing the trap feed made for one address or one exact name, with
    one return code, is undone by a form post; anything the operator decided
    (a manual listing or import, a network, a wildcard, several codes) is for
    an operator to undo. The reason completes "because ...".
    """
    if not covering:
        return "it is not listed"
    listing = covering[0]
    if "/" in listing.key and not _one_customer(listing):
        return f"it is a network ({listing.key}), not one address"
    if listing.key.startswith("*."):
        return f"it covers every name under {listing.key[2:]}"
    if len(listing.codes) != 1:
        return "it is listed with more than one return code"
    if listing.source != SOURCE_TRAP:
        return "it was listed by the operator, not by the trap feed"
    if len(covering) > 1:
        return f"it is also listed as part of {covering[1].key}"
    return None


def _one_customer(listing: Listing) -> bool:
    """A trap listing of an IPv6 /64 or narrower: what one customer gets, as one address
    was (rbl.policy.listing.listing_key); an escalated or wider network is for an operator."""
    head, _, length = listing.key.partition("/")
    return listing.source == SOURCE_TRAP and ":" in head and int(length or 128) >= 64


def self_service_review_reason(
    conn: Connection, zone: str, key: ListingKey, *, period: timedelta, now: datetime
) -> str | None:
    """Why a self-service request for ``key`` would wait for an operator (None: granted at once)."""
    covering = covering_listings(conn, zone, key)
    reason = review_reason(covering)
    if reason is None and not _self_service_allowed(conn, zone, covering[0].key, now - period):
        days = max(1, round(period.total_seconds() / 86400))
        reason = f"it was already removed by self-service within the last {days} days"
    return reason


def open_request(
    conn: Connection,
    zone: str,
    key: ListingKey,
    *,
    message: str,
    email: str | None,
    client_ip: str | None,
    now: datetime,
    self_service_period: timedelta | None,
    limits: RequestLimits | None = None,
) -> RemovalRequest:
    """Ask to remove the listing that makes ``key`` listed in ``zone``; a new request each time.

    With ``self_service_period`` the listing is removed at once when
    ``review_reason`` allows it and no self-service removal of it was granted
    within the period; otherwise the request waits for an operator. Raises
    RequestLimitError when the listing has its fill of requests.
    """
    limits = limits or RequestLimits()
    message = message.strip()
    if not message:
        raise RequestError("say why the listing should be removed")
    if len(message) > MAX_MESSAGE:
        raise RequestError(f"the message is longer than {MAX_MESSAGE} characters")
    if self_service_period is not None:
        lock_change_log(conn)  # before the listing's row lock: approving writes the change log
    covering = covering_listings(conn, zone, key)
    if not covering:
        raise NotListedError(f"{key.text} is not listed in {zone}")
    listing_key = covering[0].key
    _lock_listing(conn, zone, listing_key)
    _check_limits(conn, zone, listing_key, limits, now)
    token = new_token()
    conn.execute(
        insert(removal_requests).values(
            token=token,
            zone=zone,
            key=listing_key,
            email=email,
            message=message,
            client_ip=client_ip,
            state=PENDING,
            self_service=False,
            created_at=now,
        )
    )
    audit(
        conn,
        now=now,
        actor=f"web:{client_ip or '?'}",
        action="request",
        zone=zone,
        key=listing_key,
        reason=message[:500],
    )
    if (
        self_service_period is not None
        and review_reason(covering) is None
        and _self_service_allowed(conn, zone, listing_key, now - self_service_period)
    ):
        return _decide(
            conn,
            token,
            approve=True,
            actor=SELF_SERVICE_ACTOR,
            message="removed by self-service",
            now=now,
            self_service=True,
        ).request
    return _get(conn, token)


def _lock_listing(conn: Connection, zone: str, key: str) -> None:
    """Serialise requests for one listing, so the limits hold under concurrency.

    An UPDATE that changes nothing: on PostgreSQL it takes the listing's row
    lock, on SQLite it opens the write transaction (one writer at a time), so
    the counts read next include every request committed before.
    """
    conn.execute(
        update(listings)
        .where(listings.c.zone == zone, listings.c.key == key)
        .values(updated_at=listings.c.updated_at)
    )


def _check_limits(
    conn: Connection, zone: str, key: str, limits: RequestLimits, now: datetime
) -> None:
    same = (removal_requests.c.zone == zone, removal_requests.c.key == key)
    pending = int(
        conn.execute(
            select(func.count())
            .select_from(removal_requests)
            .where(*same, removal_requests.c.state == PENDING)
        ).scalar_one()
    )
    if pending >= limits.max_pending:
        raise RequestLimitError(
            f"{pending} removal requests for {key} are already waiting for review, the most "
            "this list keeps for one listing; an operator will read them. No more are "
            "accepted until some are decided."
        )
    since = now - limits.window
    recent = [
        utc(at)
        for (at,) in conn.execute(
            select(removal_requests.c.created_at)
            .where(*same, removal_requests.c.created_at > since)
            .order_by(removal_requests.c.created_at)
            .limit(limits.per_window)
        )
    ]
    if len(recent) >= limits.per_window:
        oldest = recent[0]
        assert oldest is not None
        wait = max(1.0, (oldest + limits.window - now).total_seconds())
        hours = limits.window.total_seconds() / 3600
        span = "hour" if hours == 1 else f"{hours:g} hours"
        raise RequestLimitError(
            f"There have been {len(recent)} removal requests for {key} in the last {span}, "
            f"the most one listing takes. Please try again in about "
            f"{max(1, round(wait / 60))} minutes.",
            retry_after=wait,
        )


def _self_service_allowed(conn: Connection, zone: str, key: str, since: datetime) -> bool:
    """No self-service removal of this listing was granted since ``since``."""
    return (
        conn.execute(
            select(removal_requests.c.id).where(
                removal_requests.c.zone == zone,
                removal_requests.c.key == key,
                removal_requests.c.self_service,
                removal_requests.c.decided_at > since,
            )
        ).first()
        is None
    )


def _get(conn: Connection, token: str) -> RemovalRequest:
    found = get_request(conn, token)
    if found is None:
        raise RequestError(f"no removal request {token!r}")
    return found


def get_request(conn: Connection, token_or_id: str) -> RemovalRequest | None:
    """By public token, or by number (what the operator CLI shows)."""
    condition = (
        removal_requests.c.id == int(token_or_id)
        if token_or_id.isdigit()
        else removal_requests.c.token == token_or_id
    )
    row = conn.execute(select(removal_requests).where(condition)).first()
    return None if row is None else _request(row)


def list_requests(
    conn: Connection,
    state: str | None = PENDING,
    limit: int = 100,
    *,
    zone: str | None = None,
    key: str | None = None,
) -> list[RemovalRequest]:
    """Oldest first; ``zone`` and ``key`` (a listing's key text) narrow it to one listing."""
    query = select(removal_requests).order_by(removal_requests.c.created_at, removal_requests.c.id)
    query = narrowed(query, removal_requests, state=state, zone=zone, key=key)
    return [_request(row) for row in conn.execute(query.limit(limit))]


@dataclass(frozen=True, slots=True)
class Decision:
    """A decided request, and the other pending requests for its listing it closed."""

    request: RemovalRequest
    closed: tuple[int, ...] = ()


def approve_request(
    conn: Connection, token_or_id: str, *, actor: str, message: str, now: datetime
) -> Decision:
    """Delist the listing and close every other request pending for it (each audited)."""
    return _decide(conn, token_or_id, approve=True, actor=actor, message=message, now=now)


def deny_request(
    conn: Connection, token_or_id: str, *, actor: str, message: str, now: datetime
) -> RemovalRequest:
    """Deny this one request; the others for the same listing stay pending."""
    if not message.strip():
        raise RequestError("a denial needs a message for the requester")
    return _decide(conn, token_or_id, approve=False, actor=actor, message=message, now=now).request


def _decide(
    conn: Connection,
    token_or_id: str,
    *,
    approve: bool,
    actor: str,
    message: str,
    now: datetime,
    self_service: bool = False,
) -> Decision:
    if approve:
        lock_change_log(conn)  # before any row lock: remove_listing writes the change log
    request = get_request(conn, token_or_id)
    if request is None:
        raise RequestError(f"no removal request {token_or_id!r}")
    if request.state != PENDING:
        raise RequestError(f"request {request.id} is already {request.state}")
    if approve:
        # Expired or delisted meanwhile: the request is granted all the same.
        with contextlib.suppress(NotListedError):
            remove_listing(
                conn,
                request.zone,
                request.key,
                reason=f"removal request {request.id}: {message}",
                actor=actor,
                now=now,
            )
    conn.execute(
        update(removal_requests)
        .where(removal_requests.c.id == request.id)
        .values(
            state=APPROVED if approve else DENIED,
            decided_at=now,
            decided_by=actor,
            decision_message=message,
            self_service=self_service,
        )
    )
    audit(
        conn,
        now=now,
        actor=actor,
        action="approve" if approve else "deny",
        zone=request.zone,
        key=request.key,
        reason=message,
        detail=f"request {request.id}",
    )
    closed = _close_others(conn, request, actor=actor, now=now) if approve else ()
    return Decision(_get(conn, request.token), closed)


def _close_others(
    conn: Connection, approved: RemovalRequest, *, actor: str, now: datetime
) -> tuple[int, ...]:
    """Close the other pending requests for the approved one's listing, with a note each.

    The note names only the approved request's number: its message and
    email are its requester's alone.
    """
    others = conn.execute(
        select(removal_requests.c.id)
        .where(
            removal_requests.c.zone == approved.zone,
            removal_requests.c.key == approved.key,
            removal_requests.c.state == PENDING,
            removal_requests.c.id != approved.id,
        )
        .order_by(removal_requests.c.id)
    ).scalars()
    closed = tuple(int(request_id) for request_id in others)
    note = (
        f"The listing of {approved.key} was removed: request {approved.id} was approved. "
        "Nothing more is needed for this request."
    )
    for request_id in closed:
        conn.execute(
            update(removal_requests)
            .where(removal_requests.c.id == request_id)
            .values(state=CLOSED, decided_at=now, decided_by=actor, decision_message=note)
        )
        audit(
            conn,
            now=now,
            actor=actor,
            action="close",
            zone=approved.zone,
            key=approved.key,
            reason=note,
            detail=f"request {request_id}",
        )
    return closed
