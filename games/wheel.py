"""A spin-to-win wheel as a manager designs it: segments, prizes, and what a spin costs the
program on average. Pure: no I/O."""

from __future__ import annotations

from datetime import datetime
from fractions import Fraction
from typing import Annotated

import msgspec
from msgspec import Meta

from programs.rules import Audience, SpinCount
from kernel.ids import Id
from kernel.clock import utc

MAX_TOTAL_WEIGHT = 2**32


class PointsPrize(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="points", tag_field="type"):
    points: Annotated[int, Meta(ge=1, le=100_000_000)]


class ItemPrize(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="item", tag_field="type"):
    item_id: Id
    stock: Annotated[int, Meta(ge=0, le=10_000_000)]


class FreeSpinPrize(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="free_spin", tag_field="type"):
    spins: SpinCount = 1


class EntriesPrize(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="entries", tag_field="type"):
    """Free tickets in an open sweepstakes of the program (within its per-participant maximum:
    a participant who could not take them cannot land on this segment)."""

    sweepstakes_id: Id
    entries: Annotated[int, Meta(ge=1, le=1_000)] = 1


class NothingPrize(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="nothing", tag_field="type"):
    pass


Prize = PointsPrize | ItemPrize | FreeSpinPrize | EntriesPrize | NothingPrize


class Segment(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    label: Annotated[str, Meta(min_length=1, max_length=60)]
    weight: Annotated[int, Meta(ge=1, le=MAX_TOTAL_WEIGHT)]
    prize: Prize
    color: Annotated[str, Meta(pattern=r"^#[0-9a-fA-F]{6}$")] | None = None


class Eligibility(Audience, frozen=True, forbid_unknown_fields=True):
    """Who may spin the wheel."""


class WheelSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    cost_points: Annotated[int, Meta(ge=0, le=100_000_000)]
    segments: Annotated[list[Segment], Meta(min_length=1, max_length=64)]
    starts_at: Annotated[datetime, Meta(tz=True)] | None = None
    ends_at: Annotated[datetime, Meta(tz=True)] | None = None
    max_spins_per_participant_per_day: Annotated[int, Meta(ge=1, le=10_000)] | None = None
    budget_points: Annotated[int, Meta(ge=1, le=10**12)] | None = None
    eligibility: Eligibility | None = None
    description: Annotated[str, Meta(max_length=2000)] = ""


class SegmentOdds(msgspec.Struct, frozen=True):
    label: str
    probability: float
    prize_value_points: int


class Economics(msgspec.Struct, frozen=True):
    """What the manager sees before launching: the average cost of a spin to the program."""

    expected_payout_points: float
    return_to_player: float | None  # expected payout / cost; None for a free wheel
    odds: list[SegmentOdds]


def open_at(spec: WheelSpec, now: datetime) -> bool:
    """Within the campaign's dates at `now`. Listing wheels asks this; a spin itself is
    checked inside rw_spin (games/spins.lua) against the launched runtime's dates."""
    return not ((spec.starts_at and utc(spec.starts_at) > now) or (spec.ends_at and utc(spec.ends_at) <= now))


def problem_with(spec: WheelSpec) -> str | None:
    total = sum(s.weight for s in spec.segments)
    if not 1 <= total <= MAX_TOTAL_WEIGHT:
        return f"segment weights must sum to between 1 and 2^32 (they sum to {total})"
    if spec.starts_at and spec.ends_at and utc(spec.starts_at) >= utc(spec.ends_at):
        return "starts_at must be before ends_at"
    return None


def prize_value(prize: Prize, cost_points: int, item_prices: dict[str, int]) -> int:
    """A prize's worth in points: its points, an item's points price, a free spin's cost,
    entries at their sweepstakes' price (`item_prices` holds that per sweepstakes id)."""
    if isinstance(prize, PointsPrize):
        return prize.points
    if isinstance(prize, ItemPrize):
        return item_prices.get(prize.item_id, 0)
    if isinstance(prize, EntriesPrize):
        return prize.entries * item_prices.get(prize.sweepstakes_id, 0)
    if isinstance(prize, FreeSpinPrize):
        return prize.spins * cost_points
    return 0


def economics(spec: WheelSpec, item_prices: dict[str, int]) -> Economics:
    total = sum(s.weight for s in spec.segments)
    values = [prize_value(s.prize, spec.cost_points, item_prices) for s in spec.segments]
    expected = Fraction(sum(s.weight * v for s, v in zip(spec.segments, values)), total)
    odds = [SegmentOdds(label=s.label, probability=s.weight / total, prize_value_points=v)
            for s, v in zip(spec.segments, values)]
    rtp = float(expected / spec.cost_points) if spec.cost_points else None
    return Economics(expected_payout_points=float(expected), return_to_player=rtp, odds=odds)
