"""The participant's feed: what happened to them, in plain words."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime, timezone

import msgspec
from piccolo.query.methods.select import Select

from programs.tables import FeedItem
from kernel.errors import Invalid
from kernel.ids import new_id
from kernel.pages import decode_cursor, next_cursor
from kernel.clock import utc
from kernel.sqlite_pool import Statement, inserts, run_statement


class FeedEntry(msgspec.Struct, frozen=True):
    """One line to write; `key` makes writing it again (a retry, a replay) a no-op."""

    key: str
    participant_id: str
    kind: str
    text: str
    points: int | None = None
    reference: str | None = None
    id: str | None = None  # the line's id when the writer derives it (ordered as the event)


class FeedView(msgspec.Struct, frozen=True):
    id: str
    kind: str
    text: str
    created_at: datetime
    points: int | None = None
    reference: str | None = None


class FeedPage(msgspec.Struct, frozen=True):
    items: list[FeedView]
    next_cursor: str | None


def points_text(points: int, point_name: str, what: str) -> str:
    sign = "+" if points >= 0 else "-"
    return f"{sign}{abs(points):,} {point_name}: {what}"


def owed_paid_line(tx: str, participant_id: str, paid: int, point_name: str) -> FeedEntry:
    """The feed line of an earning (grant, award, release, spin or sweepstakes prize) that
    first paid points a returned sale left owing."""
    return FeedEntry(key=f"owed-paid:{tx}", participant_id=participant_id, kind="owed_paid",
                     text=points_text(-paid, point_name, "paid back what a returned sale left owing"), points=-paid)


FEED_COLUMNS = ("id", "feed_key", "program_id", "participant_id", "kind", "text", "points", "reference", "created_at")


def feed_rows(program_id: str, entries: list[FeedEntry], at: datetime) -> list[tuple[object, ...]]:
    """The lines as rows of FEED_COLUMNS, for the journal projector to write in its batch
    (a line that follows from a journal entry is written there, not on the request path)."""
    return [(e.id or new_id("feed"), f"{program_id}:{e.key}"[:200], program_id, e.participant_id, e.kind, e.text, e.points,
             e.reference, at) for e in entries]


def publishing(program_id: str, entries: list[FeedEntry]) -> list[Statement]:
    """The insert statements that write `entries` (a line already written stays as it is),
    for a caller that runs them inside a transaction of its own (`kernel.sqlite_pool.write_chain`).
    Plain SQL: Piccolo's builder cost about 0.1 ms of CPU a line, on the request path."""
    return inserts("feed_items", FEED_COLUMNS, feed_rows(program_id, entries, datetime.now(timezone.utc)),
                   "ON CONFLICT DO NOTHING", 500)


async def publish(program_id: str, entries: list[FeedEntry]) -> None:
    for statement in publishing(program_id, entries):
        await run_statement(FeedItem._meta.db, statement)


def page_query(program_id: str, participant_id: str, limit: int, after: str | None = None) -> Select:
    """A page of a participant's feed, newest first, read in that order from the index
    feed_items_by_participant (participant_id, id): not sorted from every line they ever had."""
    where = (FeedItem.program_id == program_id) & (FeedItem.participant_id == participant_id)
    if after is not None:
        where &= FeedItem.id < after
    return FeedItem.select(FeedItem.id, FeedItem.kind, FeedItem.text, FeedItem.created_at, FeedItem.points,
                           FeedItem.reference).where(where).order_by(FeedItem.id, ascending=False).limit(limit)


def no_stored_line(key_sql: str) -> str:
    """SQL true when no line is stored under the feed key `key_sql` (an SQL expression): for a
    package that derives lines (`DerivedLines`) to leave out those an earlier build stored,
    whatever id it gave them. One probe of the feed key's unique index a row."""
    return f"NOT EXISTS (SELECT 1 FROM {FeedItem._meta.tablename} WHERE feed_key = {key_sql})"


# Lines another package reads from rows of its own rather than storing each twice (a spin's
# line is its history row: games/spin_feed.py): (program, participant, how many, after which
# line id) -> that many of its lines at most, newest first, with ids ordered as the feed's.
DerivedLines = Callable[[str, str, int, str | None], Awaitable[list[FeedView]]]


async def feed_page(program_id: str, participant_id: str, limit: int = 50, cursor: str | None = None,
                    derived: Sequence[DerivedLines] = ()) -> FeedPage:
    """A page of the participant's feed, newest first: the stored lines and the `derived` ones,
    merged by id. A derived line that is also stored (written before its package derived it)
    shows once, as stored."""
    after = decode_cursor(cursor)
    if after is not None and not after.startswith("feed_"):
        raise Invalid("cursor is not one this API issued", field="cursor")
    rows = await page_query(program_id, participant_id, limit + 1, after).run()
    lines = {r["id"]: FeedView(**{**r, "created_at": utc(r["created_at"])}) for r in rows}
    for source in derived:
        for line in await source(program_id, participant_id, limit + 1, after):
            lines.setdefault(line.id, line)
    newest = sorted(lines.values(), key=lambda line: line.id, reverse=True)[:limit + 1]
    return FeedPage(items=newest[:limit], next_cursor=next_cursor([line.id for line in newest], limit))
