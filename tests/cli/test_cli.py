"""The ``rbl`` CLI through click's CliRunner, against a real SQLite store."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from rbl.cli import main
from rbl.store.database import open_engine
from rbl.store.schema import audit_log, change_log, listings
from tests.support.config import database_url_of


def run(config: Path, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, ["-c", str(config), "--actor", "alice", *args], input=input)


def table_rows(config: Path, table) -> list:  # type: ignore[no-untyped-def]
    engine = open_engine(database_url_of(config))
    with engine.connect() as conn:
        rows = list(conn.execute(select(table).order_by(table.c.id)))
    engine.dispose()
    return rows


def test_add_show_remove_with_audit_and_change_log(config_path: Path) -> None:
    added = run(
        config_path, "list", "add", "192.0.2.0/24", "--code", "127.0.0.4", "--reason", "spam run"
    )
    assert added.exit_code == 0, added.output
    assert "listed 192.0.2.0/24 in bl.example.org as 127.0.0.4" in added.output

    shown = run(config_path, "list", "show", "192.0.2.55")
    assert shown.exit_code == 0, shown.output
    assert "key:      192.0.2.0/24" in shown.output
    assert "https://www.example.org/lookup/192.0.2.55" in shown.output

    removed = run(config_path, "list", "remove", "192.0.2.0/24", "--reason", "delisted", "--yes")
    assert removed.exit_code == 0, removed.output
    gone = run(config_path, "list", "show", "192.0.2.55")
    assert gone.exit_code == 1 and "is not listed" in gone.output

    audit = table_rows(config_path, audit_log)
    assert [(a.actor, a.action, a.key, a.reason) for a in audit] == [
        ("alice", "list", "192.0.2.0/24", "spam run"),
        ("alice", "unlist", "192.0.2.0/24", "delisted"),
    ]
    changes = table_rows(config_path, change_log)
    assert [(c.op, c.key, c.codes) for c in changes] == [
        ("set", "192.0.2.0/24", "127.0.0.4"),
        ("delete", "192.0.2.0/24", None),
    ]
    (row,) = table_rows(config_path, listings)
    assert row.state == "removed" and row.reason == "delisted"


def test_relisting_same_value_writes_no_change_row(config_path: Path) -> None:
    for _ in range(2):
        assert run(config_path, "list", "add", "203.0.113.5", "--reason", "r").exit_code == 0
    assert len(table_rows(config_path, change_log)) == 1
    assert len(table_rows(config_path, audit_log)) == 2
    assert (
        run(
            config_path, "list", "add", "203.0.113.5", "--code", "127.0.0.3", "--reason", "r"
        ).exit_code
        == 0
    )
    assert [c.codes for c in table_rows(config_path, change_log)] == ["127.0.0.2", "127.0.0.3"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["list", "add", "192.0.2.1/24", "--reason", "x"], "'192.0.2.1/24'"),
        (["list", "add", "16.0.0.0/4", "--reason", "x"], "wider than /8"),
        (["list", "add", "127.0.0.0/24", "--reason", "x"], "RFC 5782 test address"),
        (
            ["list", "add", "192.0.2.1", "--code", "127.255.255.2", "--reason", "x"],
            "reserved for errors",
        ),
        (
            ["list", "add", "192.0.2.1", "--code", "10.0.0.2", "--reason", "x"],
            "outside 127.0.0.0/8",
        ),
        (["list", "add", "bad_domain-.example", "--reason", "x"], "'bad_domain-.example'"),
        (
            ["list", "add", "192.0.2.1", "--zone", "nope.example", "--reason", "x"],
            "no zone 'nope.example'",
        ),
        (["list", "add", "192.0.2.1", "--txt", "{secret}", "--reason", "x"], "--txt"),
        (["list", "remove", "192.0.2.9", "--reason", "x", "--yes"], "no active listing"),
    ],
)
def test_bad_input_names_the_input_and_stores_nothing(
    config_path: Path, args: list[str], message: str
) -> None:
    result = run(config_path, *args)
    assert result.exit_code != 0
    assert message in result.output
    assert table_rows(config_path, listings) == []


def test_missing_config_is_a_clear_error(tmp_path: Path) -> None:
    result = run(tmp_path / "absent.toml", "list", "show")
    assert result.exit_code == 1
    assert "cannot read configuration" in result.output and "absent.toml" in result.output


def test_remove_asks_for_confirmation(config_path: Path) -> None:
    assert run(config_path, "list", "add", "192.0.2.7", "--reason", "r").exit_code == 0
    declined = run(config_path, "list", "remove", "192.0.2.7", "--reason", "r", input="n\n")
    assert declined.exit_code == 1 and "Aborted" in declined.output
    assert table_rows(config_path, listings)[0].state == "active"
    accepted = run(config_path, "list", "remove", "192.0.2.7", "--reason", "r", input="y\n")
    assert accepted.exit_code == 0
    assert table_rows(config_path, listings)[0].state == "removed"


def test_import_reports_every_bad_line_and_stores_nothing(
    config_path: Path, tmp_path: Path
) -> None:
    assert run(config_path, "list", "add", "203.0.113.1", "--reason", "before").exit_code == 0
    source = tmp_path / "list.txt"
    source.write_text(
        "# comment\n192.0.2.1\n192.0.2.300\n\n198.51.100.0/24 :127.0.0.3:Own {key}\n"
        "2001:db8::1 :127.0.0.1\n192.0.2.2 trailing\n"
    )
    result = run(
        config_path, "list", "import", "--zone", "bl.example.org", "--reason", "r", str(source)
    )
    assert result.exit_code == 1
    assert "3 bad line(s), nothing imported" in result.output
    for line in (3, 6, 7):
        assert f"list.txt:{line}:" in result.output
    assert [r.key for r in table_rows(config_path, listings)] == ["203.0.113.1"]


def test_import_then_reimport_is_idempotent(config_path: Path, tmp_path: Path) -> None:
    source = tmp_path / "list.txt"
    source.write_text("192.0.2.1\n198.51.100.0/24 :127.0.0.3:Own {key}\n2001:db8::/64\n")
    first = run(
        config_path, "list", "import", "--zone", "bl.example.org", "--reason", "r", str(source)
    )
    assert "3 added, 0 changed, 0 unchanged" in first.output, first.output
    second = run(
        config_path, "list", "import", "--zone", "bl.example.org", "--reason", "r", str(source)
    )
    assert "0 added, 0 changed, 3 unchanged" in second.output, second.output
    rows = {r.key: r for r in table_rows(config_path, listings)}
    assert rows["198.51.100.0/24"].codes == "127.0.0.3"
    assert rows["198.51.100.0/24"].txt == "Own {key}"
    assert len(table_rows(config_path, change_log)) == 3


def test_show_lists_latest_and_zone_is_inferred_from_key(config_path: Path) -> None:
    assert run(config_path, "list", "add", "spam.example", "--reason", "d").exit_code == 0
    assert run(config_path, "list", "add", "192.0.2.1", "--reason", "i").exit_code == 0
    listing = run(config_path, "list", "show")
    lines = listing.output.strip().splitlines()
    assert lines[0].startswith("bl.example.org\t192.0.2.1\t127.0.0.2\tactive")
    assert lines[1].startswith("dbl.example.org\tspam.example\t127.0.1.2\tactive")


def test_show_finds_the_64_or_the_escalated_48_that_lists_an_address(config_path: Path) -> None:
    """``rbl show`` of an IPv6 address: the listing that covers it, why, and the evidence
    of the network; delisting the address alone names that listing; allowlisting it
    ends its listing there (the /64 stays for the rest)."""
    import json
    import time

    text = config_path.read_text()
    config_path.write_text(
        text.replace('lookup_url = "https', 'ipv6_escalate_after = 2\nlookup_url = "https', 1)
    )
    log = config_path.parent / "hits.json"
    log.write_text(
        "".join(
            json.dumps(
                {
                    "time": time.time() - 60 + i,
                    "ip": ip,
                    "from": "a@spam.example",
                    "helo": "x",
                    "to": "trap@example.org",
                    "trap": True,
                }
            )
            + "\n"
            for i, ip in enumerate(("2a01:4f8:1:1::5", "2a01:4f8:1:2::5"))
        )
    )
    ingested = run(config_path, "ingest", "--format", "json", str(log))
    assert ingested.exit_code == 0, ingested.output
    rotated = run(config_path, "show", "2a01:4f8:1:1::77")
    assert rotated.exit_code == 0, rotated.output
    assert "2a01:4f8:1:1::77 is listed as part of 2a01:4f8:1:1::/64\n" in rotated.output
    assert "2a01:4f8:1:1::/64 in bl.example.org: active" in rotated.output
    assert "evidence inside 2a01:4f8:1:1::/64: 1 hit(s)" in rotated.output
    assert " 2a01:4f8:1:1::5 feed=json " in rotated.output  # operator view: which address
    beside = run(config_path, "show", "2a01:4f8:1:99::1")
    assert "2a01:4f8:1:99::1 is listed as part of 2a01:4f8:1::/48\n" in beside.output
    assert (
        "  reason: escalated: 2 listed networks inside it (at least 2): "
        "2a01:4f8:1:1::/64, 2a01:4f8:1:2::/64\n"
    ) in beside.output
    assert "  listed inside it: 2\n    2a01:4f8:1:1::/64 (trap, until " in beside.output
    assert "evidence inside 2a01:4f8:1::/48: 2 hit(s)" in beside.output
    refused = run(config_path, "delist", "2a01:4f8:1:1::5", "--reason", "x", "--yes")
    assert refused.exit_code == 1
    assert "2a01:4f8:1:1::5 is listed through 2a01:4f8:1:1::/64; delist that" in refused.output
    allowed = run(config_path, "allowlist", "add", "2a01:4f8:1:1::5", "--reason", "relay")
    assert allowed.exit_code == 0, allowed.output
    mine = run(config_path, "show", "2a01:4f8:1:1::5")
    assert "2a01:4f8:1:1::5 is listed as part of" not in mine.output
    assert "2a01:4f8:1:1::5: no listing in bl.example.org" in mine.output
    still = run(config_path, "show", "2a01:4f8:1:1::6")
    assert "2a01:4f8:1:1::6 is listed as part of 2a01:4f8:1:1::/64" in still.output


def test_each_command_lives_in_a_module_named_after_it() -> None:
    """A newcomer finds ``rbl requests`` in rbl/cli/requests.py; ``rbl list`` is in
    listings.py (a module named ``list`` would shadow the builtin where imported)."""
    where = {name: command.callback.__module__ for name, command in main.commands.items()}
    assert where == {
        name: f"rbl.cli.{'listings' if name == 'list' else name}" for name in main.commands
    }
    assert sorted(main.commands) == [
        "allowlist", "audit", "db", "delist", "doctor", "dump", "expire", "ingest",
        "list", "quarantine", "requests", "serve", "show", "traps",
    ]  # fmt: skip
