"""The bounded map the in-process caches share (kernel/bounded_map.py)."""

from __future__ import annotations

import time

from kernel.bounded_map import BoundedMap


def test_the_entry_put_first_goes_first_when_full_even_if_read_since() -> None:
    kept: BoundedMap[str, int] = BoundedMap(2)
    kept.put("a", 1)
    kept.put("b", 2)
    assert kept.get("a") == 1
    kept.put("c", 3)
    assert (kept.get("a"), kept.get("b"), kept.get("c"), len(kept)) == (None, 2, 3, 2)


def test_by_use_the_least_recently_read_goes_first() -> None:
    kept: BoundedMap[str, int] = BoundedMap(2, by_use=True)
    kept.put("a", 1)
    kept.put("b", 2)
    assert kept.get("a") == 1
    kept.put("c", 3)
    assert (kept.get("a"), kept.get("b"), kept.get("c")) == (1, None, 3)


def test_an_entry_older_than_the_max_age_is_absent_and_pop_forgets() -> None:
    kept: BoundedMap[str, int] = BoundedMap(10, max_age=0.05)
    kept.put("a", 1)
    kept.put("b", 2)
    kept.pop("b")
    kept.pop("never there")
    assert (kept.get("a"), kept.get("b")) == (1, None)
    time.sleep(0.06)
    assert kept.get("a") is None and len(kept) == 0
