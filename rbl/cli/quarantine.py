"""``rbl quarantine ...``: the lines ingest and the live feed set aside, and feeding them again.

A kept line is sender-controlled text: everything printed from it goes
through ``shown`` (``rbl.cli.output.safe``), so control characters, ANSI
escapes, bidi marks and bytes that are not UTF-8 reach the terminal as
visible escapes, never as effects.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import click

from rbl.cli.base import Context, pass_context
from rbl.cli.options import limit_option, reason_option
from rbl.cli.output import echo, safe
from rbl.errors import StoreError

if TYPE_CHECKING:
    from rbl.store.evidence import BatchResult

STATE_CHOICE = click.Choice(["new", "refed", "dropped", "all"])


def shown(text: str | bytes | None) -> str:
    """``text`` safe for a terminal (``rbl.cli.output.safe``); bytes that are not UTF-8
    become ``\\xNN`` escapes."""
    if text is None:
        return ""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "surrogateescape")
    return safe(text)


@click.group(name="quarantine")
def quarantine_group() -> None:
    """Lines that could not be parsed or stored: kept, listed, fed again after a fix."""


@quarantine_group.command(name="list")
@click.option("--state", type=STATE_CHOICE, default="new", show_default=True)
@click.option("--source", default=None, help="Only lines from this file (as ingest named it).")
@limit_option(100)
@pass_context
def list_command(obj: Context, state: str, source: str | None, limit: int) -> None:
    """Kept lines, oldest first: id, state, where from, and why."""
    from rbl.store.quarantine import count_by_state, list_quarantined

    with obj.engine().connect() as conn:
        rows = list_quarantined(
            conn, state=None if state == "all" else state, source=source, limit=limit
        )
        counts = count_by_state(conn)
    for row in rows:
        echo(f"{row.id}  {row.state}  {_where(row)}  {shown(row.reason)}")
    summary = ", ".join(f"{state}: {count}" for state, count in sorted(counts.items()))
    echo(f"{len(rows)} shown; in the quarantine: {summary or 'nothing'}")


@quarantine_group.command(name="show")
@click.argument("row_id", metavar="ID", type=click.IntRange(1))
@pass_context
def show_command(obj: Context, row_id: int) -> None:
    """One kept line in full, escaped."""
    from rbl.store.quarantine import get_quarantined

    with obj.engine().connect() as conn:
        (row,) = get_quarantined(conn, [row_id])
    echo(f"id: {row.id}")
    echo(f"state: {row.state}")
    echo(f"set aside: {row.at:%Y-%m-%d %H:%M:%S}Z")
    if row.refed_at is not None:
        echo(f"refed: {row.refed_at:%Y-%m-%d %H:%M:%S}Z")
    echo(f"format: {row.format}" + (f"  feed: {shown(row.feed)}" if row.feed else ""))
    echo(f"from: {_where(row)}")
    echo(f"reason: {shown(row.reason)}")
    line = bytes(row.line).rstrip(b"\r\n")
    echo(f"line: {shown(line)}")
    if row.hit is not None:
        echo(f"hit: {shown(row.hit)}")


@quarantine_group.command(name="refeed")
@click.argument("row_ids", metavar="[ID]...", nargs=-1, type=click.IntRange(1))
@click.option("--all", "every", is_flag=True, help="Every line still quarantined.")
@click.option(
    "--format",
    "format_name",
    default=None,
    help="Parse as this format instead of the one it was read as (auto: the one the "
    "line is recognised as).",
)
@pass_context
def refeed_command(
    obj: Context, row_ids: tuple[int, ...], every: bool, format_name: str | None
) -> None:
    """Parse kept lines again with the current parser and store their hits.

    A line that still fails stays quarantined with the new reason.
    """
    from rbl.feeds.parsers import get_parser
    from rbl.feeds.refeed import Refeeder
    from rbl.feeds.retry import Retrier, RetryPolicy
    from rbl.store.feedwriter import HitWriter
    from rbl.store.quarantine import get_quarantined, list_quarantined
    from rbl.store.schema import QUARANTINED

    if every == bool(row_ids):
        raise click.UsageError("give the ids of the lines to feed again, or --all")
    if format_name not in (None, "auto"):
        get_parser(format_name)  # an unknown format is an error before anything is done
    engine = obj.engine()

    def rows() -> Iterator[Any]:
        if not every:
            with engine.connect() as conn:
                yield from get_quarantined(conn, list(row_ids))
            return
        after = 0
        while True:  # a page at a time: the quarantine may be large
            with engine.connect() as conn:
                page = list_quarantined(conn, limit=500, after=after)
            if not page:
                return
            yield from page
            after = page[-1].id

    retrier = Retrier(RetryPolicy(), lambda line: echo(f"rbl quarantine: {line}", err=True))
    refeeder = Refeeder(HitWriter(engine, obj.settings), retrier)
    stored = failed = 0
    listed: list[str] = []
    for row in rows():
        if row.state != QUARANTINED:
            echo(f"{row.id}: {row.state}, not quarantined; left as it is", err=True)
            continue
        result, reason = refeeder.refeed(row, format_name)
        if reason is None:
            stored += 1
            listed.extend(result.listed)
            echo(f"{row.id}: stored ({_actions(result)})")
        else:
            failed += 1
            echo(f"{row.id}: still quarantined: {shown(reason)}", err=True)
    for key in listed:
        echo(f"listed: {key}")
    echo(f"refed: {stored}  still quarantined: {failed}")


@quarantine_group.command(name="drop")
@click.argument("row_id", metavar="ID", type=click.IntRange(1))
@reason_option("Why, for the audit log (required).")
@pass_context
def drop_command(obj: Context, row_id: int, reason: str) -> None:
    """Give up on a kept line: it stays in the store, marked dropped; audited."""
    from rbl.store.listings import now_utc
    from rbl.store.quarantine import drop_quarantined, get_quarantined

    with obj.engine().begin() as conn:
        (row,) = get_quarantined(conn, [row_id])
        if not drop_quarantined(conn, row, actor=obj.actor, reason=reason, now=now_utc()):
            raise StoreError(f"quarantined line {row_id} is {row.state}, not quarantined")
    echo(f"dropped {row_id}")


def _where(row: Any) -> str:  # a row of rbl.store.quarantine (a SQLAlchemy Row)
    """file:line (byte N), or the live feed."""
    if row.line_number is None:
        return shown(row.source)
    return f"{shown(row.source)}:{row.line_number} (byte {row.offset})"


def _actions(result: BatchResult) -> str:
    return ", ".join(f"{k}: {v}" for k, v in sorted(result.actions.items())) or "no hits"
