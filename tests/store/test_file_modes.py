"""Files rbl creates: the database and its journals are owner-only, private dump files too,
and only the complete public dump files (what mirrors fetch) are world-readable."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlalchemy import text

from rbl.cli import main
from rbl.dumps import publish
from rbl.dumps.writer import write_dumps
from rbl.store.database import open_engine
from tests.support.config import write_config
from tests.support.dump_seed import NOW, seed
from tests.support.processes import REPO, rbl_command


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.fixture
def umask() -> Iterator[Any]:
    """Set the process umask for one test and restore it afterwards."""
    old = os.umask(0o022)
    try:
        yield os.umask
    finally:
        os.umask(old)


def test_a_new_sqlite_database_and_its_wal_and_shm_are_owner_only(
    tmp_path: Path, umask: Any
) -> None:
    umask(0o022)  # the usual default: SQLite alone would create the file 0644
    database = tmp_path / "var" / "rbl.sqlite"
    engine = open_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as conn:  # journals exist while a connection is open
            conn.execute(text("SELECT count(*) FROM traps")).scalar()
            files = [database, Path(f"{database}-wal"), Path(f"{database}-shm")]
            assert all(path.exists() for path in files)
            assert {path.name: oct(mode(path)) for path in files} == {
                path.name: "0o600" for path in files
            }
    finally:
        engine.dispose()


def test_an_existing_database_keeps_the_mode_its_owner_gave_it(tmp_path: Path, umask: Any) -> None:
    database = tmp_path / "rbl.sqlite"
    open_engine(f"sqlite:///{database}").dispose()
    os.chmod(database, 0o640)  # a group that reads it (backups), as DEPLOYMENT.md says
    engine = open_engine(f"sqlite:///{database}")
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT count(*) FROM traps")).scalar()
            assert mode(database) == 0o640
            assert mode(Path(f"{database}-wal")) == 0o640  # SQLite follows the file
    finally:
        engine.dispose()


def test_the_cli_creates_the_database_owner_only_under_a_permissive_umask(
    tmp_path: Path, umask: Any
) -> None:
    umask(0o000)  # inherited by the real CLI process
    config = write_config(tmp_path)
    rbl_command(config, "traps", "add", "trap@example.org")
    assert mode(tmp_path / "rbl.sqlite") == 0o600


def test_every_cli_command_sets_an_umask_of_at_least_027(tmp_path: Path, umask: Any) -> None:
    config = write_config(tmp_path)
    umask(0o002)
    result = CliRunner().invoke(main, ["-c", str(config), "traps", "list"])
    assert result.exit_code == 0, result.output
    assert os.umask(0o022) == 0o027
    umask(0o077)  # a stricter one stays
    CliRunner().invoke(main, ["-c", str(config), "traps", "list"])
    assert os.umask(0o022) == 0o077


def test_dump_files_are_private_until_complete_then_public(
    tmp_path: Path, umask: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    seeded = seed(tmp_path)
    umask(0o077)  # the public files must still be readable by a mirror's rsyncd
    seen: dict[str, int] = {}
    original_wait = publish.Generation.wait
    original_journal = publish.Generation._write_journal

    def wait(self: Any) -> None:
        original_wait(self)
        for temporary, _final in self.pending:  # every file written, none renamed yet
            seen[temporary.name] = mode(temporary)

    def write_journal(self: Any) -> None:
        original_journal(self)
        seen[publish.JOURNAL_NAME] = mode(self.directory / publish.JOURNAL_NAME)

    monkeypatch.setattr(publish.Generation, "wait", wait)
    monkeypatch.setattr(publish.Generation, "_write_journal", write_journal)
    directory = tmp_path / "new" / "dumps"
    report = write_dumps(seeded.settings, seeded.reader, directory, NOW)
    assert len(seen) > 10 and set(seen.values()) == {0o600}, seen
    public = [directory / rel for rel in report.files]
    assert public and {oct(mode(path)) for path in public} == {"0o644"}
    folders = {path.parent for path in public} | {directory, directory.parent}
    assert {oct(mode(path)) for path in folders} == {"0o755"}


def test_systemd_units_set_an_umask() -> None:
    units = sorted((REPO / "zones" / "systemd").glob("*.service"))
    assert units
    for unit in units:
        assert "\nUMask=0027\n" in unit.read_text(), unit.name


def test_doctor_reports_a_database_other_users_can_read(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    rbl_command(config, "traps", "add", "trap@example.org")
    database = tmp_path / "rbl.sqlite"
    ok = rbl_command(config, "doctor", "--timeout", "0.1", check=False).stdout
    assert f"OK    database file: {database} is not readable by other users" in ok
    os.chmod(database, 0o644)  # as SQLite left it before
    bad = rbl_command(config, "doctor", "--timeout", "0.1", check=False)
    assert bad.returncode == 1
    assert f"FAIL  database file: {database} has mode 0644: other users can read it" in bad.stdout
