"""scripts/bench-* and fuzz-dns run under the project's .venv, whichever Python starts them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# The interpreter the virtualenv was made from: it has no rbl and no dnspython of ours.
BASE_PYTHON = getattr(sys, "_base_executable", sys.executable)


def prefix_seen(tmp_path: Path, **env: str) -> str:
    script = tmp_path / "show-prefix"
    script.write_text(
        f"import sys\nsys.path.insert(0, {str(REPO / 'scripts')!r})\n"
        "import _venv\n_venv.reexec()\nprint(sys.prefix)\n"
    )
    done = subprocess.run(
        [BASE_PYTHON, str(script)],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **env},
    )
    return done.stdout.strip()


@pytest.mark.skipif(sys.prefix == sys.base_prefix, reason="the tests run outside a virtualenv")
def test_a_script_started_by_another_python_reruns_under_the_venv(tmp_path: Path) -> None:
    assert Path(prefix_seen(tmp_path)).resolve() == (REPO / ".venv").resolve()
    # The control: told to keep its interpreter, it stays outside.
    assert Path(prefix_seen(tmp_path, RBL_SCRIPT_PYTHON="any")).resolve() != (
        (REPO / ".venv").resolve()
    )


@pytest.mark.parametrize("script", ["bench-dns", "bench-dump", "bench-ingest", "fuzz-dns"])
def test_each_benchmark_reexecs_before_its_imports(script: str) -> None:
    text = (REPO / "scripts" / script).read_text()
    assert text.index("_venv.reexec()") < text.index("\nimport argparse")
