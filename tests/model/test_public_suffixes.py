"""Public suffixes and ``*.tld`` are refused as listings and allowlist entries, manual or not."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from rbl.cli import main
from rbl.config import load_settings
from rbl.model.keys import parse_domain_key
from rbl.model.suffixes import is_public_suffix, public_suffix_problem
from rbl.model.traphit import TrapHit
from rbl.model.traps import TrapMatcher, parse_trap
from rbl.policy.allowlist import Allowlist
from rbl.policy.listing import Rules
from rbl.store.database import open_engine
from rbl.store.evidence import record_hits
from rbl.store.listings import list_listings
from tests.support.config import database_url_of

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
REFUSED = ["*.com", "com", "*.co.uk", "co.uk", "*.blogspot.com", "github.io", "*.example", "uk."]
ACCEPTED = ["example.com", "*.example.co.uk", "spam.blogspot.com", "*.spam.example"]


def rbl(config: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["-c", str(config), "--actor", "t", *args])
    return result.exit_code, result.output


@pytest.mark.parametrize("key", REFUSED)
def test_list_add_refuses_a_public_suffix_naming_it(config_path: Path, key: str) -> None:
    code, output = rbl(
        config_path, "list", "add", key, "--zone", "dbl.example.org", "--reason", "x"
    )
    assert code == 1, output
    shown = key.rstrip(".")
    assert f"'{shown}' is a public suffix" in output, output
    if key.startswith("*."):
        assert "listing it would list every domain registered under" in output
    code, output = rbl(config_path, "allowlist", "add", key, "--reason", "x")
    assert code == 1 and f"'{shown}' is a public suffix" in output, output
    code, output = rbl(config_path, "list", "show", "--zone", "dbl.example.org")
    assert output == ""  # nothing was stored


def test_registered_domains_under_a_suffix_are_accepted(config_path: Path) -> None:
    for key in ACCEPTED:
        code, output = rbl(
            config_path, "list", "add", key, "--zone", "dbl.example.org", "--reason", "x"
        )
        assert code == 0, output
    code, output = rbl(config_path, "allowlist", "add", "*.good.co.uk", "--reason", "x")
    assert code == 0, output


def test_list_import_reports_every_public_suffix_line_and_imports_nothing(
    config_path: Path, tmp_path: Path
) -> None:
    source = tmp_path / "keys.txt"
    source.write_text("spam.example\n*.com\n# comment\n*.co.uk :127.0.1.3\nok.example.net\n")
    code, output = rbl(
        config_path,
        "list",
        "import",
        str(source),
        "--zone",
        "dbl.example.org",
        "--reason",
        "import",
    )
    assert code == 1
    assert "2 bad line(s), nothing imported" in output
    assert f"{source}:2: '*.com' is a public suffix wildcard" in output
    assert f"{source}:4: '*.co.uk' is a public suffix wildcard" in output
    code, output = rbl(config_path, "list", "show", "--zone", "dbl.example.org")
    assert output == ""


def test_a_trap_hit_never_lists_a_public_suffix_as_the_sender_domain(config_path: Path) -> None:
    """The forward-confirmed-name rule ties MAIL FROM a@co.uk to mail.foo.co.uk: no listing."""
    settings = load_settings(config_path)
    engine = open_engine(database_url_of(config_path))
    trap = parse_trap("trap@example.org")

    def hit(sender: str, ip: str) -> TrapHit:
        return TrapHit(
            at=NOW,
            client_ip=ip,
            rcpt_to="trap@example.org",
            mail_from=sender,
            helo="co.uk",
            feed="test",
            raw="raw",
            client_name="mail.foo.co.uk",
            stage="data",
        )

    try:
        with engine.begin() as conn:
            record_hits(
                conn,
                [hit("a@co.uk", "45.1.1.1"), hit("a@foo.co.uk", "45.1.1.2")],
                matcher=TrapMatcher([trap]),
                allow=Allowlist(),
                rules=Rules.from_settings(settings.listing),
                ip_zone=settings.zone("bl.example.org"),
                domain_zone=settings.zone("dbl.example.org"),
                now=NOW,
            )
        with engine.connect() as conn:
            keys = {row.key for row in list_listings(conn, "dbl.example.org", limit=100)}
    finally:
        engine.dispose()
    assert keys == {"foo.co.uk"}  # the control: the same rule lists a registered domain


def test_the_suffix_check_itself() -> None:
    assert is_public_suffix("com") and is_public_suffix("co.uk") and is_public_suffix("internal")
    assert is_public_suffix("blogspot.com")  # the private section counts too
    assert not is_public_suffix("example.com") and not is_public_suffix("foo.blogspot.com")
    assert public_suffix_problem(parse_domain_key("example.co.uk")) is None
    problem = public_suffix_problem(parse_domain_key("*.co.uk"), "allowlist entry")
    assert problem is not None and "allowlisting it would exempt every domain" in problem


def test_a_listing_made_before_the_check_can_still_be_shown_and_removed(
    config_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("rbl.store.listings.check_not_public_suffix", lambda key: None)
    code, output = rbl(
        config_path, "list", "add", "*.com", "--zone", "dbl.example.org", "--reason", "old"
    )
    assert code == 0, output
    monkeypatch.undo()
    code, output = rbl(config_path, "list", "show", "x.com", "--zone", "dbl.example.org")
    assert code == 0 and "key:      *.com" in output
    code, output = rbl(
        config_path,
        "list",
        "remove",
        "*.com",
        "--zone",
        "dbl.example.org",
        "--reason",
        "mistake",
        "--yes",
    )
    assert code == 0 and "removed *.com" in output, output
