"""A bounded map for what a process keeps in memory between requests (campaign rules, seed
pairs, API keys and tokens, leaderboards): at most `size` entries, the oldest out first
when full, and with `max_age` an entry put longer ago than that many seconds is absent."""

from __future__ import annotations

import time
from collections import OrderedDict
from typing import Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")


class BoundedMap(Generic[K, V]):
    """The oldest entry is the one put first or, with `by_use`, the one least recently read
    or put. Values are never None: `get` answers None for an absent (or too old) entry."""

    __slots__ = ("size", "max_age", "by_use", "_items")

    def __init__(self, size: int, max_age: float | None = None, by_use: bool = False) -> None:
        self.size = size
        self.max_age = max_age
        self.by_use = by_use
        self._items: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> V | None:
        hit = self._items.get(key)
        if hit is None:
            return None
        if self.max_age is not None and time.monotonic() - hit[0] >= self.max_age:
            del self._items[key]
            return None
        if self.by_use:
            self._items.move_to_end(key)
        return hit[1]

    def put(self, key: K, value: V) -> None:
        self._items[key] = (time.monotonic() if self.max_age is not None else 0.0, value)
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)

    def pop(self, key: K) -> None:
        self._items.pop(key, None)

    def keys(self) -> list[K]:
        """The keys held now, oldest first (entries too old are still listed until read)."""
        return list(self._items)

    def __len__(self) -> int:
        return len(self._items)
