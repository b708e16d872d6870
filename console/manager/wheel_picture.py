"""A wheel as a picture and its figures as text, written exactly as
console/static/console/wheel.js writes them in the browser: the server draws the same SVG
for a page without script and for a campaign's page, and the designer's figures read the
same before and after the script takes over. Pure: no I/O.

The numbers themselves are the domain's (games/wheel.py `economics`); this module only
formats them. Both sides round half up on the exact binary value (JavaScript's `toFixed`),
so a figure typed in the browser and one rendered here never differ by a rounding rule.
"""

from __future__ import annotations

import math
from decimal import ROUND_HALF_UP, Decimal

import msgspec

from games.wheel import Economics

# Colours of segments that name none, in order (readable beside each other and on white).
PALETTE = ("#1f5fbf", "#f2a900", "#1e7b34", "#b3261e", "#6a3fb5", "#0f7c86", "#c2571a", "#4a4f5a")
CENTRE = 100.0
RADIUS = 96.0


class Slice(msgspec.Struct, frozen=True):
    path: str
    colour: str


class Bar(msgspec.Struct, frozen=True):
    """One segment of the report's chart: configured odds and observed share as bar widths."""

    label: str
    y: float
    configured_width: str
    observed_width: str
    configured: str
    observed: str
    wins: int


def fixed(value: float, places: int) -> str:
    """`value.toFixed(places)` of JavaScript, for a finite value: half up on the exact binary value."""
    exact = Decimal(value if value != 0 else 0.0)  # -0 reads "0" in both
    return str(exact.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP))


def grouped(text: str) -> str:
    """Thousands separated by commas: "12345.50" -> "12,345.50"."""
    whole, _, part = text.partition(".")
    sign = "-" if whole.startswith("-") else ""
    digits = whole.lstrip("-")
    groups = []
    while len(digits) > 3:
        groups.insert(0, digits[-3:])
        digits = digits[:-3]
    groups.insert(0, digits)
    return sign + ",".join(groups) + ("." + part if part else "")


def percent(share: float) -> str:
    return fixed(share * 100, 2) + "%"


def points(value: float) -> str:
    return grouped(fixed(value, 2))


def rtp(economics: Economics) -> str:
    return "free wheel" if economics.return_to_player is None else percent(economics.return_to_player)


def colour_of(index: int, chosen: str | None) -> str:
    return chosen or PALETTE[index % len(PALETTE)]


def _point(angle: float) -> str:
    return f"{fixed(CENTRE + RADIUS * math.cos(angle), 2)} {fixed(CENTRE + RADIUS * math.sin(angle), 2)}"


def slices(weights: list[int], colours: list[str | None]) -> list[Slice]:
    """One path per segment, clockwise from the top, each as wide as its share of the weight."""
    total = sum(weights)
    if total <= 0:
        return []
    drawn = []
    before = 0
    for index, weight in enumerate(weights):
        colour = colour_of(index, colours[index] if index < len(colours) else None)
        if weight <= 0:
            before += max(weight, 0)
            continue
        if weight == total:  # the whole wheel: two half circles (an arc cannot end where it starts)
            top, bottom = fixed(CENTRE - RADIUS, 2), fixed(CENTRE + RADIUS, 2)
            r, c = fixed(RADIUS, 2), fixed(CENTRE, 2)
            drawn.append(Slice(path=f"M {c} {top} A {r} {r} 0 1 1 {c} {bottom} A {r} {r} 0 1 1 {c} {top} Z",
                               colour=colour))
            before += weight
            continue
        start = 2 * math.pi * before / total - math.pi / 2
        before += weight
        end = 2 * math.pi * before / total - math.pi / 2
        large = 1 if weight * 2 > total else 0
        r, c = fixed(RADIUS, 2), fixed(CENTRE, 2)
        drawn.append(Slice(path=f"M {c} {c} L {_point(start)} A {r} {r} 0 {large} 1 {_point(end)} Z", colour=colour))
    return drawn


CHART_WIDTH = 300.0
ROW_HEIGHT = 34.0


def bars(labels: list[str], configured: list[float], wins: list[int], spins: int) -> list[Bar]:
    """The report chart's rows: each segment's configured probability and its observed share
    of the spins so far, as widths out of CHART_WIDTH."""
    rows = []
    for index, (label, probability, won) in enumerate(zip(labels, configured, wins)):
        share = won / spins if spins else 0.0
        rows.append(Bar(label=label, y=index * ROW_HEIGHT, configured_width=fixed(probability * CHART_WIDTH, 2),
                        observed_width=fixed(share * CHART_WIDTH, 2), configured=percent(probability),
                        observed=percent(share), wins=won))
    return rows
