"""A DNS-only process loads neither SQLAlchemy nor twisted.web: RSS is a benchmark target.

docs/BENCHMARKS.md compares a DNS process's peak RSS with rbldnsd's; SQLAlchemy is
~13 MB of modules and twisted.web (with the /metrics service) ~4.5 MB. Each is
imported only by the parts that need it: the writer node, the site, ``/metrics``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.support.processes import REPO, subprocess_env

COMPOSE = """
import json, sys
from pathlib import Path
from twisted.internet import task
import rbl.cli
from rbl.config import parse_settings
from rbl.server.service import make_service
tables = json.loads(sys.argv[1])
settings = parse_settings(tables, source=Path("test.toml"))
make_service(settings, task.Clock(), dns_only=True)
print(json.dumps(sorted(m for m in sys.modules if m.split(".")[0] == "sqlalchemy"
                        or m.startswith("twisted.web"))))
"""


def loaded(tmp_path: Path, **sections: object) -> list[str]:
    """The modules a process composed with ``sections`` holds, on a database at head."""
    database = tmp_path / "rbl.sqlite"
    tables = {
        "database": {"url": f"sqlite:///{database}"},
        "zones": [{"name": "bl.example.org", "kind": "ip", "ns": ["ns1.example.org"]}],
        **sections,
    }
    for _ in range(2):  # the first run creates the schema, which takes SQLAlchemy
        done = subprocess.run(
            [sys.executable, "-c", COMPOSE, json.dumps(tables)],
            cwd=REPO,
            env=subprocess_env(),
            capture_output=True,
            text=True,
            check=True,
        )
    modules: list[str] = json.loads(done.stdout.strip().splitlines()[-1])
    return modules


def test_a_dns_only_process_imports_no_sqlalchemy_and_no_twisted_web(tmp_path: Path) -> None:
    assert loaded(tmp_path) == []


def test_metrics_bring_twisted_web_but_still_no_sqlalchemy(tmp_path: Path) -> None:
    """The control: the check sees a module that is loaded."""
    modules = loaded(tmp_path, metrics={"listen": "127.0.0.1:0"})
    assert "twisted.web.server" in modules
    assert not [m for m in modules if m.startswith("sqlalchemy")]
