"""A spin's feed line, read from its history row instead of stored beside it.

A spin that won something shows in the participant's feed ("Won 100 points on Spring
wheel"). The projector used to write that line as a feed_items row with the spin's row: a
second row indexed by participant for every winning spin, whose index page a batch rewrites
for each participant in it. It cost about a quarter of the worker's CPU a spin
(`bench/games.py --drain`: 122-126 us an entry with the line, 91 without). The line says
nothing the spin row does not hold, so the feed reads it from there (`spin_lines`, passed to
programs/feed.py `feed_page` by the route): the same id (`feed_<the spin id's tail>`), text,
points and reference as the stored lines. A spin whose line an earlier build stored keeps that
line (under `<program>:spin:<spin id>`, whatever its id: before 2026-12-01 the request wrote it
with an id of its own) and gets no second one. A spin's line is there exactly when its history
row is: both are written by the projector's batch, as the stored line was. It says the
program's point name of the moment it is read. A spin whose campaign design cannot be read
(a stored spec a later WheelSpec no longer decodes) gets a plainer line from its segment's label,
so the participant's feed still answers.

The read walks the participant's spins newest first until it has its lines: past the spins
that won nothing, so its cost grows with the losses between two wins, not with the history.
"""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from piccolo.columns.combination import WhereRaw

from games.spin_projection import announcement, feed_id_of, launched_spec
from games.tables import Spin
from games.wheel import NothingPrize
from kernel.clock import utc
from kernel.errors import NotFound
from programs.feed import FeedView, no_stored_line
from programs.programs import get_program

# The prize column of a spin that won nothing (games/spin_projection.py spin_row writes it so):
# no line, skipped by the query rather than read and dropped.
NOTHING = msgspec.json.encode(msgspec.to_builtins(NothingPrize())).decode()
# The feed key the projector stored a spin's line under, before the line was read from the row.
STORED_KEY = "spins.program_id || ':spin:' || spins.id"

log = logging.getLogger("rw.spins")
_UNREADABLE: set[tuple[str, str]] = set()  # (program, campaign) whose design was logged unreadable


def spin_id_after(line_id: str) -> str:
    """The spin id a feed line id is ordered as (both carry the same time-ordered tail)."""
    return "spn_" + line_id.removeprefix("feed_")


async def spin_lines(program_id: str, participant_id: str, limit: int, after: str | None) -> list[FeedView]:
    """The participant's spin lines, newest first: at most `limit`, older than the line `after`.
    Read from the index spins_by_participant (participant_id, id)."""
    where = (Spin.program_id == program_id) & (Spin.participant_id == participant_id) & (Spin.prize != NOTHING) \
        & WhereRaw(no_stored_line(STORED_KEY))
    if after is not None:
        where &= Spin.id < spin_id_after(after)
    rows = await Spin.select(Spin.id, Spin.campaign_id, Spin.segment_index, Spin.label, Spin.created_at) \
        .where(where).order_by(Spin.id, ascending=False).limit(limit).run()
    if not rows:
        return []
    point_name = (await get_program(program_id)).point_name
    lines = []
    for row in rows:
        said = await _said(program_id, row, point_name)
        if said is not None:
            lines.append(FeedView(id=feed_id_of(row["id"]), kind="spin", text=said[0], created_at=utc(row["created_at"]),
                                  points=said[1], reference=row["id"]))
    return lines


async def _said(program_id: str, row: dict[str, Any], point_name: str) -> tuple[str, int | None] | None:
    """The line's text and points from the campaign's design; from the row's own segment label
    when that design cannot be read (a stored spec a later WheelSpec no longer decodes): one
    plainer line, rather than the participant's whole feed failing."""
    try:
        return announcement(await launched_spec(program_id, row["campaign_id"]), row["segment_index"], point_name)
    except (msgspec.DecodeError, msgspec.ValidationError, IndexError, NotFound):
        if (program_id, row["campaign_id"]) not in _UNREADABLE:  # once a campaign, not every page read
            _UNREADABLE.add((program_id, row["campaign_id"]))
            log.warning("campaign %s's design cannot be read; its spins' feed lines say the segment's label",
                        row["campaign_id"], exc_info=True)
        return f"Won {row['label']}", None
