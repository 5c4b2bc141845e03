"""The evidence chart: bar geometry for the inline SVG of hits per day (or hour).

Computed here so the template stays dumb: it only draws the rectangles and
prints the text alternative. Pure: imports nothing from rbl.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True, slots=True)
class Bar:
    x: int
    y: int
    height: int
    day: date
    count: int


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bar_width: int
    bars: list[Bar]
    total: int
    busiest: tuple[date, int] | None
    first_day: date | None
    last_day: date | None


CHART_DAYS = 90  # days the lookup page charts


def hits_chart(daily: Sequence[tuple[date, int]], height: int = 80, bar_width: int = 6) -> Chart:
    """Bar geometry for the inline SVG chart, computed here so the template stays dumb."""
    peak = max((count for _, count in daily), default=0)
    bars = []
    for i, (day, count) in enumerate(daily):
        bar_height = 0 if peak == 0 else max(1 if count else 0, round(count / peak * height))
        bars.append(Bar(i * bar_width, height - bar_height, bar_height, day, count))
    busiest = max(daily, key=lambda item: (item[1], item[0])) if peak else None
    return Chart(
        width=len(daily) * bar_width,
        height=height,
        bar_width=bar_width,
        bars=bars,
        total=sum(count for _, count in daily),
        busiest=busiest,
        first_day=daily[0][0] if daily else None,
        last_day=daily[-1][0] if daily else None,
    )
