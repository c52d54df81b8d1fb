"""Server-side SVG charts: the geometry only (points, ticks, bars); templates draw it.

No third-party chart code: a history graph is two polylines, a histogram a row of bars.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH, HEIGHT = 800, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 28


@dataclass(frozen=True)
class Line:
    name: str
    css: str
    points: str
    total: int


@dataclass(frozen=True)
class Tick:
    x: float
    y: float
    label: str


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    label: str
    value: int


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    lines: list[Line]
    bars: list[Bar]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    baseline: float
    left: int = LEFT


def _y_ticks(top_value: int) -> tuple[int, list[Tick]]:
    """A round maximum for the y axis and four ticks up to it."""
    step = _nice(max(1, top_value) / 4)
    ceiling = step * 4
    span = HEIGHT - TOP - BOTTOM
    return ceiling, [Tick(LEFT - 6, HEIGHT - BOTTOM - span * i / 4, f"{step * i:,}")
                     for i in range(5)]


def _nice(raw: float) -> int:
    """The smallest of 1, 2, 5 x 10^n that is at least ``raw``."""
    scale = 1
    while True:
        for factor in (1, 2, 5):
            if factor * scale >= raw:
                return factor * scale
        scale *= 10


def lines(labels: Sequence[str], series: Sequence[tuple[str, str, Sequence[int]]],
          label_every: int = 0) -> Chart:
    """A line chart of several series over the same x labels (oldest first)."""
    ceiling, y_ticks = _y_ticks(max((max(v, default=0) for _, _, v in series), default=0))
    count = max(1, len(labels) - 1)
    span_x, span_y = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    drawn = []
    for name, css, values in series:
        points = " ".join(
            f"{LEFT + span_x * i / count:.1f},{HEIGHT - BOTTOM - span_y * v / ceiling:.1f}"
            for i, v in enumerate(values))
        drawn.append(Line(name, css, points, sum(values)))
    every = label_every or max(1, len(labels) // 6)
    x_ticks = [Tick(LEFT + span_x * i / count, HEIGHT - 8, label)
               for i, label in enumerate(labels) if i % every == 0]
    return Chart(WIDTH, HEIGHT, drawn, [], x_ticks, y_ticks, HEIGHT - BOTTOM)


def bars(labels: Sequence[str], values: Sequence[int]) -> Chart:
    """A bar chart, one bar per label (the execution-time histogram)."""
    ceiling, y_ticks = _y_ticks(max(values, default=0))
    span_x, span_y = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = span_x / max(1, len(values))
    drawn = []
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        height = span_y * value / ceiling
        drawn.append(Bar(LEFT + slot * i + 1, HEIGHT - BOTTOM - height, max(1.0, slot - 2),
                         height, label, value))
    x_ticks = [Tick(LEFT + slot * (i + 0.5), HEIGHT - 8, label)
               for i, label in enumerate(labels) if i % 3 == 0]
    return Chart(WIDTH, HEIGHT, [], drawn, x_ticks, y_ticks, HEIGHT - BOTTOM)
