"""``rbl traps ...``: the spamtrap definitions."""

from __future__ import annotations

from typing import BinaryIO

import click

from rbl.cli.base import Context, Text, pass_context
from rbl.cli.lines import entry_lines, refuse_bad_lines, source_name
from rbl.cli.options import reason_option
from rbl.cli.output import echo, safe
from rbl.errors import KeyFormatError


@click.group()
def traps() -> None:
    """Define the spamtrap addresses and domains hits are matched against."""


@traps.command("add")
@click.argument("traps_given", metavar="TRAP...", nargs=-1, required=True)
@click.option(
    "--note", default=None, type=Text(1000), help="Where the trap came from, for the operator."
)
@pass_context
def traps_add(obj: Context, traps_given: tuple[str, ...], note: str | None) -> None:
    """Add traps: trap@example.org (one address) or @example.org (a whole domain)."""
    from rbl.model.traps import parse_trap
    from rbl.store.listings import now_utc
    from rbl.store.traps import import_traps

    specs = [parse_trap(text) for text in traps_given]
    with obj.engine().begin() as conn:
        added, present = import_traps(conn, specs, note=note, actor=obj.actor, now=now_utc())
    echo(f"traps: {added} added, {present} already active")


@traps.command("remove")
@click.argument("trap")
@reason_option()
@pass_context
def traps_remove(obj: Context, trap: str, reason: str) -> None:
    """Stop treating TRAP as a trap (its evidence is kept)."""
    from rbl.model.traps import parse_trap
    from rbl.store.listings import now_utc
    from rbl.store.traps import remove_trap

    spec = parse_trap(trap)
    with obj.engine().begin() as conn:
        remove_trap(conn, spec, reason=reason, actor=obj.actor, now=now_utc())
    echo(f"removed trap {spec.text}")


@traps.command("list")
@click.option("--all", "include_inactive", is_flag=True, help="Include removed traps.")
@pass_context
def traps_list(obj: Context, include_inactive: bool) -> None:
    """List the traps (operator only: never publish these)."""
    from rbl.store.traps import trap_rows

    with obj.engine().connect() as conn:
        rows = trap_rows(conn)
    for spec, active, note, created in rows:
        if active or include_inactive:
            state = "active" if active else "removed"
            echo(f"{safe(spec.text)}\t{state}\t{created:%Y-%m-%d}\t{safe(note or '')}")


@traps.command("import")
@click.argument("source", type=click.File("rb"))
@click.option("--note", default=None, type=Text(1000))
@pass_context
def traps_import(obj: Context, source: BinaryIO, note: str | None) -> None:
    """Import traps from SOURCE, one per line ('#' comments); all or nothing."""
    from rbl.model.traps import parse_trap
    from rbl.store.listings import now_utc
    from rbl.store.traps import import_traps

    name = source_name(source)
    specs, errors = [], []
    for number, text in entry_lines(source):
        try:
            specs.append(parse_trap(text))
        except KeyFormatError as exc:
            errors.append(f"{name}:{number}: {exc}")
    refuse_bad_lines(errors)
    with obj.engine().begin() as conn:
        added, present = import_traps(conn, specs, note=note, actor=obj.actor, now=now_utc())
    echo(f"traps: {added} added, {present} already active")
