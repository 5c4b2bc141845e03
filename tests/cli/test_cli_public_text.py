"""Operator text that the public sees is refused when it names a trap, on SQLite and PostgreSQL.

A removal request's answer is shown on its public status page, a listing's
TXT is answered to anyone who asks DNS and written to the dumps: ``rbl
requests approve|deny --message``, ``rbl list add --txt`` and ``rbl list
import`` refuse text naming any trap, active or retired, address or whole
domain, with an error that says which and why; clean text goes through.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from rbl.cli import main
from rbl.model.keys import ZoneKind, parse_key
from rbl.store.database import open_engine
from rbl.store.requests import open_request
from tests.support.config import database_url_of

HOSTILE = [
    "You mailed trap@example.org, so no.",
    "You mailed <TRAP@EXAMPLE.ORG>.",
    "Hits at trap+news@example.org.",
    "Every address at @abandoned.example is a trap.",
    "Sent to boss@abandoned.example",
    "Retired one: old@example.net",
]


def rbl(config: Path, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, ["-c", str(config), "--actor", "alice", *args], input=input)


@pytest.fixture
def store(config_path: Path) -> tuple[Path, str]:
    """Traps (one retired), a listing, and a pending removal request; returns its token."""
    for args in (
        ("traps", "add", "trap@example.org", "@abandoned.example", "old@example.net"),
        ("traps", "remove", "old@example.net", "--reason", "retired"),
        ("list", "add", "45.1.1.1", "--reason", "spam"),
    ):
        assert rbl(config_path, *args).exit_code == 0
    engine = open_engine(database_url_of(config_path))
    try:
        with engine.begin() as conn:
            request = open_request(
                conn,
                "bl.example.org",
                parse_key(ZoneKind.IP, "45.1.1.1"),
                message="Fixed.",
                email=None,
                client_ip="198.51.100.1",
                now=datetime.now(UTC),
                self_service_period=None,
            )
    finally:
        engine.dispose()
    return config_path, request.token


@pytest.mark.parametrize("verb", ["deny", "approve"])
def test_a_decision_message_naming_a_trap_is_refused(store: tuple[Path, str], verb: str) -> None:
    config, token = store
    for message in HOSTILE:
        result = rbl(config, "requests", verb, token, "--message", message)
        assert result.exit_code == 1, (message, result.output)
        assert "--message (shown to the requester) names the trap" in result.output
        assert "a trap must never be" in result.output
    shown = rbl(config, "requests", "show", token).output
    assert "state:    pending" in shown  # nothing was decided
    done = rbl(config, "requests", verb, token, "--message", "Thanks, the relay is closed.")
    assert done.exit_code == 0, done.output


def test_a_txt_naming_a_trap_is_refused(store: tuple[Path, str], tmp_path: Path) -> None:
    config, _ = store
    for text in HOSTILE:
        result = rbl(config, "list", "add", "45.2.2.2", "--txt", text, "--reason", "r")
        assert result.exit_code == 1, (text, result.output)
        assert "--txt names the trap" in result.output
    assert "45.2.2.2 is not listed" in rbl(config, "list", "show", "45.2.2.2").output
    source = tmp_path / "import.txt"
    source.write_text("45.3.3.3 :127.0.0.2:fine {url}\n45.4.4.4 :127.0.0.2:ask trap@example.org\n")
    result = rbl(config, "list", "import", str(source), "--zone", "bl.example.org", "--reason", "r")
    assert result.exit_code == 1
    assert "the TXT of 45.4.4.4 names the trap trap@example.org" in result.output
    assert "45.3.3.3 is not listed" in rbl(config, "list", "show", "45.3.3.3").output
    ok = rbl(config, "list", "add", "45.2.2.2", "--txt", "Spam trap hits: {url}", "--reason", "r")
    assert ok.exit_code == 0, ok.output
