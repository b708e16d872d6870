"""Redis replies as text: the client answers bytes, while tests and some clients decode."""

from __future__ import annotations

from typing import Any


def reply_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
