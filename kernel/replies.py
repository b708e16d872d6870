"""Redis replies: the typed answer every function of the library gives, and replies as
text (the client answers bytes, while tests and some clients decode)."""

from __future__ import annotations

from typing import Any

import msgspec


class Reply(msgspec.Struct, frozen=True):
    """What every Redis function answers: `ok`, and when refused a `code` from CONTRACT.md
    (or an internal one such as "seed_moved") with its `detail`; `replayed` when an
    idempotency record answered. No HTTP status: api/problems.py picks it from the code."""

    ok: bool = False
    code: str | None = None
    detail: str | None = None
    replayed: int = 0
    # Idempotency records written before the typed reply hold the HTTP status instead of
    # `ok` (for up to the records' lifetime after an upgrade); read as ok below 300.
    s: int | None = None

    def __post_init__(self) -> None:
        if self.s is not None:
            msgspec.structs.force_setattr(self, "ok", self.s < 300)


def reply_text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)
