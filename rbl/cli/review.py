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


@requests.command("list")
@click.option(
    "--state",
    type=click.Choice(["pending", "approved", "denied", "all"]),
    default="pending",
    show_default=True,
)
@click.option("--limit", default=100, show_default=True, type=LIMIT)
@pass_context
def requests_list(obj: Context, state: str, limit: int) -> None:
    from rbl.store.requests import list_requests

    with obj.engine().connect() as conn:
        found = list_requests(conn, None if state == "all" else state, limit)
    for request in found:
        first_line = (request.message.splitlines() or [""])[0][:60]
        echo(
            f"{request.id}\t{request.state}\t{request.zone}\t{request.key}\t"
            f"{request.created_at:%Y-%m-%d %H:%M}Z\t{safe(first_line)}"
        )


@requests.command("show")
@click.argument("request_id", type=RequestRef())
@pass_context
def requests_show(obj: Context, request_id: str) -> None:
    """Show a request (by number or token) with the listing's evidence."""
    from rbl.store.requests import RequestError, get_request

    with obj.engine().connect() as conn:
        request = get_request(conn, request_id)
    if request is None:
        raise RequestError(f"no removal request {request_id!r}")
    _print_request(request)


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
    """Approve: the listing is removed and DNS follows within a second."""
    from rbl.store.listings import now_utc
    from rbl.store.requests import approve_request

    with obj.engine().begin() as conn:
        request = approve_request(conn, request_id, actor=obj.actor, message=message, now=now_utc())
    echo(f"approved request {request.id}: {request.key} delisted from {request.zone}")


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
    from rbl.store.listings import now_utc
    from rbl.store.requests import deny_request

    with obj.engine().begin() as conn:
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
