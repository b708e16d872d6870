"""Ids sort by the moment they were made and carry no guessable part."""

from __future__ import annotations

import re
import time

from kernel.ids import ID_MAX, new_id

CROCKFORD = "0123456789abcdefghjkmnpqrstvwxyz"
SHAPE = re.compile(r"^ord_[0-9a-hjkmnp-tv-z]{26}$")  # Crockford base32: no i, l, o, u


def _millis(made: str) -> int:
    value = 0
    for digit in made.split("_", 1)[1][:10]:
        value = value * 32 + CROCKFORD.index(digit)
    return value


def test_an_id_is_a_prefix_and_26_crockford_digits() -> None:
    made = [new_id("ord") for _ in range(2000)]
    assert all(SHAPE.match(m) for m in made), [m for m in made if not SHAPE.match(m)][:3]
    assert all(len(m) <= ID_MAX for m in made)
    assert len(set(made)) == len(made)  # 80 random bits: no two alike


def test_its_first_ten_digits_are_the_millisecond_it_was_made() -> None:
    before = time.time_ns() // 1_000_000
    made = new_id("tx")
    after = time.time_ns() // 1_000_000
    assert before <= _millis(made) <= after


def test_ids_made_later_sort_after() -> None:
    first = new_id("ord")
    time.sleep(0.002)
    later = [new_id("ord") for _ in range(50)]
    assert all(first < other for other in later)


def test_the_random_part_uses_every_digit() -> None:
    tails = "".join(new_id("x")[-16:] for _ in range(500))
    assert set(tails) == set("0123456789abcdefghjkmnpqrstvwxyz")
