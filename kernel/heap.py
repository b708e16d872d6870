"""The garbage collector in a long-running server process (the API, the worker).

Under load a request allocates a few thousand objects, most freed by reference counting at
once. With Python's defaults (a young collection every 700 allocations net) the collector
ran several times a request, and every full collection walked what start-up built (modules,
routes, schemas, caches: about 90,000 objects) although none of it ever becomes garbage.
Measured with bench/ab.py and bench/profile.py (bench/HISTORY.md): freezing start-up's
objects took a wallet read's p99 from about 155 to 40 ms; a larger young generation took
another tenth off its CPU per request. Cycles still get collected, a little later."""

from __future__ import annotations

import gc

YOUNG = 20_000  # allocations between young collections (Python's default: 700)
OLDER = 50  # young collections per middle one, and middle per full (default: 10)


def settle() -> tuple[int, int, int]:
    """Call once start-up is done: freezes what exists and widens the generations. Answers
    the thresholds it replaced, for `unsettle`."""
    previous = gc.get_threshold()
    gc.collect()  # start-up's garbage first: frozen, it would never be collected
    gc.freeze()
    gc.set_threshold(YOUNG, OLDER, OLDER)
    return previous


def unsettle(previous: tuple[int, int, int]) -> None:
    """At the end of an app that shares its process (a test session starts many)."""
    gc.unfreeze()
    gc.set_threshold(*previous)
