"""Trap, allowlist, expiry and evidence commands through CliRunner on a real SQLite store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from click.testing import CliRunner, Result
from sqlalchemy import inspect, select

from rbl.cli import main
from rbl.store.database import current_revision, head_revision, open_engine
from rbl.store.schema import audit_log, listings, metadata, traps
from tests.support.config import database_url_of


def run(config: Path, *args: str, input: str | None = None) -> Result:
    return CliRunner().invoke(main, ["-c", str(config), "--actor", "bob", *args], input=input)


def engine_for(config: Path):  # type: ignore[no-untyped-def]
    return open_engine(database_url_of(config))


def test_traps_add_list_remove_and_audit(config_path: Path) -> None:
    added = run(
        config_path, "traps", "add", "Trap@Example.ORG", "@abandoned.example", "--note", "honeypot"
    )
    assert added.exit_code == 0, added.output
    assert "2 added, 0 already active" in added.output
    again = run(config_path, "traps", "add", "trap@example.org")
    assert "0 added, 1 already active" in again.output
    listed = run(config_path, "traps", "list")
    assert listed.output.splitlines()[0].startswith("trap@example.org\tactive")
    assert "@abandoned.example\tactive" in listed.output
    removed = run(config_path, "traps", "remove", "trap@example.org", "--reason", "retired")
    assert removed.exit_code == 0, removed.output
    assert "trap@example.org" not in run(config_path, "traps", "list").output
    assert "trap@example.org\tremoved" in run(config_path, "traps", "list", "--all").output
    engine = engine_for(config_path)
    with engine.connect() as conn:
        actions = [(r.actor, r.action, r.key) for r in conn.execute(select(audit_log))]
    assert actions == [
        ("bob", "trap-add", "trap@example.org"),
        ("bob", "trap-add", "@abandoned.example"),
        ("bob", "trap-remove", "trap@example.org"),
    ]


def test_bad_traps_are_refused_naming_them(config_path: Path, tmp_path: Path) -> None:
    bad = run(config_path, "traps", "add", "no spaces@example.org")
    assert bad.exit_code == 1 and "'no spaces@example.org'" in bad.output
    source = tmp_path / "traps.txt"
    source.write_text("# traps\nok@example.org\nbroken@@\n@bad_domain-.example\n")
    result = run(config_path, "traps", "import", str(source))
    assert result.exit_code == 1
    assert "2 bad line(s), nothing imported" in result.output
    assert "traps.txt:3:" in result.output and "traps.txt:4:" in result.output
    engine = engine_for(config_path)
    with engine.connect() as conn:
        assert list(conn.execute(select(traps))) == []
    missing = run(config_path, "traps", "remove", "never@example.org", "--reason", "x")
    assert missing.exit_code == 1 and "not an active trap" in missing.output


def test_traps_import_file(config_path: Path, tmp_path: Path) -> None:
    source = tmp_path / "traps.txt"
    source.write_text("a@example.org  # first\n\nb@example.org\n@old.example\n")
    result = run(config_path, "traps", "import", str(source), "--note", "batch 1")
    assert "3 added, 0 already active" in result.output, result.output


def test_allowlist_add_list_remove(config_path: Path) -> None:
    assert run(config_path, "allowlist", "add", "45.1.0.0/16", "--reason", "partner").exit_code == 0
    assert run(config_path, "allowlist", "add", "partner.example", "--reason", "p").exit_code == 0
    assert (
        "was already allowlisted"
        in run(config_path, "allowlist", "add", "45.1.0.0/16", "--reason", "again").output
    )
    assert run(config_path, "allowlist", "list").output.split() == [
        "45.1.0.0/16",
        "partner.example",
    ]
    assert run(config_path, "allowlist", "remove", "45.1.0.0/16", "--reason", "done").exit_code == 0
    gone = run(config_path, "allowlist", "remove", "45.1.0.0/16", "--reason", "done")
    assert gone.exit_code == 1 and "not on the allowlist" in gone.output
    bad = run(config_path, "allowlist", "add", "45.1.0.1/16", "--reason", "x")
    assert bad.exit_code == 1 and "'45.1.0.1/16'" in bad.output


def test_expire_command_ends_due_listings(config_path: Path) -> None:
    run(config_path, "list", "add", "45.2.0.1", "--reason", "temporary")
    engine = engine_for(config_path)
    with engine.begin() as conn:
        conn.execute(listings.update().values(expires_at=datetime.now(UTC) - timedelta(1)))
    result = run(config_path, "expire")
    assert "expired 1 listing(s)" in result.output and "bl.example.org 45.2.0.1" in result.output
    with engine.connect() as conn:
        assert [r.state for r in conn.execute(select(listings))] == ["expired"]


def test_show_without_listing_or_evidence_fails(config_path: Path) -> None:
    result = run(config_path, "show", "45.3.3.3")
    assert result.exit_code == 1
    assert "45.3.3.3: no listing in bl.example.org" in result.output
    assert "evidence: 0 hit(s)" in result.output


def test_migrations_build_exactly_the_declared_schema(config_path: Path) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = engine_for(config_path)
    try:
        assert current_revision(engine) == head_revision()
        with engine.connect() as conn:
            differences = compare_metadata(MigrationContext.configure(conn), metadata)
            assert differences == []
            assert set(inspect(conn).get_table_names()) >= {
                "listings",
                "hits",
                "traps",
                "allowlist",
                "audit_log",
                "change_log",
                "change_log_pruned",
                "ingest_sources",
                "alembic_version",
            }
    finally:
        engine.dispose()  # a pooled PostgreSQL connection left open warns in a later test


def test_db_prune_keeps_each_zones_newest_change(config_path: Path) -> None:
    import time

    for address in ("45.1.1.1", "45.1.1.2", "45.1.1.3"):
        assert run(config_path, "list", "add", address, "--reason", "prune").exit_code == 0
    assert run(config_path, "list", "add", "spam.example", "--reason", "prune").exit_code == 0
    time.sleep(1.1)
    result = run(config_path, "db", "prune", "--keep", "1s")
    assert result.exit_code == 0, result.output
    assert "pruned 2 change-log row(s)" in result.output
    assert run(config_path, "db", "prune", "--keep", "1s").output.startswith("pruned 0 ")
    bad = run(config_path, "db", "prune", "--keep", "soon")
    assert bad.exit_code == 2 and "'soon' is not a duration" in bad.output


def test_a_trap_without_at_is_refused_saying_what_to_write(config_path: Path) -> None:
    """``example.com`` alone used to become a whole-domain trap: every address there."""
    bad = run(config_path, "traps", "add", "example.com")
    assert bad.exit_code == 1
    assert "trap 'example.com' has no '@'" in bad.output
    assert "write @example.com for a whole-domain trap" in bad.output
    assert "or user@example.com for one address" in bad.output
    assert run(config_path, "traps", "list", "--all").output == ""  # nothing stored
    source = config_path.parent / "traps.txt"
    source.write_text("a@example.org\nexample.net\n@old.example\n")
    imported = run(config_path, "traps", "import", str(source))
    assert (
        imported.exit_code == 1 and f"{source}:2: trap 'example.net' has no '@'" in imported.output
    )
    assert run(config_path, "traps", "list").output == ""  # all or nothing


def test_a_domain_trap_at_a_public_suffix_is_refused(config_path: Path) -> None:
    for trap in ("@com", "@co.uk", "@blogspot.com"):
        bad = run(config_path, "traps", "add", trap)
        assert bad.exit_code == 1 and "is a public suffix" in bad.output, bad.output
    assert run(config_path, "traps", "add", "@old.example.co.uk").exit_code == 0


def test_an_idn_trap_is_one_trap_in_either_form(config_path: Path) -> None:
    """'@bücher.example' is stored as punycode; the other spelling is the same trap."""
    added = run(config_path, "traps", "add", "@bücher.example", "Trap@Bücher.org")
    assert "2 added, 0 already active" in added.output, added.output
    again = run(config_path, "traps", "add", "@xn--bcher-kva.example", "trap@xn--bcher-kva.org")
    assert "0 added, 2 already active" in again.output, again.output
    listed = run(config_path, "traps", "list").output
    assert "@xn--bcher-kva.example\tactive" in listed and "trap@xn--bcher-kva.org\tactive" in listed
    removed = run(config_path, "traps", "remove", "trap@bücher.org", "--reason", "retired")
    assert removed.exit_code == 0, removed.output
    assert "trap@xn--bcher-kva.org\tremoved" in run(config_path, "traps", "list", "--all").output
