"""The whole file: TOML read once, every table through rbl.config.fields, into Settings.

Settings is what ``rbl serve`` and every command start from; each part of rbl then
gets only its own section. What spans tables is read here: the zones (at least one,
no name twice), [listing]'s zone names, and paths relative to the file.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rbl.config.fields import keys_of, only, read_section, table
from rbl.config.secondaries import check_secondaries
from rbl.config.sections import (
    DatabaseSettings,
    DumpSettings,
    ListingSettings,
    PolicyFeedSettings,
    Settings,
    TransferSettings,
    check_listing,
    resolve_directory,
    trap_zones,
)
from rbl.config.zones import ZoneSettings, read_zone
from rbl.errors import ConfigError


def load_settings(path: str | os.PathLike[str], database_url: str | None = None) -> Settings:
    """Read and check a TOML file; ``database_url`` (e.g. from the CLI) overrides the file."""
    source = Path(path)
    try:
        with source.open("rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read configuration {source}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source} is not valid TOML: {exc}") from exc
    return parse_settings(data, source=source, database_url=database_url)


def parse_settings(
    data: Mapping[str, Any], *, source: Path, database_url: str | None = None
) -> Settings:
    where = str(source)
    only(data, keys_of(Settings), where)
    written = read_section(DatabaseSettings, table(data, "database", where), f"{where} [database]")
    # A URL from the command line is relative to where the command runs.
    url = (
        _resolve_sqlite(database_url, Path.cwd())
        if database_url
        else _resolve_sqlite(written.url, source.parent)
    )
    zones = _zones(data, where)
    dumps = read_section(DumpSettings, table(data, "dumps", where), f"{where} [dumps]")
    given = {
        "database": DatabaseSettings(url),
        "zones": zones,
        "listing": _listing(data, zones, where),
        "policy_feed": _policy_feed(data, where),
        "dumps": resolve_directory(dumps, source.parent),
        "transfer": _transfer(data, where),
        "source": where,
    }
    return read_section(Settings, data, where, given=given)


def _listing(
    data: Mapping[str, Any], zones: tuple[ZoneSettings, ...], where: str
) -> ListingSettings:
    listing = table(data, "listing", where)
    where = f"{where} [listing]"
    only(listing, keys_of(ListingSettings), where)
    picked = trap_zones(listing, zones, where)
    return check_listing(read_section(ListingSettings, listing, where, given=picked), where)


def _transfer(data: Mapping[str, Any], where: str) -> TransferSettings:
    where = f"{where} [transfer]"
    transfer = read_section(TransferSettings, table(data, "transfer", where), where)
    return check_secondaries(transfer, where)


def _policy_feed(data: Mapping[str, Any], where: str) -> PolicyFeedSettings:
    feeds = table(data, "feeds", where)
    where = f"{where} [feeds]"
    only(feeds, {"policy"}, where)
    return read_section(PolicyFeedSettings, table(feeds, "policy", where), f"{where}.policy")


def _zones(data: Mapping[str, Any], where: str) -> tuple[ZoneSettings, ...]:
    zones_data = data.get("zones")
    if not isinstance(zones_data, list) or not zones_data:
        raise ConfigError(f"{where}: at least one [[zones]] table is required")
    zones = tuple(read_zone(z, f"{where} [[zones]] #{i + 1}") for i, z in enumerate(zones_data))
    names = [zone.name for zone in zones]
    for zone in zones:
        if names.count(zone.name) > 1:
            raise ConfigError(f"{where}: zone {zone.name!r} is defined twice")
    return zones


def _resolve_sqlite(url: str, base: Path) -> str:
    """Relative SQLite paths are relative to the configuration file, not the working dir."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/"):
        rest = url[len(prefix) :]
        if rest and not rest.startswith(":memory:"):
            return prefix + str((base / rest).resolve())
    return url
