"""The Prometheus text exposition format (version 0.0.4), and nothing else.

Pure: families in, bytes out. Kept apart from collection so the format is
tested on its own (label escaping, one HELP/TYPE per family, sorted output
that diffs cleanly between scrapes).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"


@dataclass
class Family:
    """One metric name with its type, help text and samples (labels, value)."""

    name: str
    kind: str  # "counter" or "gauge"
    help: str
    samples: list[tuple[Mapping[str, str], float]] = field(default_factory=list)

    def add(self, value: float, **labels: str) -> None:
        self.samples.append((labels, value))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))


def render(families: Iterable[Family]) -> bytes:
    """The exposition text; a family without samples is left out entirely."""
    lines: list[str] = []
    for family in sorted(families, key=lambda f: f.name):
        if not family.samples:
            continue
        help_text = family.help.replace("\\", "\\\\").replace("\n", "\\n")
        lines.append(f"# HELP {family.name} {help_text}")
        lines.append(f"# TYPE {family.name} {family.kind}")
        for labels, value in sorted(family.samples, key=lambda s: sorted(s[0].items())):
            if labels:
                text = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
                lines.append(f"{family.name}{{{text}}} {_number(value)}")
            else:
                lines.append(f"{family.name} {_number(value)}")
    return ("\n".join(lines) + "\n").encode("utf-8")
