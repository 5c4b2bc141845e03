"""``rbl dump`` options against ``[dumps]``: the configured gzip level is used unless
``--gzip-level`` is given (regression: the CLI passed its own default of 6)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from rbl.cli import main
from rbl.dumps import writer
from tests.support.dump_seed import NOW

CONFIG = """\
[database]
url = "sqlite:///{directory}/rbl.sqlite"

[[zones]]
name = "bl.example.org"
kind = "ip"
ns = ["ns1.example.org"]

[dumps]
directory = "{directory}/dumps"
gzip_level = {level}
"""


def run_dump(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *args: str) -> int:
    """The gzip level ``rbl dump`` hands the writer for a configuration with level 9."""
    seen: dict[str, Any] = {}

    def fake(settings: Any, reader: Any, directory: Path, now: Any, **kwargs: Any) -> Any:
        seen.update(kwargs)
        return writer.DumpReport(Path(directory), NOW, 0.0, ())

    monkeypatch.setattr(writer, "write_dumps", fake)
    config = tmp_path / "rbl.toml"
    config.write_text(CONFIG.format(directory=tmp_path, level=9))
    result = CliRunner().invoke(main, ["-c", str(config), "dump", *args])
    assert result.exit_code == 0, result.output
    level: int = seen["gzip_level"]
    return level


def test_dump_uses_the_configured_gzip_level(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_dump(tmp_path, monkeypatch) == 9


def test_dump_gzip_level_option_wins_over_the_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert run_dump(tmp_path, monkeypatch, "--gzip-level", "2") == 2
