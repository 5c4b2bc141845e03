"""Every dump file of the seeded store, byte for byte, against the output of the
writer before it was split into format plug-ins (digests in golden_seed.json)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from rbl.dumps.writer import write_dumps
from tests.dumps.seed import NOW, seed

GOLDEN = Path(__file__).with_name("golden_seed.json")


def digests(tmp_path: Path) -> dict[str, str]:
    seeded = seed(tmp_path, extra_v4=300)
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


def test_every_dump_file_is_byte_identical_to_the_golden_output(tmp_path: Path) -> None:
    assert digests(tmp_path) == json.loads(GOLDEN.read_text())
