"""docs/SECURITY.md names, for every promise, the tests that keep it: each must exist.

A renamed or deleted test would leave a promise in the threat model that
nothing checks any more; this fails first.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "SECURITY.md"
# `tests/x.py::test_a`, then `::test_b` (same file) in the same table cell.
_REFERENCE = re.compile(r"`(?:(?P<file>tests/[\w/]+\.py))?::(?P<name>test_\w+)`")


def referenced() -> list[tuple[str, str]]:
    found = []
    for line in DOC.read_text(encoding="utf-8").splitlines():
        current = None
        for m in _REFERENCE.finditer(line):
            current = m.group("file") or current
            assert current is not None, f"SECURITY.md: {m.group(0)} names no file: {line}"
            found.append((current, m.group("name")))
    return found


def defined(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return {
        node.name
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }


def test_every_test_security_md_names_exists() -> None:
    references = referenced()
    assert len(references) >= 50  # the promises of issue 11's six parts
    missing = [
        f"{file}::{name}"
        for file, name in references
        if not (ROOT / file).is_file() or name not in defined(ROOT / file)
    ]
    assert missing == []


def test_every_promise_row_names_a_test() -> None:
    rows = [
        line
        for line in DOC.read_text(encoding="utf-8").splitlines()
        if line.startswith("| ") and not line.startswith(("| promise", "| adversary", "| ---"))
    ]
    promise_rows = [row for row in rows if row.count("|") == 3]
    assert promise_rows
    assert [row for row in promise_rows if not _REFERENCE.search(row)] == []
