"""The layout of ``tests/``, checked over the source with ``ast``.

Tests share code only through tests/support/: no module imports ``tests.conftest``
(pytest loads it; its fixtures reach tests by name) or a test module
(``test_*.py``), so a test file can be read, moved or deleted alone. Every test
folder mirrors a layer of ``rbl/`` (tests/<layer>/, and below it a package or
module of that layer) or is one of the folders that are no layer's; only the two
checks of the layout itself sit directly in tests/.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

TESTS = Path(__file__).resolve().parent
RBL = TESTS.parent / "rbl"

# Folders of tests/ that mirror no layer: shared helpers, sample data, the docs'
# and the scripts' own tests.
OTHER_FOLDERS = frozenset({"support", "data", "docs", "scripts"})
# The only test modules directly in tests/: checks of the repository's shape.
TOP_LEVEL_TESTS = frozenset({"test_layers.py", "test_layout.py"})


def imported_modules(path: Path) -> Iterator[str]:
    """Every module ``path`` imports, ``from a import b`` giving both ``a`` and ``a.b``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def forbidden(module: str) -> str | None:
    """The conftest or test module (``tests....test_*``) that ``module`` is or is in."""
    parts = module.split(".")
    if parts[0] != "tests":
        return None
    for n, part in enumerate(parts[1:], start=2):
        if part == "conftest" or part.startswith("test_"):
            return ".".join(parts[:n])
    return None


def forbidden_imports(tests: Path = TESTS) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for path in sorted(tests.rglob("*.py")):
        rel = path.relative_to(tests.parent).as_posix()
        for module in imported_modules(path):
            if (target := forbidden(module)) is not None:
                found.add((rel, target))
    return found


def misplaced(tests: Path = TESTS, rbl: Path = RBL) -> set[str]:
    """Folders that mirror nothing in ``rbl``, and test modules directly in tests/."""
    found: set[str] = set()
    for path in sorted(tests.rglob("*")):
        rel = path.relative_to(tests)
        if rel.parts[0] in OTHER_FOLDERS or any(
            p == "__pycache__" or p.startswith(".") for p in rel.parts
        ):
            continue
        if path.is_dir():
            mirror = rbl.joinpath(*rel.parts)
            if not (
                mirror.is_dir() or (len(rel.parts) > 1 and mirror.with_suffix(".py").is_file())
            ):
                found.add(f"tests/{rel.as_posix()}/")
        elif (
            len(rel.parts) == 1
            and path.name.startswith("test_")
            and path.name not in TOP_LEVEL_TESTS
        ):
            found.add(f"tests/{rel.as_posix()}")
    return found


def test_no_module_imports_conftest_or_a_test_module() -> None:
    assert sorted(forbidden_imports()) == []


def test_every_test_folder_mirrors_a_layer() -> None:
    assert sorted(misplaced()) == []


def test_the_rules_catch_what_they_forbid(tmp_path: Path) -> None:
    """The checks themselves, on a made-up tree: each breach is found, the rest is not."""
    rbl = tmp_path / "rbl"
    (rbl / "store").mkdir(parents=True)
    (rbl / "dnsserver").mkdir()
    (rbl / "dnsserver" / "transfer.py").write_text("")
    tests = tmp_path / "tests"
    for folder in ("store", "store/pg", "dnsserver/transfer", "support", "data/logs", "helpers"):
        (tests / folder).mkdir(parents=True)
    (tests / "store" / "test_a.py").write_text(
        "from tests.conftest import REPO\n"
        "import tests.store.test_b\n"
        "from tests.store import test_b\n"
        "from tests.support.server import start_server\n"
        "from tests.support import processes\n"
    )
    (tests / "store" / "test_b.py").write_text("def helper() -> None: ...\n")
    (tests / "dnsserver" / "transfer" / "test_c.py").write_text(
        "def f() -> None:\n    from tests.store.test_b import helper\n"
    )
    (tests / "support" / "server.py").write_text("from tests import conftest\n")
    (tests / "test_stray.py").write_text("")
    (tests / "test_layout.py").write_text("")
    (tests / "conftest.py").write_text("from tests.support.server import start_server\n")
    assert forbidden_imports(tests) == {
        ("tests/store/test_a.py", "tests.conftest"),
        ("tests/store/test_a.py", "tests.store.test_b"),
        ("tests/dnsserver/transfer/test_c.py", "tests.store.test_b"),
        ("tests/support/server.py", "tests.conftest"),
    }
    assert misplaced(tests, rbl) == {"tests/store/pg/", "tests/helpers/", "tests/test_stray.py"}
