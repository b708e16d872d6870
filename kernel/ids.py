"""Opaque, time-ordered ids: a prefix, 48 bits of milliseconds, 80 random bits.

Ordering by id is ordering by creation, which makes cursor pagination a plain `id < cursor`.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Annotated

from msgspec import Meta

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lowercase
ID_MAX = 40  # a prefix, "_" and 26 characters, with room for a longer prefix
Id = Annotated[str, Meta(min_length=1, max_length=ID_MAX)]
IdOrEmpty = Annotated[str, Meta(max_length=ID_MAX)]  # where a client may send "" too

# Every pair of digits (10 bits), and the current millisecond's ten digits: a redemption makes
# five ids, and a digit at a time in Python cost about 10 us an id (now about 3).
_PAIRS = [a + b for a in _ALPHABET for b in _ALPHABET]
_millis_digits: tuple[int, str] = (-1, "")


def _base32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


# The random bits come from the OS 4,000 bytes at a time (400 ids), not 10 a call: the
# getrandom call releases the GIL, and a thread that releases it waits for it again behind
# any other thread running Python, up to the 5 ms switch interval. On the API's event loop,
# beside its SQLite threads, an id cost 300 us of wall time instead of 3 (beside one busy
# thread, measured), and a CRM batch makes three ids an activity.
_RANDOM_BYTES = 4_000
_random = b""
_taken = 0
_random_lock = threading.Lock()


def _random80() -> int:
    """80 bits from the OS's CSPRNG; no two callers, threads or forked processes get the same."""
    global _random, _taken
    with _random_lock:
        if _taken + 10 > len(_random):
            _random, _taken = os.urandom(_RANDOM_BYTES), 0
        start = _taken
        _taken += 10
        return int.from_bytes(_random[start:start + 10])


def _forget_random() -> None:
    """In a forked child: the parent's unused bytes are the parent's ids to come."""
    global _random, _random_lock, _taken
    _random, _taken, _random_lock = b"", 0, threading.Lock()


os.register_at_fork(after_in_child=_forget_random)


def new_id(prefix: str) -> str:
    global _millis_digits
    millis = time.time_ns() // 1_000_000
    head = _millis_digits  # one tuple, swapped whole: another thread sees the old or the new
    if head[0] != millis:
        head = _millis_digits = (millis, _base32(millis, 10))
    r, p = _random80(), _PAIRS
    return (f"{prefix}_{head[1]}{p[r >> 70]}{p[r >> 60 & 1023]}{p[r >> 50 & 1023]}{p[r >> 40 & 1023]}"
            f"{p[r >> 30 & 1023]}{p[r >> 20 & 1023]}{p[r >> 10 & 1023]}{p[r & 1023]}")
