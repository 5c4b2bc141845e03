"""Run a script with the project's Python: re-exec under .venv when started by another one.

``scripts/install`` makes .venv; the benchmarks and the fuzzer import rbl, dnspython and
friends from it, so ``scripts/bench-dns`` works as typed, whichever ``python3`` is first
on PATH. RBL_SCRIPT_PYTHON=any keeps the interpreter that started the script.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def reexec() -> None:
    venv = Path(__file__).resolve().parent.parent / ".venv"
    python = venv / "bin" / "python"
    if os.environ.get("RBL_SCRIPT_PYTHON") == "any" or Path(sys.prefix).resolve() == venv.resolve():
        return
    if not python.exists():
        sys.exit(f"{sys.argv[0]}: no virtualenv at {venv}: run scripts/install first")
    os.execv(python, [str(python), *sys.argv])
