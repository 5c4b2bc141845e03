"""The ``rbl`` command group and its context object: the settings, the engine and the actor
every command is run with, and the ``Text`` type of its ``--actor`` (commands use it too).

Every command that changes the list goes through rbl.store, which writes the
audit log and the change log in the same transaction; a running server picks
the change up from the change log within its poll interval.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import click

from rbl.cli.output import safe
from rbl.config import Settings, ZoneSettings, load_settings
from rbl.errors import RblError, ZoneError
from rbl.model.guess import guess_kind
from rbl.model.keys import ZoneKind
from rbl.model.text import describe_character, forbidden_character

if TYPE_CHECKING:
    from rbl.store.database import Engine

DEFAULT_CONFIG = "/etc/rbl/rbl.toml"


@dataclass
class Context:
    config_path: str
    database_url: str | None
    actor: str
    _settings: Settings | None = field(default=None, repr=False)
    _engine: Engine | None = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_path, self.database_url)
        return self._settings

    def engine(self) -> Engine:
        """One engine per command, disposed when the command ends (no pooled connections
        left behind when commands run in-process, as under CliRunner)."""
        if self._engine is None:
            from rbl.store.database import open_engine

            self._engine = open_engine(self.settings.database.url)
            context = click.get_current_context(silent=True)
            if context is not None:
                context.call_on_close(self._dispose)
        return self._engine

    def _dispose(self) -> None:
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def pick_zone(self, zone_name: str | None, key_text: str | None = None) -> ZoneSettings:
        """The named zone, or the only zone that can hold this kind of key."""
        if zone_name is not None and not zone_name.strip():
            raise ZoneError("--zone is empty: give a zone name, or leave --zone out")
        if zone_name:
            return self.settings.zone(zone_name)
        zones = self.settings.zones
        if key_text is not None:
            kind = guess_kind(key_text.strip())
            zones = tuple(z for z in zones if z.kind is kind)
            if not zones:
                raise ZoneError(
                    f"{key_text[:100]!r} reads as {_KIND_NAMES[kind]} and no zone lists "
                    f"{kind.value} keys: give --zone"
                )
        if len(zones) == 1:
            return zones[0]
        names = ", ".join(z.name for z in zones) or "none"
        raise ZoneError(f"give --zone: more than one zone could hold it ({names})")


_KIND_NAMES = {ZoneKind.IP: "an IP address or network", ZoneKind.DOMAIN: "a domain name"}


# -- parameter types: bad input is a usage error (exit 2) naming the option ----------------


class Text(click.ParamType[str]):
    """Free text for the audit log or a person: no control characters, not empty, bounded."""

    name = "text"

    def __init__(
        self, max_length: int = 1000, *, multiline: bool = False, allow_empty: bool = False
    ) -> None:
        self.max_length = max_length
        self.allowed = "\t\n" if multiline else ""
        self.allow_empty = allow_empty

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if not text.strip() and not self.allow_empty:
            self.fail("must not be empty", param, ctx)
        if len(text) > self.max_length:
            self.fail(f"has {len(text)} characters; at most {self.max_length}", param, ctx)
        bad = forbidden_character(text, self.allowed)
        if bad is not None:
            self.fail(f"{text[:40]!r} contains {describe_character(bad)}", param, ctx)
        return text


class RblGroup(click.Group):
    """Turns rbl's own errors into a one-line message and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RblError as exc:  # messages quote input and stored text: escaped
            raise click.ClickException(safe(str(exc), keep="\t\n")) from exc


@click.group(cls=RblGroup)
@click.option(
    "-c",
    "--config",
    "config_path",
    envvar="RBL_CONFIG",
    default=DEFAULT_CONFIG,
    show_default=True,
    help="TOML configuration file.",
)
@click.option(
    "--database",
    "database_url",
    envvar="RBL_DATABASE_URL",
    default=None,
    help="SQLAlchemy URL overriding [database] url (prefer RBL_DATABASE_URL for one with a "
    "password: any local user can read a command line).",
)
@click.option(
    "--actor",
    envvar="RBL_ACTOR",
    default=None,
    type=Text(200),
    help="Name recorded in the audit log (default: your login).",
)
@click.version_option(package_name="rbl")
@click.pass_context
def main(ctx: click.Context, config_path: str, database_url: str | None, actor: str | None) -> None:
    """rbl: an authoritative DNSBL/RHSBL server."""
    restrict_umask()
    ctx.obj = Context(config_path, database_url, actor or _login())


UMASK = 0o027


def restrict_umask() -> None:
    """Files rbl creates are never writable by the group nor readable by others (SQLite
    journals, logs, temporary files): an umask of at least 027, kept stricter if it was.
    Files meant for others (the public dumps) set their own mode."""
    os.umask(os.umask(UMASK) | UMASK)


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid{os.getuid()}"


pass_context = click.make_pass_decorator(Context)
