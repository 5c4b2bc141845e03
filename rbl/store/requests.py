"""Removal requests: a listed party asks, the operator (or self-service) decides.

A request names the listing it asks to remove; approving it delists that
listing (audited, through the change log, so DNS follows within a second).
After a delisting only newer evidence can list the key again (the policy
reads ``delisted_at``). Self-service removal approves at once, but only once
per key per period: a spammer cannot delist itself every day.
"""

from __future__ import annotations

import contextlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Row, insert, select, update

from rbl.errors import NotListedError, StoreError
from rbl.keys import ListingKey
from rbl.store.changelog import lock_change_log
from rbl.store.listings import audit, covering_listings, remove_listing
from rbl.store.schema import APPROVED, DENIED, PENDING, removal_requests
from rbl.store.timestamps import utc

SELF_SERVICE_ACTOR = "self-service"
MAX_MESSAGE = 4000


class RequestError(StoreError):
    """The removal request cannot be made or decided."""


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
    m = row._mapping
    return RemovalRequest(
        id=m["id"],
        token=m["token"],
        zone=m["zone"],
        key=m["key"],
        email=m["email"],
        message=m["message"],
        client_ip=m["client_ip"],
        state=m["state"],
        self_service=bool(m["self_service"]),
        created_at=utc(m["created_at"]),
        decided_at=utc(m["decided_at"]),
        decided_by=m["decided_by"],
        decision_message=m["decision_message"],
    )


def new_token() -> str:
    """A request token (32 URL-safe characters) that does not start with "-".

    Operators type it into the CLI (``rbl requests deny TOKEN``), where a
    leading "-" reads as an option: about one token in 64 would be refused.
    """
    while True:
        token = secrets.token_urlsafe(24)
        if not token.startswith("-"):
            return token


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
) -> RemovalRequest:
    """Ask to remove the listing that makes ``key`` listed in ``zone``.

    Returns the pending request for that listing if there already is one.
    With ``self_service_period`` the listing is removed at once, unless a
    self-service removal of it was already granted within the period.
    """
    message = message.strip()
    if not message:
        raise RequestError("say why the listing should be removed")
    if len(message) > MAX_MESSAGE:
        raise RequestError(f"the message is longer than {MAX_MESSAGE} characters")
    covering = covering_listings(conn, zone, key)
    if not covering:
        raise NotListedError(f"{key.text} is not listed in {zone}")
    listing_key = covering[0].key
    pending = conn.execute(
        select(removal_requests).where(
            removal_requests.c.zone == zone,
            removal_requests.c.key == listing_key,
            removal_requests.c.state == PENDING,
        )
    ).first()
    if pending is not None:
        return _request(pending)
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
    if self_service_period is not None and _self_service_allowed(
        conn, zone, listing_key, now - self_service_period
    ):
        return _decide(
            conn,
            token,
            approve=True,
            actor=SELF_SERVICE_ACTOR,
            message="removed by self-service",
            now=now,
            self_service=True,
        )
    return _get(conn, token)


def _self_service_allowed(conn: Connection, zone: str, key: str, since: datetime) -> bool:
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
    conn: Connection, state: str | None = PENDING, limit: int = 100
) -> list[RemovalRequest]:
    query = select(removal_requests).order_by(removal_requests.c.created_at, removal_requests.c.id)
    if state is not None:
        query = query.where(removal_requests.c.state == state)
    return [_request(row) for row in conn.execute(query.limit(limit))]


def approve_request(
    conn: Connection, token_or_id: str, *, actor: str, message: str, now: datetime
) -> RemovalRequest:
    return _decide(conn, token_or_id, approve=True, actor=actor, message=message, now=now)


def deny_request(
    conn: Connection, token_or_id: str, *, actor: str, message: str, now: datetime
) -> RemovalRequest:
    if not message.strip():
        raise RequestError("a denial needs a message for the requester")
    return _decide(conn, token_or_id, approve=False, actor=actor, message=message, now=now)


def _decide(
    conn: Connection,
    token_or_id: str,
    *,
    approve: bool,
    actor: str,
    message: str,
    now: datetime,
    self_service: bool = False,
) -> RemovalRequest:
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
    return _get(conn, request.token)
