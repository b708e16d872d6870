"""What follows in SQL from a partner order's capture: its settled mark and the participant's
"is ready" line, written by the journal projector (issue #13).

A partner's fulfil moves the order to `fulfilled` in SQL, then captures its held points in
Redis. The capture's journal entry carries the participant's line (`READY` in its metadata),
and this follower turns it into the order's `settled_at` and the feed line, in the projector's
batch: the fulfil answers with no SQL write after the capture, where it waited on SQLite's
writer a second time (claim -> fulfil, two requests with three writer round trips, was the
load mix's last operation past its p99 target at 1,000 requests/s). Until the batch is
written the order reads `fulfilled` with its card, and the line comes one projection pass
later. Both writes are no-ops the second time (the mark only where it is missing, the line
by its key), so a replayed entry, a retried fulfil and the order sweep's settlement of an
order whose entry is still waiting all leave one mark and one line.
"""

from __future__ import annotations

import msgspec

from programs.feed import FEED_COLUMNS, FeedEntry, feed_rows
from wallet.journal import JournalEntry, Rows

READY = "ready"

# Only where no settlement marked it: the request of an order fulfilled in an earlier build,
# or the sweep, may have.
_MARK = "UPDATE orders SET settled_at = ? WHERE id = ? AND settled_at IS NULL AND status = 'fulfilled'"


class _Carried(msgspec.Struct, frozen=True):
    ready: str | None = None


def ready_line(order_id: str, participant_id: str, title: str) -> FeedEntry:
    """The participant's line of a delivered order, a pool's or a partner's (its key makes it
    one line per order)."""
    return _line(order_id, participant_id, f"Your {title} is ready")


def ready_key(order_id: str) -> str:
    """The key of an order's line once delivered (also a pool order's one line: pooled_orders.py
    `feed_of`)."""
    return f"order:{order_id}:fulfilled"


def _line(order_id: str, participant_id: str, text: str) -> FeedEntry:
    return FeedEntry(key=ready_key(order_id), participant_id=participant_id, kind="order_fulfilled", text=text,
                     reference=order_id)


async def write_settled(program_id: str, entries: list[JournalEntry]) -> list[Rows]:
    """The follower of `redemption` entries (wired in api/projection.py): for each capture
    that carries a ready line, the order's settled mark and the line."""
    marks: list[tuple[object, ...]] = []
    lines: list[tuple[object, ...]] = []
    for entry in entries:
        if f'"{READY}"' not in entry.metadata or not entry.reference or not entry.participant_id:
            continue  # a pool order's capture, or one whose request wrote its own rows
        try:
            text = msgspec.json.decode(entry.metadata, type=_Carried).ready
        except msgspec.DecodeError:
            continue
        if not text:
            continue
        marks.append((entry.created_at, entry.reference))
        lines += feed_rows(program_id, [_line(entry.reference, entry.participant_id, text)], entry.created_at)
    if not marks:
        return []
    return [Rows(table="orders", columns=(), rows=marks, statement=_MARK),
            Rows(table="feed_items", columns=FEED_COLUMNS, rows=lines)]
