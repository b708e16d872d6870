"""Charts drawn on the server as SVG: no script, no chart library, nothing the console's CSP
must allow, and the same picture with JavaScript off. Each chart comes with its numbers as a
table for screen readers and for anyone who wants the figures."""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

WIDTH, HEIGHT, AXIS = 900, 220, 40


class Bar(msgspec.Struct, frozen=True):
    x: float
    y: float
    width: float
    height: float
    label: str  # what a tooltip says


class Series(msgspec.Struct, frozen=True):
    name: str
    css: str  # the class that colours it (console.css)
    bars: list[Bar]


class BarChart(msgspec.Struct, frozen=True):
    width: int
    height: int
    axis: int
    top: int  # the value of the top grid line
    series: list[Series]
    ticks: list[tuple[float, str]]  # x positions of the day labels


def _nice_top(peak: int) -> int:
    """A round number at or above the peak (1, 2 or 5 times a power of ten)."""
    if peak <= 0:
        return 1
    magnitude = 10 ** (len(str(peak)) - 1)
    for step in (1, 2, 5, 10):
        if step * magnitude >= peak:
            return step * magnitude
    return 10 * magnitude


def grouped_bars(labels: Sequence[str], series: Sequence[tuple[str, str, Sequence[int]]],
                 tick_every: int = 15) -> BarChart:
    """Bars side by side per label, scaled to the highest value of any series."""
    top = _nice_top(max((v for _, _, values in series for v in values), default=0))
    slot = (WIDTH - AXIS) / max(len(labels), 1)
    width = slot / (len(series) + 0.5)
    drawn = []
    for index, (name, css, values) in enumerate(series):
        bars = []
        for position, (label, value) in enumerate(zip(labels, values)):
            height = (HEIGHT - 20) * value / top
            bars.append(Bar(x=AXIS + position * slot + index * width, y=HEIGHT - height, width=width * 0.9,
                            height=height, label=f"{label}: {value:,} {name.lower()}"))
        drawn.append(Series(name=name, css=css, bars=bars))
    ticks = [(AXIS + i * slot, label[5:]) for i, label in enumerate(labels) if i % tick_every == 0]
    return BarChart(width=WIDTH, height=HEIGHT, axis=AXIS, top=top, series=drawn, ticks=ticks)
