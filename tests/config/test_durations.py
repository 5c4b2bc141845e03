"""Durations are bounded where they are parsed: ``3000000d`` (or inf, NaN, 1e300) is a clear
error naming the setting or option, the value and the bound, never a crash at ingest."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from rbl.cli import main
from rbl.config import DAY, ConfigError, parse_settings
from tests.support.config import write_config
from tests.support.processes import rbl_command

ZONES = [{"name": "bl.example.org", "ns": ["ns1.example.org"]}]
SOURCE = Path("/etc/rbl/rbl.toml")

# (table path, setting, the bound the message names)
SETTINGS = [
    (("listing",), "duration", "3650d (10 years)"),
    (("listing",), "max_duration", "3650d (10 years)"),
    (("listing",), "window", "3650d (10 years)"),
    (("listing",), "expiry_interval", "1d"),
    (("delisting",), "self_service_period", "3650d (10 years)"),
    (("sync",), "keep_changes", "3650d (10 years)"),
    (("dumps",), "interval", "1w"),
]


def settings_with(path: tuple[str, ...], name: str, value: Any) -> dict[str, Any]:
    table: dict[str, Any] = {name: value}
    for part in reversed(path):
        table = {part: table}
    return {"zones": ZONES, **table}


@pytest.mark.parametrize(("path", "name", "bound"), SETTINGS)
def test_an_overlong_duration_setting_names_setting_value_and_bound(
    path: tuple[str, ...], name: str, bound: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(settings_with(path, name, "3000000d"), source=SOURCE)
    message = str(caught.value)
    assert f"[{path[0]}] {name}: '3000000d' is longer than the bound of {bound}" in message


@pytest.mark.parametrize("value", ["infd", "nand", "1e400s", float("inf"), float("nan"), 1e300])
def test_infinite_and_absurd_durations_are_refused(value: Any) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_settings(settings_with(("listing",), "duration", value), source=SOURCE)
    assert "[listing] duration:" in str(caught.value)


def test_the_bound_itself_is_accepted() -> None:
    data = {"zones": ZONES, "listing": {"duration": "3650d", "max_duration": "3650d"}}
    settings = parse_settings(data, source=SOURCE)
    assert settings.listing.max_duration == 3650 * DAY
    data = {"zones": ZONES, "feeds": {"policy": {"commit_timeout": "nans"}}}
    with pytest.raises(ConfigError, match=r"commit_timeout: 'nans' is not a finite duration"):
        parse_settings(data, source=SOURCE)


def test_ingest_with_an_overlong_duration_is_a_config_error_not_a_crash(tmp_path: Path) -> None:
    """Before: the file was accepted and ingest died on the first hit (date overflow)."""
    config = write_config(tmp_path)
    rbl_command(config, "traps", "add", "trap@example.org")
    listing = '[listing]\nduration = "3000000d"\nmax_duration = "3000000d"\n'
    config.write_text(config.read_text() + listing)
    log = tmp_path / "hits.jsonl"
    hit = {
        "time": datetime.now(UTC).isoformat(),
        "ip": "45.1.2.3",
        "helo": "h.example.net",
        "from": "a@spam.example",
        "to": "trap@example.org",
    }
    log.write_text(json.dumps(hit) + "\n")
    result = rbl_command(config, "ingest", "--format", "json", str(log), check=False)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert "[listing] duration: '3000000d' is longer than the bound of 3650d (10 years)" in (
        result.stderr
    )


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["db", "prune", "--keep", "3000000d"], "'3000000d' is longer than the bound of 3650d"),
        (["db", "prune", "--keep", "infd"], "'infd' is not a finite duration"),
        (["ingest", "--format", "json", "--poll", "nan", "-"], "'nan' is outside 0.01 to 3600"),
        (["ingest", "--format", "json", "--retry-for", "inf", "-"], "'inf' is outside 0 to"),
    ],
)
def test_cli_duration_options_are_bounded(tmp_path: Path, args: list[str], fragment: str) -> None:
    config = write_config(tmp_path)
    result = CliRunner().invoke(main, ["-c", str(config), *args])
    assert result.exit_code == 2, result.output
    assert fragment in result.output
