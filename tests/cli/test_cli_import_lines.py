"""``rbl list import`` reads a file whole: line numbers, columns and refusals as before.

Canonical IPv4 lines take a fast path (``canonical_ipv4``); these lines sit next to
every form that must still go through the full parser and be refused or normalised
the same way, so the two paths cannot drift apart unseen.
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner, Result
from sqlalchemy import select

from rbl.cli import main
from rbl.store.database import open_engine
from rbl.store.schema import change_log, listings
from tests.support.config import database_url_of


def _import(config: Path, source: Path) -> Result:
    argv = ["-c", str(config), "list", "import", "--zone", "bl.example.org", "--reason", "r"]
    return CliRunner().invoke(main, [*argv, str(source)])


def _stored(config: Path) -> tuple[dict[str, tuple[str, str | None]], list[str]]:
    engine = open_engine(database_url_of(config))
    with engine.connect() as conn:
        rows = {r.key: (r.codes, r.txt) for r in conn.execute(select(listings))}
        changes = [r.key for r in conn.execute(select(change_log).order_by(change_log.c.id))]
    engine.dispose()
    return rows, changes


def test_a_line_that_is_not_utf8_is_named_with_its_column(
    config_path: Path, tmp_path: Path
) -> None:
    source = tmp_path / "list.txt"
    source.write_bytes(b"192.0.2.1\n192.0.2.2\nabc \xe9t\xe9\n192.0.2.4\n")
    result = _import(config_path, source)
    assert result.exit_code == 1
    assert "list.txt:3: not UTF-8 text (byte 0xE9 at column 5); nothing imported" in result.output
    assert _stored(config_path) == ({}, [])


def test_fast_and_full_parser_lines_together(config_path: Path, tmp_path: Path) -> None:
    source = tmp_path / "list.txt"
    source.write_bytes(
        b"# a list\r\n192.0.2.1\r\n192.0.2.0/32\n  198.51.100.0/24  \n010.0.0.1\n"
        b"127.0.0.2/8\n192.0.2.9/24\n1.2.3\n203.0.113.7 # trailing comment\n"
        b"2001:DB8::1\n203.0.113.8 :127.0.0.5:Own {key}\n8.0.0.0/7\n"
    )
    result = _import(config_path, source)
    assert result.exit_code == 1, result.output
    assert "5 bad line(s), nothing imported" in result.output
    for number, why in (
        (5, "'010.0.0.1' is not an IP address or network"),
        (6, "'127.0.0.2/8' is not an IP address or network: 127.0.0.2/8 has host bits set"),
        (7, "'192.0.2.9/24' is not an IP address or network: 192.0.2.9/24 has host bits set"),
        (8, "'1.2.3' is not an IP address or network"),
        (12, "'8.0.0.0/7' is wider than /8"),
    ):
        assert f"list.txt:{number}: {why}" in result.output, result.output
    assert _stored(config_path) == ({}, [])
    source.write_bytes(
        b"# a list\r\n192.0.2.1\r\n192.0.2.0/32\n  198.51.100.0/24  \n"
        b"203.0.113.7 # trailing comment\n2001:DB8::1\n203.0.113.8 :127.0.0.5:Own {key}\n"
        b"203.0.113.9"  # no newline at the end
    )
    result = _import(config_path, source)
    assert "7 added, 0 changed, 0 unchanged" in result.output, result.output
    rows, changes = _stored(config_path)
    assert rows == {
        "192.0.2.1": ("127.0.0.2", None),
        "192.0.2.0": ("127.0.0.2", None),
        "198.51.100.0/24": ("127.0.0.2", None),
        "203.0.113.7": ("127.0.0.2", None),
        "2001:db8::1": ("127.0.0.2", None),
        "203.0.113.8": ("127.0.0.5", "Own {key}"),
        "203.0.113.9": ("127.0.0.2", None),
    }
    assert sorted(changes) == sorted(rows)


def test_a_test_point_refuses_the_whole_import(config_path: Path, tmp_path: Path) -> None:
    source = tmp_path / "list.txt"
    source.write_text("192.0.2.1\n127.0.0.2\n192.0.2.3\n")
    result = _import(config_path, source)
    assert result.exit_code == 1
    assert "127.0.0.2 covers an RFC 5782 test address, which always answers the same" in (
        result.output
    )
    assert _stored(config_path) == ({}, [])
