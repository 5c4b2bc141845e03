"""No sender-controlled (or stored) text reaches the operator's terminal raw: every CLI
command escapes control characters, ANSI escape sequences and bidi controls."""

from __future__ import annotations

import ast
import io
import unicodedata
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from twisted.logger import Logger

from rbl.cli import main
from rbl.cli.output import log_observer, safe
from rbl.config import load_settings
from rbl.model.keys import parse_ip_key
from rbl.model.traphit import TrapHit
from rbl.model.traps import TrapMatcher, parse_trap
from rbl.policy.allowlist import Allowlist
from rbl.policy.listing import Rules
from rbl.store.allowlist import add_allowed
from rbl.store.database import open_engine
from rbl.store.evidence import record_hits
from rbl.store.listings import add_listing
from rbl.store.requests import open_request
from rbl.store.traps import add_trap
from tests.support.config import database_url_of
from tests.support.processes import REPO

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
# Clear the screen, retitle the window, return to column 0, reverse the text (bidi),
# an 8-bit CSI, backspace, DEL, zero-width and line-separator characters. (NUL and lone
# surrogates cannot be stored in PostgreSQL text; safe() is checked with them below.)
HOSTILE = (
    "\x1b[2J\x1b]0;owned\x07\rinnocent\u202egro.elpmaxe\u202c\u2066x\u2069"
    "\x9b31m\x08\x7f\u200b\u200e\u061c\ufeff\u2028"
)
UNSAFE = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})


def raw_characters(output: str) -> list[str]:
    """Characters a terminal could act on, other than the command's own tabs and newlines."""
    return [ch for ch in output if unicodedata.category(ch) in UNSAFE and ch not in "\t\n"]


@pytest.fixture
def hostile_store(config_path: Path) -> Iterator[dict[str, str]]:
    """A store whose every operator-visible text field carries HOSTILE."""
    settings = load_settings(config_path)
    engine = open_engine(database_url_of(config_path))
    zone = settings.zone("bl.example.org")
    trap = parse_trap("trap@example.org")
    hit = TrapHit(
        at=NOW,
        client_ip="45.33.12.11",
        rcpt_to="trap@example.org",
        mail_from=f"spam{HOSTILE}\n@spam.example",
        helo=f"helo{HOSTILE}\tforged",
        feed="test",
        raw=f"raw line {HOSTILE}",
        stage="data",
    )
    with engine.begin() as conn:
        add_trap(conn, trap, note=f"note {HOSTILE}", actor=f"actor{HOSTILE}", now=NOW)
        record_hits(
            conn,
            [hit],
            matcher=TrapMatcher([trap]),
            allow=Allowlist(),
            rules=Rules.from_settings(settings.listing),
            ip_zone=zone,
            domain_zone=None,
            now=NOW,
        )
        add_listing(
            conn,
            zone.name,
            parse_ip_key("192.0.2.9"),
            ("127.0.0.2",),
            txt=f"txt {HOSTILE} {{key}}",
            reason=f"reason {HOSTILE}",
            actor="t",
            now=NOW,
        )
        request = open_request(
            conn,
            zone.name,
            parse_ip_key("192.0.2.9"),
            message=f"please {HOSTILE}\nsecond line {HOSTILE}",
            email=f"me{HOSTILE}@example.net",
            client_ip="198.51.100.1",
            now=NOW,
            self_service_period=None,
        )
        add_allowed(conn, parse_ip_key("203.0.113.5"), reason=f"ok {HOSTILE}", actor="t", now=NOW)
    engine.dispose()
    yield {"request": str(request.id)}


COMMANDS = [
    ["show", "45.33.12.11"],
    ["show", "192.0.2.9"],
    ["list", "show"],
    ["list", "show", "--all"],
    ["list", "show", "192.0.2.9"],
    ["traps", "list", "--all"],
    ["requests", "list"],
    ["requests", "list", "--state", "all"],
    ["requests", "show", "{request}"],
    ["audit", "--limit", "100"],
    ["allowlist", "list"],
]


def test_no_command_prints_control_characters_raw(
    config_path: Path, hostile_store: dict[str, str]
) -> None:
    shown = 0
    for command in COMMANDS:
        args = [arg.format(**hostile_store) for arg in command]
        result = CliRunner().invoke(main, ["-c", str(config_path), *args])
        assert result.exit_code in (0, 1), (args, result.output)
        assert raw_characters(result.output) == [], (args, result.output)
        shown += result.output.count("\\x1b[2J")
        if args[0] == "show" and args[1] == "45.33.12.11":
            # HELO and MAIL FROM are shown, escaped, and cannot forge a line or a column.
            assert "helo=helo\\x1b[2J" in result.output
            assert "\\u202egro.elpmaxe\\u202c" in result.output
            assert "\\x0a@spam.example" in result.output and "\\x09forged" in result.output
    assert shown >= 8  # the hostile text was printed (escaped), not dropped


def test_error_messages_are_escaped(config_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["-c", str(config_path), "list", "show", "45.1.1.1\x1b[2J\u202e"]
    )
    assert result.exit_code != 0
    assert raw_characters(result.output) == [], result.output


def test_safe_escapes_every_terminal_control_and_keeps_plain_text() -> None:
    assert safe("mail.example.org [192.0.2.1] <a@b> ü ẞ 東京") == (
        "mail.example.org [192.0.2.1] <a@b> ü ẞ 東京"
    )
    assert safe("\x00\x1b[2J\r\n\t\x7f\x9b") == "\\x00\\x1b[2J\\x0d\\x0a\\x09\\x7f\\x9b"
    assert safe("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069") == (
        "\\u202a\\u202b\\u202c\\u202d\\u202e\\u2066\\u2067\\u2068\\u2069"
    )
    assert safe("\u200e\u200f\u061c\ufeff\u2028\u2029\U000e0001") == (
        "\\u200e\\u200f\\u061c\\ufeff\\u2028\\u2029\\U000e0001"
    )
    assert safe("bad\udcff byte") == "bad\\xff byte"  # a byte that was not UTF-8
    assert safe("a\tb\nc", keep="\t\n") == "a\tb\nc"


def test_every_cli_module_prints_through_the_escaping_echo() -> None:
    """A new command that calls click.echo or print directly would print raw text."""
    modules = sorted((REPO / "rbl" / "cli").glob("*.py"))
    offenders = []
    for module in modules:
        if module.name == "output.py":
            continue
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Call):
                func = node.func
                name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
                if name in ("print", "secho") or (
                    isinstance(func, ast.Attribute) and name == "echo"
                ):
                    offenders.append(f"{module.name}:{node.lineno}")
    assert offenders == []


def test_the_serve_log_is_escaped_too() -> None:
    """rbl serve logs a set-aside hit's raw line: it must not reach the terminal raw."""
    stream = io.StringIO()
    log = Logger(observer=log_observer(stream))
    log.warn("a trap hit cannot be stored and is set aside: {raw}", raw=f"raw {HOSTILE}")
    try:
        raise ValueError(f"boom {HOSTILE}")
    except ValueError:
        log.failure("failed")
    text = stream.getvalue()
    assert "set aside: raw \\x1b[2J" in text and "Traceback" in text
    assert raw_characters(text) == [], text
