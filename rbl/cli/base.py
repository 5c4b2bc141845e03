"""The ``rbl`` command group, its context object and the helpers commands share.

Every command that changes the list goes through rbl.store, which writes the
audit log and the change log in the same transaction; a running server picks
the change up from the change log within its poll interval.
"""

from __future__ import annotations

import getpass
import os
from dataclasses import dataclass, field
from typing import Any

import click

from rbl.config import Settings, ZoneSettings, load_settings
from rbl.errors import (
    KeyFormatError,
    RblError,
    ZoneError,
)
from rbl.keys import ListingKey, ZoneKind, parse_key

DEFAULT_CONFIG = "/etc/rbl/rbl.toml"


@dataclass
class Context:
    config_path: str
    database_url: str | None
    actor: str
    _settings: Settings | None = field(default=None, repr=False)
    _engine: Any = field(default=None, repr=False)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            self._settings = load_settings(self.config_path, self.database_url)
        return self._settings

    def engine(self) -> Any:
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
        if zone_name:
            return self.settings.zone(zone_name)
        zones = self.settings.zones
        if key_text is not None:
            kind = ZoneKind.IP if _looks_like_ip(key_text) else ZoneKind.DOMAIN
            zones = tuple(z for z in zones if z.kind is kind)
        if len(zones) == 1:
            return zones[0]
        names = ", ".join(z.name for z in zones) or "none"
        raise ZoneError(f"give --zone: more than one zone could hold it ({names})")


def _looks_like_ip(text: str) -> bool:
    head = text.split("/", 1)[0]
    return ":" in head or head.replace(".", "").isdigit()


def _key_for(zone: ZoneSettings, text: str) -> ListingKey:
    try:
        return parse_key(zone.kind, text)
    except KeyFormatError as exc:
        raise KeyFormatError(f"{exc} (zone {zone.name} lists {zone.kind.value} keys)") from exc


class RblGroup(click.Group):
    """Turns rbl's own errors into a one-line message and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except RblError as exc:
            raise click.ClickException(str(exc)) from exc


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
    help="SQLAlchemy URL overriding [database] url.",
)
@click.option(
    "--actor",
    envvar="RBL_ACTOR",
    default=None,
    help="Name recorded in the audit log (default: your login).",
)
@click.version_option(package_name="rbl")
@click.pass_context
def main(ctx: click.Context, config_path: str, database_url: str | None, actor: str | None) -> None:
    """rbl: an authoritative DNSBL/RHSBL server."""
    ctx.obj = Context(config_path, database_url, actor or _login())


def _login() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid{os.getuid()}"


pass_context = click.make_pass_decorator(Context)
