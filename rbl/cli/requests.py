"""``rbl requests ...``: review the removal requests listed parties sent from the site.

Every request is kept, several per listing; approving one removes the listing and
closes the others pending for it. A requester's email and message are their own
text, printed escaped; an answer goes back to them, so no trap may be named in it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import click

from rbl.cli.base import Context, Text, pass_context
from rbl.cli.keys import zone_and_key
from rbl.cli.options import F, RequestRef, limit_option, zone_option
from rbl.cli.output import echo, safe

if TYPE_CHECKING:
    from rbl.store.requests import RemovalRequest


@click.group()
def requests() -> None:
    """Review removal requests from listed parties."""


def _print_request(request: RemovalRequest) -> None:
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


def _request_line(request: RemovalRequest) -> str:
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
@zone_option("The zone of --key (default: the only one fitting).")
@limit_option(100)
@pass_context
def requests_list(obj: Context, state: str, key: str | None, zone: str | None, limit: int) -> None:
    """Requests, oldest first; every one is kept, several per listing."""
    from rbl.store.requests import list_requests

    listing = None
    if key is not None:
        zone_settings, parsed = zone_and_key(obj, zone, key)
        listing = (zone_settings.name, parsed.text)
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


def _message_option(help: str) -> Callable[[F], F]:
    """``--message``, required: the answer the requester is shown. It may be blank here:
    an approval needs none, and the store refuses a blank denial with its own message."""
    return click.option(
        "--message", required=True, type=Text(4000, multiline=True, allow_empty=True), help=help
    )


@requests.command("approve")
@click.argument("request_id", type=RequestRef())
@_message_option("Answer shown to the requester.")
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
@_message_option("Why, shown to the requester.")
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
