"""Small bar charts drawn on the server as SVG (no script, no style attribute: the
Content-Security-Policy allows neither inline)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 320
HEIGHT = 120
LABEL_SPACE = 16  # below the bars, for the first and last labels


@dataclass(frozen=True)
class Bar:
    """One bar: its box in the chart's coordinates, its label and value."""

    x: float
    y: float
    width: float
    height: float
    label: str
    value: int


@dataclass(frozen=True)
class Chart:
    """A titled bar chart; ``summary`` says in words what the bars show."""

    title: str
    bars: tuple[Bar, ...]
    summary: str
    width: int = WIDTH
    height: int = HEIGHT


def bar_chart(title: str, points: Sequence[tuple[str, int]]) -> Chart:
    """Bars for ``points`` (label, value), scaled to the largest value."""
    top = max((value for _, value in points), default=0) or 1
    plot = HEIGHT - LABEL_SPACE
    slot = WIDTH / max(len(points), 1)
    bars = tuple(
        Bar(
            x=round(index * slot + slot * 0.1, 1),
            y=round(plot - plot * value / top, 1),
            width=round(slot * 0.8, 1),
            height=round(plot * value / top, 1),
            label=label,
            value=value,
        )
        for index, (label, value) in enumerate(points)
    )
    summary = ", ".join(f"{label}: {value}" for label, value in points)
    return Chart(title, bars, summary)
