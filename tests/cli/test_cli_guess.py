"""Keys typed without --zone go to the zone the site would look them up in (rbl.model.guess).

"1234" used to be an IP key to the CLI (and fail to parse) while the site
took it as a domain name; a lone surrogate used to be refused only by the CLI.
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result

from rbl.cli import main
from tests.support.config import write_config


def invoke(config: Path, *args: str) -> Result:
    return CliRunner().invoke(main, ["-c", str(config), "--actor", "alice", *args])


def test_1234_is_a_domain_key_to_the_cli_as_to_the_site(tmp_path: Path) -> None:
    """Without --zone, "1234" goes to the domain zone, as the site's lookup does: it is refused
    there by name (a bare label is a public suffix), not parsed as an IP address and failed."""
    config = write_config(tmp_path)
    added = invoke(config, "list", "add", "1234", "--reason", "typed without --zone")
    assert added.exit_code == 1, added.output
    assert "'1234' is a public suffix" in added.output
    assert "not an IP address" not in added.output and "ip keys" not in added.output
    shown = invoke(config, "show", "1234")  # exit 1: nothing listed
    assert "1234: no listing in dbl.example.org" in shown.output, shown.output


def test_a_key_no_zone_can_hold_is_an_error_naming_it(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    text = config.read_text()
    config.write_text(text[: text.index('[[zones]]\nname = "dbl.example.org"')])
    refused = invoke(config, "list", "add", "1234", "--reason", "x")
    assert refused.exit_code == 1, refused.output
    assert "'1234' reads as a domain name and no zone lists domain keys" in refused.output
    assert "Traceback" not in refused.output


def test_a_lone_surrogate_is_refused_by_name(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    refused = invoke(config, "list", "add", "192.0.2.1", "--reason", "r\ud800r")
    assert refused.exit_code == 2, refused.output
    assert "the lone surrogate U+D800" in refused.output
    key = invoke(config, "list", "add", "\ud800.example", "--reason", "x")
    assert key.exit_code == 1 and "Traceback" not in key.output, key.output
    assert invoke(config, "list", "show").output.count("example") == 0
