"""Every CLI command that takes input, fed bad input: a one-line error, no traceback, no change.

Table-driven: each case is a command line, the exit status it must end with
(2: a click usage error, 1: rbl refused it), and text the message must
contain that names the bad input. The store is seeded with a listing, a
trap, an allowlist entry and a removal request first, so a command that
wrongly acted would have something to change; every table is compared
before and after each case, on SQLite and PostgreSQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from rbl.cli import main
from rbl.model.keys import ZoneKind, parse_key
from rbl.store.database import open_engine
from rbl.store.requests import open_request
from rbl.store.schema import metadata
from tests.support.config import database_url_of
from tests.support.processes import rbl_command

TOKEN = "T" * 32  # not a request that exists
LONG = "r" * 1001


def invoke(config: Path, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, ["-c", str(config), "--actor", "alice", *args], input=input)


def snapshot(config: Path) -> dict[str, list[str]]:
    engine = open_engine(database_url_of(config))
    try:
        with engine.connect() as conn:
            return {
                table.name: sorted(repr(tuple(row)) for row in conn.execute(select(table)))
                for table in metadata.sorted_tables
            }
    finally:
        engine.dispose()


def seed(config: Path) -> None:
    for args in (
        ["list", "add", "192.0.2.0/24", "--reason", "seed"],
        ["list", "add", "spam.example", "--reason", "seed"],
        ["traps", "add", "trap@traps.example"],
        ["allowlist", "add", "198.51.100.1", "--reason", "seed"],
    ):
        result = invoke(config, *args)
        assert result.exit_code == 0, result.output
    engine = open_engine(database_url_of(config))
    try:
        with engine.begin() as conn:
            open_request(
                conn,
                "bl.example.org",
                parse_key(ZoneKind.IP, "192.0.2.7"),
                message="please",
                email=None,
                client_ip="203.0.113.9",
                now=datetime.now(UTC),
                self_service_period=None,
            )
    finally:
        engine.dispose()


def files(tmp: Path) -> dict[str, str]:
    """Import files with bad content; their paths stand in for {name} in the cases."""
    made = {
        "latin1": b"192.0.2.99\n\xe9t\xe9.example\n",
        "nul": b"192.0.2.99\n192.0.2.98\x00\n",
        "mixed": b"192.0.2.99\nnot a key\n",
        "manycodes": b"192.0.2.99\n192.0.2.98 :"
        + ",".join(f"127.0.0.{n}" for n in range(2, 103)).encode()
        + b"\n",
        "traps-latin1": b"new@traps.example\n\xff@x.example\n",
        "traps-bad": b"new@traps.example\nbad local@x.example\n",
    }
    paths = {}
    for name, data in made.items():
        path = tmp / f"{name}.txt"
        path.write_bytes(data)
        paths[name] = str(path)
    paths["missing"] = str(tmp / "absent.txt")
    paths["directory"] = str(tmp)
    return paths


# (command line, exit status, text the message must contain)
CASES: list[tuple[list[str], int, str]] = [
    # list add: keys, zones, codes, TXT templates, reasons
    (["list", "add", "192.0.2.1\x00", "--reason", "x"], 1, "192.0.2.1\\x00"),
    (["list", "add", "", "--reason", "x"], 1, "it is empty"),
    (["list", "add", "192.0.2.1/33", "--reason", "x"], 1, "192.0.2.1/33"),
    (["list", "add", "192.0.2.1/24", "--reason", "x"], 1, "192.0.2.1/24"),
    (["list", "add", "::/0", "--reason", "x"], 1, "wider than /16"),
    (["list", "add", "10.0.0.0/7", "--reason", "x"], 1, "wider than /8"),
    (["list", "add", "127.0.0.2", "--reason", "x"], 1, "RFC 5782 test address"),
    (["list", "add", "a" * 300 + ".example", "--reason", "x"], 1, "aaaaaaaa"),
    (["list", "add", "bad_-.exa mple", "--reason", "x"], 1, "bad_-.exa mple"),
    (["list", "add", "\udcff.example", "--reason", "x"], 1, ".example"),
    (["list", "add", "spam.example", "--zone", "bl.example.org", "--reason", "x"], 1, "ip keys"),
    (["list", "add", "192.0.2.1", "--zone", "nope.example", "--reason", "x"], 1, "'nope.example'"),
    (["list", "add", "192.0.2.1", "--zone", "", "--reason", "x"], 1, "--zone is empty"),
    (["list", "add", "192.0.2.1", "--code", "", "--reason", "x"], 1, "no return code"),
    (["list", "add", "192.0.2.1", "--code", "abc", "--reason", "x"], 1, "'abc'"),
    (["list", "add", "192.0.2.1", "--code", "127.0.0.1", "--reason", "x"], 1, "127.0.0.1"),
    (["list", "add", "192.0.2.1", "--code", "10.0.0.2", "--reason", "x"], 1, "10.0.0.2"),
    (["list", "add", "192.0.2.1", "--txt", "{key", "--reason", "x"], 1, "--txt"),
    (["list", "add", "192.0.2.1", "--txt", "{secret}", "--reason", "x"], 1, "--txt"),
    (["list", "add", "192.0.2.1", "--txt", "a\x00b", "--reason", "x"], 2, "--txt"),
    (["list", "add", "192.0.2.1", "--reason", ""], 2, "'--reason': must not be empty"),
    (["list", "add", "192.0.2.1", "--reason", "  "], 2, "'--reason': must not be empty"),
    (["list", "add", "192.0.2.1", "--reason", "a\x00b"], 2, "'--reason': 'a\\x00b' contains"),
    (["list", "add", "192.0.2.1", "--reason", "a\x1b[2J"], 2, "U+001B"),
    (["list", "add", "192.0.2.1", "--reason", "r\udcffr"], 2, "0xFF) that is not UTF-8"),
    (["list", "add", "192.0.2.1", "--reason", LONG], 2, "has 1001 characters; at most 1000"),
    (["list", "add", "192.0.2.1"], 2, "Missing option '--reason'"),
    (["--actor", "bad\x00actor", "list", "add", "192.0.2.1", "--reason", "x"], 2, "'--actor'"),
    # list remove / show / import
    (["list", "remove", "192.0.2.9", "--reason", "x", "--yes"], 1, "no active listing"),
    (["list", "remove", "nope..example", "--reason", "x", "--yes"], 1, "'nope..example'"),
    (["list", "remove", "192.0.2.0/24", "--reason", "\x07", "--yes"], 2, "U+0007"),
    (["list", "show", "--limit", "-1"], 2, "'--limit'"),
    (["list", "show", "--limit", "0"], 2, "'--limit'"),
    (["list", "show", "--limit", "abc"], 2, "'abc' is not a valid integer"),
    (["list", "show", "--limit", "99999999999999999999999"], 2, "'--limit'"),
    (["list", "show", "--zone", "nope"], 1, "no zone 'nope'"),
    (["list", "show", "--search", "a\x00"], 2, "'--search'"),
    (["list", "show", "--source", "robot"], 2, "'robot' is not one of"),
    (["list", "show", "192.0.2.1/99"], 1, "192.0.2.1/99"),
    (["list", "import", "{missing}", "--zone", "bl.example.org", "--reason", "x"], 2, "absent.txt"),
    (
        ["list", "import", "{directory}", "--zone", "bl.example.org", "--reason", "x"],
        2,
        "directory",
    ),
    (
        ["list", "import", "{latin1}", "--zone", "bl.example.org", "--reason", "x"],
        1,
        "latin1.txt:2",
    ),
    (["list", "import", "{nul}", "--zone", "bl.example.org", "--reason", "x"], 1, "nul.txt:2"),
    (["list", "import", "{mixed}", "--zone", "bl.example.org", "--reason", "x"], 1, "mixed.txt:2"),
    (["list", "import", "{mixed}", "--reason", "x"], 1, "give --zone"),
    (["list", "import", "{manycodes}", "--zone", "bl.example.org", "--reason", "x"], 1, "txt:2:"),
    (
        ["list", "import", "{manycodes}", "--zone", "bl.example.org", "--reason", "x"],
        1,
        "101 codes, at most 100 per listing",
    ),
    (
        ["list", "import", "{mixed}", "--zone", "bl.example.org", "--code", "x", "--reason", "x"],
        1,
        "'x'",
    ),
    (
        ["list", "add", "192.0.2.77", "--reason", "x"]
        + [arg for n in range(2, 103) for arg in ("--code", f"127.0.0.{n}")],
        1,
        "101 codes, at most 100 per listing",
    ),
    # traps
    (["traps", "add", "a b@example.org"], 1, "'a b@example.org'"),
    (["traps", "add", "@"], 1, "trap '@'"),
    (["traps", "add", "trap@example.org\x00"], 1, "trap@example.org\\x00"),
    (["traps", "add", "x" * 65 + "@example.org"], 1, "not a mailbox name"),
    (["traps", "add", "ok@traps.example", "--note", "a\x00"], 2, "'--note'"),
    (["traps", "add"], 2, "Missing argument 'TRAP...'"),
    (["traps", "remove", "nope@example.org", "--reason", "x"], 1, "nope@example.org"),
    (["traps", "remove", "bad@@", "--reason", "x"], 1, "trap 'bad@@'"),
    (["traps", "remove", "trap@traps.example", "--reason", ""], 2, "'--reason'"),
    (["traps", "import", "{traps-latin1}"], 1, "traps-latin1.txt:2"),
    (["traps", "import", "{traps-bad}"], 1, "traps-bad.txt:2"),
    (["traps", "import", "{missing}"], 2, "absent.txt"),
    # show, allowlist
    (["show", "bad!key"], 1, "'bad!key'"),
    (["show", "192.0.2.1", "--limit", "-5"], 2, "'--limit'"),
    (["show", "192.0.2.1", "--limit", "99999999999999999999"], 2, "'--limit'"),
    (["show", "192.0.2.1", "--zone", "nope.example"], 1, "no zone 'nope.example'"),
    (["allowlist", "add", "192.0.2.1/99", "--reason", "x"], 1, "'192.0.2.1/99'"),
    (["allowlist", "add", "", "--reason", "x"], 1, "it is empty"),
    (["allowlist", "add", "0.0.0.0/0", "--reason", "x"], 1, "'0.0.0.0/0'"),
    (["allowlist", "add", "192.0.2.1", "--reason", "a\x00"], 2, "'--reason'"),
    (["allowlist", "remove", "192.0.2.1", "--reason", "x"], 1, "192.0.2.1"),
    (["allowlist", "remove", "bad!", "--reason", "x"], 1, "'bad!'"),
    # delisting, requests, audit
    (["delist", "bad!", "--reason", "x", "--yes"], 1, "'bad!'"),
    (["delist", "192.0.2.1", "--reason", "x", "--yes"], 1, "192.0.2.1 is listed through"),
    (["delist", "203.0.113.1", "--reason", "x", "--yes"], 1, "203.0.113.1 is not listed"),
    (["delist", "192.0.2.0/24", "--reason", "", "--yes"], 2, "'--reason'"),
    (["requests", "list", "--limit", "-1"], 2, "'--limit'"),
    (["requests", "list", "--state", "open"], 2, "'open' is not one of"),
    (["requests", "show", "\u00b2"], 2, "'²' is neither a request number nor"),
    (["requests", "show", "99999999999999999999999"], 2, "is not a request number"),
    (["requests", "show", "0"], 2, "'0' is not a request number"),
    (["requests", "show", "a\x00"], 2, "is neither a request number"),
    (["requests", "show", TOKEN], 1, f"no removal request '{TOKEN}'"),
    (["requests", "show", "42"], 1, "no removal request '42'"),
    (["requests", "approve", "42", "--message", "x"], 1, "42"),
    (["requests", "approve", "\u00b2", "--message", "x"], 2, "'REQUEST_ID'"),
    (["requests", "approve", "99999999999999999999999", "--message", "x"], 2, "request number"),
    (["requests", "approve", "1", "--message", "x\x00"], 2, "'--message'"),
    (["requests", "approve", "1", "--message", "m" * 4001], 2, "at most 4000"),
    (["requests", "deny", "1", "--message", " "], 1, "a denial needs a message"),
    (["requests", "deny", "1", "--message", "\x1b]0;pwned\x07"], 2, "U+001B"),
    (["requests", "deny", "99999999999999999999999", "--message", "x"], 2, "request number"),
    (["requests", "deny", TOKEN, "--message", "x"], 1, TOKEN),
    (["audit", "--limit", "-1"], 2, "'--limit'"),
    (["audit", "--limit", "99999999999999999999"], 2, "'--limit'"),
    (["audit", "--key", "a\x00"], 2, "'--key'"),
    (["audit", "--action", "a\x00"], 2, "'--action'"),
    (["audit", "--actor", "\x00"], 2, "'--actor'"),
    # doctor, dump
    (["doctor", "--server", "nonsense"], 2, "'nonsense' is not an IP address"),
    (["doctor", "--server", "1.2.3.4:99999"], 2, "'1.2.3.4:99999'"),
    (["doctor", "--server", "[::1"], 2, "'[::1'"),
    (["doctor", "--timeout", "-1"], 2, "'--timeout'"),
    (["doctor", "--timeout", "nan"], 2, "'nan' is outside"),
    (["doctor", "--timeout", "inf"], 2, "'inf' is outside"),
    (["doctor", "--timeout", "soon"], 2, "'soon' is not a number"),
    (["dump", "--zone", "nope", "--directory", "{directory}/dumps"], 1, "no zone 'nope'"),
]


def _fill(arg: str, paths: dict[str, str]) -> str:
    for name, path in paths.items():
        arg = arg.replace("{" + name + "}", path)
    return arg


def test_bad_cli_input_is_refused_by_name_and_changes_nothing(
    config_path: Path, tmp_path: Path
) -> None:
    seed(config_path)
    paths = files(tmp_path)
    before = snapshot(config_path)
    problems = []
    for args, status, named in CASES:
        argv = [_fill(arg, paths) for arg in args]
        result = invoke(config_path, *argv)
        output = result.output
        traceback = result.exception is not None and not isinstance(result.exception, SystemExit)
        after = snapshot(config_path)
        if (
            result.exit_code != status
            or named not in output
            or traceback
            or "Traceback" in output
            or after != before
        ):
            problems.append(
                f"{argv!r}: exit {result.exit_code} (want {status}), "
                f"exception {result.exception!r}, changed {after != before}, output {output!r}"
            )
            before = after
    assert not problems, "\n".join(problems)


def test_the_error_is_one_line_on_stderr_of_the_real_command(config_path: Path) -> None:
    for args in (
        ["requests", "show", "99999999999999999999999"],
        ["list", "show", "--limit", "99999999999999999999999"],
        ["list", "add", "192.0.2.1", "--reason", "a\x1bb"],
        ["list", "add", "192.0.2.1/99", "--reason", "x"],
    ):
        result = rbl_command(config_path, *args, check=False)
        assert result.returncode in (1, 2), (args, result)
        assert "Traceback" not in result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1, result.stderr


@pytest.mark.parametrize("answer", ["n\n", "\n"])
def test_declining_a_confirmation_changes_nothing(config_path: Path, answer: str) -> None:
    seed(config_path)
    before = snapshot(config_path)
    for args in (
        ["list", "remove", "192.0.2.0/24", "--reason", "x"],
        ["delist", "192.0.2.0/24", "--reason", "x"],
    ):
        result = invoke(config_path, *args, input=answer)
        assert result.exit_code == 1 and "Aborted" in result.output
    assert snapshot(config_path) == before
