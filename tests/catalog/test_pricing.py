"""Points prices (catalog/pricing.py): exact integers, rounded up so the program never pays
more than the points are worth, and bounds that invert a price exactly (the catalog's points
range search stands on them)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from catalog.pricing import BPS, max_face_value_within, min_face_value_from, points_for

face_values = st.integers(1, 10**9)
point_values = st.integers(1, 1_000_000)
markups = st.integers(0, 5000)


def test_prices_round_up_and_the_bounds_invert_them_exactly() -> None:
    assert points_for(2500, 1) == 2500
    assert points_for(2500, 2) == 1250
    assert points_for(2501, 2) == 1251
    assert points_for(1000, 1, markup_bps=250) == 1025
    assert points_for(5000, 2, markup_bps=500) == 2625  # $50 at 2 cents a point, 5% markup
    for value in (1, 99, 1000, 2501, 77_777):
        for pv, markup in ((1, 0), (2, 0), (3, 250), (7, 1000)):
            price = points_for(value, pv, markup)
            assert max_face_value_within(price, pv, markup) >= value
            assert points_for(max_face_value_within(price, pv, markup), pv, markup) <= price
            assert min_face_value_from(price, pv, markup) <= value
            assert points_for(min_face_value_from(price, pv, markup), pv, markup) >= price


@given(value=face_values, pv=point_values, markup=markups)
def test_a_price_covers_the_value_with_its_markup_and_one_point_less_would_not(value: int, pv: int,
                                                                               markup: int) -> None:
    price = points_for(value, pv, markup)
    owed = value * (BPS + markup)  # in minor units times BPS
    assert price * pv * BPS >= owed
    assert (price - 1) * pv * BPS < owed


@given(points=st.integers(0, 10**12), pv=point_values, markup=markups)
def test_the_bounds_are_the_largest_and_smallest_face_values_for_a_points_amount(points: int, pv: int,
                                                                                 markup: int) -> None:
    most = max_face_value_within(points, pv, markup)
    assert points_for(most, pv, markup) <= points < points_for(most + 1, pv, markup)
    least = min_face_value_from(points, pv, markup)
    if points == 0:
        assert least == 0
    else:
        assert points_for(least, pv, markup) >= points > points_for(least - 1, pv, markup)
