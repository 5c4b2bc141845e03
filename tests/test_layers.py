"""The layers of ``rbl/`` and what each may import, checked over the source with ``ast``.

docs/ARCHITECTURE.md draws the same table. A layer is the first package under
``rbl`` (``rbl.errors`` is its own, the root every layer may use). Imports under
``if TYPE_CHECKING:`` count too: a type named in a signature is a dependency a
reader has to follow.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

RBL = Path(__file__).resolve().parents[1] / "rbl"

# Which other layers each layer may import. Lower layers first.
ALLOWED: dict[str, frozenset[str]] = {
    "errors": frozenset(),
    "model": frozenset({"errors"}),
    "config": frozenset({"errors", "model"}),
    "index": frozenset({"errors", "model"}),
    "policy": frozenset({"errors", "model", "config", "index"}),
    "zonedata": frozenset({"errors", "model", "config", "index", "policy"}),
    "dnsserver": frozenset({"errors", "model", "config", "index", "zonedata"}),
    "store": frozenset({"errors", "model", "config", "policy"}),
    "feeds": frozenset({"errors", "model", "config", "index", "policy", "store", "dnsserver"}),
    "dumps": frozenset({"errors", "model", "config", "index", "policy", "zonedata", "store"}),
    "web": frozenset({"errors", "model", "config", "policy", "store"}),
    # /metrics is a web site on its own port: it listens as the lookup site does (web.listening).
    "metrics": frozenset(
        {"errors", "model", "config", "policy", "store", "feeds", "dnsserver", "web"}
    ),
    "server": frozenset(
        {"errors", "model", "config", "index", "policy", "zonedata", "dnsserver", "store"}
        | {"feeds", "dumps", "web", "metrics"}
    ),
    "cli": frozenset(
        {"errors", "model", "config", "index", "policy", "zonedata", "dnsserver", "store"}
        | {"feeds", "dumps", "web", "metrics", "server"}
    ),
    "__main__": frozenset({"cli"}),
}

# Third-party packages only some layers may use: the pure layers stay testable without a
# reactor or a database, and SQL stays in the store.
EXTERNAL: dict[str, frozenset[str]] = {
    "sqlalchemy": frozenset({"store"}),
    "alembic": frozenset({"store"}),
    "twisted": frozenset({"dnsserver", "feeds", "dumps", "web", "metrics", "server", "cli"}),
    "dnslib": frozenset({"dnsserver"}),
    "jinja2": frozenset({"web"}),
    "click": frozenset({"cli"}),
}

# Pure parts inside runtime layers: parsers are functions from text to TrapHits.
PURE_PACKAGES = ("rbl/feeds/parsers",)


def layer_of(path: Path, root: Path = RBL) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return parts[0]


def imports_of(path: Path) -> Iterator[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


def violations(root: Path = RBL) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).as_posix()
        if path.parent == root and path.stem == "__init__":
            continue
        layer = layer_of(path, root)
        pure = rel.startswith(PURE_PACKAGES)
        for module in imports_of(path):
            top, _, rest = module.partition(".")
            if top == "rbl":
                target = rest.partition(".")[0]
                if target and target != layer and target not in ALLOWED[layer]:
                    found.add((rel, module))
            elif top in EXTERNAL and (layer not in EXTERNAL[top] or pure):
                found.add((rel, top))
    return found


def test_every_layer_is_known() -> None:
    layers = {layer_of(p) for p in RBL.rglob("*.py") if p != RBL / "__init__.py"}
    assert layers <= set(ALLOWED), sorted(layers - set(ALLOWED))


def test_each_layer_imports_only_what_it_may() -> None:
    assert sorted(violations()) == []


def test_rules_catch_what_they_forbid(tmp_path: Path) -> None:
    """The check itself, on a made-up tree: each breach is found, allowed imports are not."""
    root = tmp_path / "rbl"
    (root / "index").mkdir(parents=True)
    (root / "feeds" / "parsers").mkdir(parents=True)
    (root / "index" / "tables.py").write_text(
        "from rbl.store import reader\nfrom rbl.model import keys\n"
    )
    (root / "feeds" / "parsers" / "x.py").write_text("import twisted.internet\n")
    (root / "feeds" / "ingest.py").write_text("import twisted.internet\nimport sqlalchemy\n")
    assert violations(root) == {
        ("rbl/index/tables.py", "rbl.store"),
        ("rbl/feeds/parsers/x.py", "twisted"),
        ("rbl/feeds/ingest.py", "sqlalchemy"),
    }
