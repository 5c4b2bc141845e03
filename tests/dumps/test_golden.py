"""Every dump file, byte for byte, against the output of the writer before it was
split into format plug-ins (digests in golden_*.json, made by that writer from the
same stores: the shared seed with 300 bulk listings, and tests/support/dump_rich.py)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from rbl.dumps.writer import write_dumps
from tests.support.dump_rich import seed_rich
from tests.support.dump_seed import NOW, Seeded, seed

HERE = Path(__file__).parent


def seed_bulk(directory: Path) -> Seeded:
    return seed(directory, extra_v4=300)


def digests(tmp_path: Path, make: Callable[[Path], Seeded]) -> dict[str, str]:
    seeded = make(tmp_path)
    out = tmp_path / "dumps"
    try:
        write_dumps(seeded.settings, seeded.reader, out, NOW)
    finally:
        seeded.reader.close()
    return {
        str(path.relative_to(out)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(out.rglob("*"))
        if path.is_file()
    }


@pytest.mark.parametrize(("make", "golden"), [(seed_bulk, "seed"), (seed_rich, "rich")])
def test_every_dump_file_is_byte_identical_to_the_golden_output(
    tmp_path: Path, make: Callable[[Path], Seeded], golden: str
) -> None:
    expected = json.loads((HERE / f"golden_{golden}.json").read_text())
    assert digests(tmp_path, make) == expected
