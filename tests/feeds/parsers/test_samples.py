"""Every line of every sample log parses to exactly what the comment above it says."""

from __future__ import annotations

import contextlib
from collections import Counter
from dataclasses import fields
from datetime import UTC, datetime
from typing import Any

import pytest

from rbl.feeds.parsers import PARSERS, ParseContext, get_parser
from rbl.model.traphit import ParseError, TrapHit
from tests.support.log_samples import LOGS, Case, all_cases

CASES = all_cases()


def as_dict(hit: TrapHit) -> dict[str, Any]:
    return {field.name: getattr(hit, field.name) for field in fields(hit)}


def expected(given: dict[str, Any]) -> dict[str, Any]:
    return {**given, "at": datetime.fromisoformat(given["at"])}


@pytest.mark.parametrize("case", CASES, ids=[case.where for case in CASES])
def test_sample_line(case: Case) -> None:
    parse = get_parser(case.fmt)
    ctx = ParseContext(now=case.now, tz=case.tz)
    for line in case.before:  # the file so far, as ingest reads it
        with contextlib.suppress(ParseError):
            parse(line + "\n", ctx)
    if case.error is not None:
        with pytest.raises(ParseError) as raised:
            parse(case.line + "\n", ctx)
        assert case.error in str(raised.value)
        return
    assert case.hits is not None
    hits = parse(case.line + "\n", ctx)
    assert [as_dict(hit) for hit in hits] == [expected(hit) for hit in case.hits]
    for hit in hits:
        assert hit.at.tzinfo is UTC


def test_every_format_has_a_sample_file_with_enough_lines() -> None:
    assert {path.stem.partition(".")[0] for path in LOGS.glob("*.log")} == set(PARSERS)
    kinds: Counter[tuple[str, str]] = Counter()
    for case in CASES:
        kind = "error" if case.error is not None else "hit" if case.hits else "none"
        kinds[case.fmt, kind] += 1
    for fmt in PARSERS:
        total = sum(count for (name, _), count in kinds.items() if name == fmt)
        assert total >= 15, f"{fmt}.log has only {total} lines"
        for kind in ("hit", "none", "error"):
            assert kinds[fmt, kind] >= 1, f"{fmt}.log has no {kind} line"
