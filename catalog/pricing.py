"""Points prices: exact integer arithmetic, always rounded up so the program never pays more
than the points are worth."""

from __future__ import annotations

BPS = 10_000


def points_for(face_value: int, point_value: int, markup_bps: int = 0) -> int:
    """Points for `face_value` minor units when one point is worth `point_value` minor units."""
    numerator = face_value * (BPS + markup_bps)
    denominator = BPS * point_value
    return -(-numerator // denominator)


def max_face_value_within(points: int, point_value: int, markup_bps: int = 0) -> int:
    """The largest face value whose price is at most `points`."""
    return (points * BPS * point_value) // (BPS + markup_bps)


def min_face_value_from(points: int, point_value: int, markup_bps: int = 0) -> int:
    """The smallest face value whose price is at least `points`."""
    if points <= 0:
        return 0
    return ((points - 1) * BPS * point_value) // (BPS + markup_bps) + 1
