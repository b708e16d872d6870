"""Cursor pagination over time-ordered ids, newest first: the cursor is the last id (or key) seen."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from kernel.errors import Invalid

MAX_LIMIT = 200
T = TypeVar("T")


def encode_cursor(last_id: str) -> str:
    return base64.urlsafe_b64encode(last_id.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    if cursor is None or cursor == "":
        return None
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        value = base64.urlsafe_b64decode(padded.encode("ascii")).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise Invalid("cursor is not one this API issued", field="cursor") from None
    if not value or len(value) > 100:
        raise Invalid("cursor is not one this API issued", field="cursor")
    return value


def next_cursor(rows_ids: list[str], limit: int) -> str | None:
    """With `limit + 1` rows fetched, a further page exists when the extra row came back."""
    return encode_cursor(rows_ids[limit - 1]) if len(rows_ids) > limit else None


def page_of(items: Sequence[T], key: Callable[[T], str], limit: int, cursor: str | None,
            descending: bool = True) -> tuple[list[T], str | None]:
    """One page of a list already sorted by `key` (short lists built in memory), with the same
    cursors as the SQL pages: the key of the last item seen."""
    after = decode_cursor(cursor)
    if after is not None:
        items = [i for i in items if (key(i) < after if descending else key(i) > after)]
    return list(items[:limit]), next_cursor([key(i) for i in items[:limit + 1]], limit)


async def newest_first(table: Any, where: Any, limit: int, cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """One page of `table`'s rows matching `where`, newest id first, and the cursor of the next
    page (None on the last): the one way every SQL collection pages."""
    after = decode_cursor(cursor)
    if after is not None:
        where &= table.id < after
    rows = await table.select().where(where).order_by(table.id, ascending=False).limit(limit + 1).run()
    return rows[:limit], next_cursor([r["id"] for r in rows], limit)
