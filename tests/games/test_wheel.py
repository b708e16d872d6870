"""What a wheel costs the program, shown to the manager before launch."""

from __future__ import annotations

import msgspec
import pytest

from games.wheel import WheelSpec, economics, problem_with


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
