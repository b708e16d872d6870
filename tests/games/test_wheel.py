"""What a wheel costs the program, shown to the manager before launch."""

from __future__ import annotations

from fractions import Fraction

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from games.wheel import WheelSpec, economics, prize_value, problem_with

# Pure functions: no store, so the cluster pass has nothing to add.
pytestmark = pytest.mark.one_store


def wheel(**overrides) -> WheelSpec:  # type: ignore[no-untyped-def]
    body = {"name": "Spring spin", "cost_points": 100, "segments": [
        {"label": "500 pts", "weight": 10, "prize": {"type": "points", "points": 500}},
        {"label": "Amazon $25", "weight": 1, "prize": {"type": "item", "item_id": "item_a", "stock": 5}},
        {"label": "Spin again", "weight": 20, "prize": {"type": "free_spin"}},
        {"label": "Nothing", "weight": 69, "prize": {"type": "nothing"}},
    ], **overrides}
    return msgspec.convert(body, WheelSpec)


def test_expected_payout_and_return_to_player() -> None:
    result = economics(wheel(), {"item_a": 2500})
    # (10*500 + 1*2500 + 20*100 + 69*0) / 100 = 95 points per spin of 100: RTP 0.95
    assert result.expected_payout_points == 95.0
    assert result.return_to_player == pytest.approx(0.95)
    assert [o.probability for o in result.odds] == [0.1, 0.01, 0.2, 0.69]


def test_a_free_wheel_has_no_return_to_player_ratio() -> None:
    assert economics(wheel(cost_points=0), {"item_a": 2500}).return_to_player is None


def test_weights_outside_the_fair_range_and_backwards_dates_are_refused() -> None:
    too_heavy = wheel(segments=[{"label": "a", "weight": 2**32, "prize": {"type": "nothing"}},
                                {"label": "b", "weight": 1, "prize": {"type": "nothing"}}])
    assert "2^32" in (problem_with(too_heavy) or "")
    backwards = wheel(starts_at="2026-12-01T00:00:00Z", ends_at="2026-11-01T00:00:00Z")
    assert problem_with(backwards) == "starts_at must be before ends_at"
    assert problem_with(wheel()) is None
    with pytest.raises(msgspec.ValidationError):
        wheel(segments=[{"label": "a", "weight": 0, "prize": {"type": "nothing"}}])
    with pytest.raises(msgspec.ValidationError):
        wheel(segments=[{"label": "a", "weight": 1, "prize": {"type": "cash", "amount": 5}}])


def test_each_prize_is_worth_what_the_program_gives_up() -> None:
    spec = wheel(cost_points=40, segments=[
        {"label": "3 spins", "weight": 1, "prize": {"type": "free_spin", "spins": 3}},
        {"label": "5 tickets", "weight": 1, "prize": {"type": "entries", "sweepstakes_id": "swp_a", "entries": 5}},
        {"label": "Gone item", "weight": 1, "prize": {"type": "item", "item_id": "item_gone", "stock": 0}},
        {"label": "250 pts", "weight": 1, "prize": {"type": "points", "points": 250}},
    ])
    # A free spin is worth a paid spin; tickets their sweepstakes' price; an unpriced item nothing.
    assert [prize_value(s.prize, spec.cost_points, {"swp_a": 7}) for s in spec.segments] == [120, 35, 0, 250]
    result = economics(spec, {"swp_a": 7})
    assert [o.prize_value_points for o in result.odds] == [120, 35, 0, 250]
    assert result.expected_payout_points == (120 + 35 + 250) / 4


@given(weights=st.lists(st.integers(1, 2**20), min_size=1, max_size=8), cost=st.integers(1, 1000),
       prizes=st.lists(st.integers(1, 10_000), min_size=8, max_size=8))
def test_the_expected_payout_is_the_weighted_mean_and_the_odds_sum_to_one(weights: list[int], cost: int,
                                                                          prizes: list[int]) -> None:
    spec = wheel(cost_points=cost, segments=[
        {"label": f"s{i}", "weight": w, "prize": {"type": "points", "points": prizes[i]}} for i, w in enumerate(weights)])
    result = economics(spec, {})
    mean = Fraction(sum(w * p for w, p in zip(weights, prizes)), sum(weights))
    assert result.expected_payout_points == pytest.approx(float(mean))
    assert result.return_to_player == pytest.approx(float(mean / cost))
    assert sum(o.probability for o in result.odds) == pytest.approx(1.0)
