"""The public site's database work: each call is one transaction on the site's engine.

rbl.web runs these in the database thread pool (never on the reactor
thread) and holds the engine only inside this object, so the web layer
imports no SQLAlchemy. Every read goes through rbl.store.public and
rbl.store.requests, which never select the trap address; the trap list is
read as a filter (rbl.store.traps.trap_filter) for the pages to be run
through before they are sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine

from rbl.model.keys import ListingKey
from rbl.policy.trapfilter import TrapFilter
from rbl.store.public import PublicStatus, public_status
from rbl.store.requests import (
    RemovalRequest,
    RequestLimits,
    get_request,
    open_request,
    self_service_review_reason,
)
from rbl.store.traps import trap_filter


@dataclass(frozen=True, slots=True)
class SiteRequest:
    """A removal request as the site's form sent it, and the rules it is opened under."""

    message: str
    email: str | None
    client_ip: str
    self_service_period: timedelta | None
    limits: RequestLimits


class SiteStore:
    """What the pages read and the one thing they write (a removal request)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def trap_filter(self) -> TrapFilter:
        """The trap list as a filter for the pages (blocking)."""
        with self.engine.begin() as conn:
            return trap_filter(conn)

    def statuses(
        self,
        zones: list[str],
        key: ListingKey,
        now: datetime,
        *,
        days: int,
        hourly: bool,
        trap_domains: bool,
    ) -> list[PublicStatus]:
        """The key's public status in each zone, in one transaction."""
        with self.engine.begin() as conn:
            return [
                public_status(
                    conn, zone, key, now=now, days=days, hourly=hourly, trap_domains=trap_domains
                )
                for zone in zones
            ]

    def form_status(
        self, zone: str, key: ListingKey, now: datetime, period: timedelta | None
    ) -> tuple[PublicStatus, str | None]:
        """The listing's status, and why self-service would not remove it at once (if so)."""
        with self.engine.begin() as conn:
            status = public_status(conn, zone, key, now=now, days=1)
            reason = (
                None
                if period is None or status.listing is None
                else self_service_review_reason(conn, zone, key, period=period, now=now)
            )
        return status, reason

    def open_request(
        self, zone: str, key: ListingKey, request: SiteRequest, now: datetime
    ) -> RemovalRequest:
        """Open a removal request (rbl.store.requests.open_request and its errors)."""
        with self.engine.begin() as conn:
            return open_request(
                conn,
                zone,
                key,
                message=request.message,
                email=request.email,
                client_ip=request.client_ip,
                now=now,
                self_service_period=request.self_service_period,
                limits=request.limits,
            )

    def get_request(self, token: str) -> RemovalRequest | None:
        with self.engine.begin() as conn:
            return get_request(conn, token)
