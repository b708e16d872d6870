"""Opaque, time-ordered ids: a prefix, 48 bits of milliseconds, 80 random bits.

Ordering by id is ordering by creation, which makes cursor pagination a plain `id < cursor`.
"""

from __future__ import annotations

import secrets
import time
from typing import Annotated

from msgspec import Meta

_ALPHABET = "0123456789abcdefghjkmnpqrstvwxyz"  # Crockford base32, lowercase
ID_MAX = 40  # a prefix, "_" and 26 characters, with room for a longer prefix
Id = Annotated[str, Meta(min_length=1, max_length=ID_MAX)]
IdOrEmpty = Annotated[str, Meta(max_length=ID_MAX)]  # where a client may send "" too


def _base32(value: int, length: int) -> str:
    chars = []
    for _ in range(length):
        chars.append(_ALPHABET[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def new_id(prefix: str) -> str:
    millis = time.time_ns() // 1_000_000
    return f"{prefix}_{_base32(millis, 10)}{_base32(secrets.randbits(80), 16)}"
