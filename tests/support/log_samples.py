"""The sample logs in tests/data/logs: real-format lines, each under its expected result.

File format (fail2ban's tests/files/logs style), one file or more per parser,
named ``<format>.log`` or ``<format>.<what>.log`` (``exim.hostile.log``: real
Exim lines from hostile sessions)::

    ## free comment
    # context: {"now": "2026-11-24T00:00:00+00:00", "tz": "+01:00"}   (applies from here on)
    # hit: {"at": ..., "client_ip": ..., "rcpt_to": ..., "mail_from": ..., "helo": ...}
    <line>
    # hits: [{...}, {...}]
    <line>
    # none
    <line>
    # error: <substring of the ParseError message>
    <line>

A hit names at least at, client_ip, rcpt_to, mail_from and helo; client_name,
stage, attempt and trap_asserted default to null/null/null/false, feed to the format
name and raw to the line itself. Blank lines between cases are ignored.

The lines of a file are read in order through one ParseContext per ``# context``
block, as ``rbl ingest`` reads a file: a case's line is parsed after every line
before it in its block (``Case.before``), so a parser that joins lines (sendmail's
refused recipients and their envelope's ``from=`` line, Postfix's accepted mail and
its delivery) shows the joined hits on the line that completes them, with the joined
lines as raw.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from pathlib import Path
from typing import Any

LOGS = Path(__file__).resolve().parents[1] / "data" / "logs"
DEFAULT_NOW = datetime(2026, 11, 24, tzinfo=UTC)
REQUIRED = ("at", "client_ip", "rcpt_to", "mail_from", "helo")


@dataclass(frozen=True)
class Case:
    fmt: str
    where: str  # file:line, for test ids and failure messages
    line: str
    now: datetime
    tz: tzinfo
    hits: tuple[dict[str, Any], ...] | None  # None when an error is expected
    error: str | None
    before: tuple[str, ...] = ()  # the lines before it in its context block, in order


def zone(text: str) -> tzinfo:
    if text in ("UTC", "Z"):
        return UTC
    sign = -1 if text[0] == "-" else 1
    hours, minutes = text[1:].split(":")
    return timezone(sign * timedelta(hours=int(hours), minutes=int(minutes)))


def _hit(fmt: str, line: str, given: dict[str, Any], where: str) -> dict[str, Any]:
    missing = [key for key in REQUIRED if key not in given]
    assert not missing, f"{where}: expected hit lacks {missing}"
    return {
        "client_name": None,
        "trap_asserted": False,
        "stage": None,
        "attempt": None,
        "feed": fmt,
        "raw": line,
        **given,
    }


def load(path: Path) -> list[Case]:
    fmt = path.stem.partition(".")[0]
    now = DEFAULT_NOW
    tz: tzinfo = UTC
    cases: list[Case] = []
    pending: tuple[str, Any] | None = None
    block: list[str] = []
    for number, text in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        where = f"{path.name}:{number}"
        if pending is not None:
            kind, value = pending
            pending = None
            before = tuple(block)
            block.append(text)
            if kind == "error":
                cases.append(Case(fmt, where, text, now, tz, None, value, before))
            else:
                hits = tuple(_hit(fmt, text, given, where) for given in value)
                cases.append(Case(fmt, where, text, now, tz, hits, None, before))
            continue
        if not text.strip() or text.startswith("##"):
            continue
        if text.startswith("# context:"):
            block = []
            context = json.loads(text.removeprefix("# context:"))
            now = datetime.fromisoformat(context["now"])
            tz = zone(context.get("tz", "UTC"))
        elif text.startswith("# hit:"):
            pending = ("hits", [json.loads(text.removeprefix("# hit:"))])
        elif text.startswith("# hits:"):
            pending = ("hits", json.loads(text.removeprefix("# hits:")))
        elif text.rstrip() == "# none":
            pending = ("hits", [])
        elif text.startswith("# error:"):
            pending = ("error", text.removeprefix("# error:").strip())
        else:
            raise AssertionError(f"{where}: log line without an expectation above it")
    assert pending is None, f"{path.name}: expectation at the end of the file without a line"
    return cases


def all_cases() -> list[Case]:
    return [case for path in sorted(LOGS.glob("*.log")) for case in load(path)]
