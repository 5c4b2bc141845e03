"""The parameter types and options several commands share.

Bad input is a usage error (exit 2) naming the option, before any database is opened.
An option written once here (``--zone``, ``--reason``, ``--yes``, ``--limit``, a bounded
number of seconds) reads the same in every command's ``--help``. ``Text`` lives in
rbl.cli.base beside the control-character check it applies, since the group's own
``--actor`` is one.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, TypeVar

import click

from rbl.cli.base import Text
from rbl.model.text import REQUEST_TOKEN

F = TypeVar("F", bound=Callable[..., Any])  # a command function, as click's decorators take


class RequestRef(click.ParamType[str]):
    """A removal request's number (as ``rbl requests list`` shows) or its public token."""

    name = "request"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if text.isascii() and text.isdigit():
            if len(text) > 18 or int(text) == 0:
                self.fail(f"{text[:30]!r} is not a request number (1 to 18 digits)", param, ctx)
            return str(int(text))
        if not REQUEST_TOKEN.fullmatch(text):
            self.fail(
                f"{text[:40]!r} is neither a request number nor a request token "
                "(16-64 letters, digits, '-' or '_')",
                param,
                ctx,
            )
        return text


class Seconds(click.ParamType[float]):
    """A finite number of seconds within bounds (click's FloatRange lets NaN through)."""

    name = "seconds"

    def __init__(self, low: float, high: float) -> None:
        self.low = low
        self.high = high

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        try:
            seconds = float(value)
        except (TypeError, ValueError):
            self.fail(f"{value!r} is not a number of seconds", param, ctx)
        if not math.isfinite(seconds) or not self.low <= seconds <= self.high:
            self.fail(f"{value!r} is outside {self.low:g} to {self.high:g} seconds", param, ctx)
        return seconds


REASON = Text(1000)
LIMIT = click.IntRange(1, 100_000)


def zone_option(help: str | None = None) -> Callable[[F], F]:
    """``--zone``: the zone a KEY is in; left out, the only zone that can hold it."""
    return click.option("--zone", default=None, help=help)


def reason_option(help: str | None = "Why, for the audit log.") -> Callable[[F], F]:
    """``--reason``, required: every change to the list says why in the audit log."""
    return click.option("--reason", required=True, type=REASON, help=help)


def yes_option() -> Callable[[F], F]:
    """``--yes``: a destructive command asks first, unless told not to."""
    return click.option("--yes", is_flag=True, help="Do not ask for confirmation.")


def limit_option(default: int, help: str | None = None) -> Callable[[F], F]:
    """``--limit``: at most this many rows shown."""
    return click.option("--limit", default=default, show_default=True, type=LIMIT, help=help)


def bounded_option(
    *names: str, type: click.ParamType[Any], default: float, help: str
) -> Callable[[F], F]:
    """An option taking a number within bounds (``Seconds``, ``click.IntRange``), its
    default shown in ``--help``."""
    return click.option(*names, type=type, default=default, show_default=True, help=help)
