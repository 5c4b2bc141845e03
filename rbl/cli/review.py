"""Delisting and removal requests: ``rbl delist``, ``rbl requests ...``, ``rbl audit``."""

from __future__ import annotations

from typing import Any

import click

from rbl.cli.base import (
    LIMIT,
    REASON,
    Context,
    RequestRef,
    Text,
    _key_for,
    main,
    pass_context,
)
from rbl.cli.output import echo, safe
from rbl.errors import NotListedError, ZoneError

# -- delisting and removal requests ------------------------------------------------------


@main.command()
@click.argument("key")
@click.option("--zone", default=None)
@click.option("--reason", required=True, type=REASON, help="Why, for the audit log (required).")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@pass_context
def delist(obj: Context, key: str, zone: str | None, reason: str, yes: bool) -> None:
    """Delist KEY now; only evidence newer than this can list it again."""
    from rbl.store.listings import covering_listings, now_utc, remove_listing

    zone_settings = obj.pick_zone(zone, key)
    parsed = _key_for(zone_settings, key)
    with obj.engine().begin() as conn:
        covering = covering_listings(conn, zone_settings.name, parsed)
        if not covering:
            raise NotListedError(f"{parsed.text} is not listed in {zone_settings.name}")
        target = covering[0]
        if target.key != parsed.text:
            raise ZoneError(
                f"{parsed.text} is listed through {target.key}; delist that, or allowlist "
                f"{parsed.text} (rbl allowlist add)"
            )
        if not yes:
            click.confirm(f"Delist {target.key} from {zone_settings.name}?", abort=True)
        remove_listing(
            conn, zone_settings.name, target.key, reason=reason, actor=obj.actor, now=now_utc()
        )
    echo(f"delisted {target.key} from {zone_settings.name}")


@main.group()
def requests() -> None:
    """Review removal requests from listed parties."""


def _print_request(request: Any) -> None:
    echo(f"request {request.id} ({request.token})")
    echo(f"  key:      {request.key} in {request.zone}")
    echo(f"  state:    {request.state}{' (self-service)' if request.self_service else ''}")
    echo(f"  from:     {safe(request.email or '-')} at {request.client_ip or '-'}")
    echo(f"  opened:   {request.created_at:%Y-%m-%d %H:%M:%S}Z")
    if request.decided_at is not None:
        echo(f"  decided:  {request.decided_at:%Y-%m-%d %H:%M:%S}Z by {safe(request.decided_by)}")
        echo(f"  answer:   {safe(request.decision_message or '')}")
    echo("  message:")
    for line in request.message.splitlines() or [""]:
        echo(f"    {safe(line)}")


def _request_line(request: Any) -> str:
    first_line = (request.message.splitlines() or [""])[0][:60]
    return (
        f"{request.id}\t{request.state}\t{request.zone}\t{request.key}\t"
        f"{request.created_at:%Y-%m-%d %H:%M}Z\t{safe(first_line)}"
    )


@requests.command("list")
@click.option(
    "--state",
    type=click.Choice(["pending", "approved", "denied", "closed", "all"]),
    default="pending",
    show_default=True,
)
@click.option("--key", default=None, type=Text(300), help="Only requests for this listing.")
@click.option("--zone", default=None, help="The zone of --key (default: the only one fitting).")
@click.option("--limit", default=100, show_default=True, type=LIMIT)
@pass_context
def requests_list(obj: Context, state: str, key: str | None, zone: str | None, limit: int) -> None:
    """Requests, oldest first; every one is kept, several per listing."""
    from rbl.store.requests import list_requests

    listing = None
    if key is not None:
        zone_settings = obj.pick_zone(zone, key)
        listing = (zone_settings.name, _key_for(zone_settings, key).text)
    with obj.engine().connect() as conn:
        found = list_requests(
            conn,
            None if state == "all" else state,
            limit,
            zone=listing[0] if listing else None,
            key=listing[1] if listing else None,
        )
    for request in found:
        echo(_request_line(request))


@requests.command("show")
@click.argument("request_id", type=RequestRef())
@pass_context
def requests_show(obj: Context, request_id: str) -> None:
    """Show a request (by number or token) and the other requests for its listing."""
    from rbl.store.requests import RequestError, get_request, list_requests

    with obj.engine().connect() as conn:
        request = get_request(conn, request_id)
        if request is None:
            raise RequestError(f"no removal request {request_id!r}")
        others = [
            other
            for other in list_requests(conn, None, 1000, zone=request.zone, key=request.key)
            if other.id != request.id
        ]
    _print_request(request)
    if others:
        echo(f"other requests for {request.key}:")
        for other in others:
            echo(_request_line(other))


@requests.command("approve")
@click.argument("request_id", type=RequestRef())
@click.option(
    "--message",
    required=True,
    type=Text(4000, multiline=True, allow_empty=True),
    help="Answer shown to the requester.",
)
@pass_context
def requests_approve(obj: Context, request_id: str, message: str) -> None:
    """Approve: the listing is removed (DNS follows within a second) and the other
    requests pending for it are closed with a note."""
    from rbl.store.listings import now_utc
    from rbl.store.requests import approve_request
    from rbl.store.traps import trap_filter

    with obj.engine().begin() as conn:
        trap_filter(conn).check(message, "--message (shown to the requester)")
        decision = approve_request(
            conn, request_id, actor=obj.actor, message=message, now=now_utc()
        )
    request = decision.request
    echo(f"approved request {request.id}: {request.key} delisted from {request.zone}")
    if decision.closed:
        ids = ", ".join(str(i) for i in decision.closed)
        plural = "" if len(decision.closed) == 1 else "s"
        echo(f"closed {len(decision.closed)} other request{plural} ({ids}) for {request.key}")


@requests.command("deny")
@click.argument("request_id", type=RequestRef())
@click.option(
    "--message",
    required=True,
    type=Text(4000, multiline=True, allow_empty=True),  # the store names a blank one
    help="Why, shown to the requester.",
)
@pass_context
def requests_deny(obj: Context, request_id: str, message: str) -> None:
    """Deny this request; the others for the same listing stay pending."""
    from rbl.store.listings import now_utc
    from rbl.store.requests import deny_request
    from rbl.store.traps import trap_filter

    with obj.engine().begin() as conn:
        trap_filter(conn).check(message, "--message (shown to the requester)")
        request = deny_request(conn, request_id, actor=obj.actor, message=message, now=now_utc())
    echo(f"denied request {request.id} for {request.key}")


@main.command()
@click.option("--key", default=None, type=Text(300), help="Only entries about this key.")
@click.option("--actor", "who", default=None, type=Text(200), help="Only entries by this actor.")
@click.option(
    "--action", default=None, type=Text(50), help="Only this action (list, unlist, allow, ...)."
)
@click.option("--limit", default=50, show_default=True, type=LIMIT)
@pass_context
def audit(obj: Context, key: str | None, who: str | None, action: str | None, limit: int) -> None:
    """Show the audit log, newest first: who changed what, when and why."""
    from rbl.store.queries import audit_entries

    with obj.engine().connect() as conn:
        entries = audit_entries(conn, key=key, actor=who, action=action, limit=limit)
    for entry in entries:
        where = safe(f"{entry.zone or '-'} {entry.key or '-'}")
        detail = f" [{safe(entry.detail)}]" if entry.detail else ""
        echo(
            f"{entry.at:%Y-%m-%d %H:%M:%S}Z\t{safe(entry.actor)}\t{safe(entry.action)}\t{where}\t"
            f"{safe(entry.reason or '')}{detail}"
        )
