"""A spin's feed line is its history row read as a line (games/spin_feed.py): the feed shows
each winning spin once, in time among the stored lines, page after page; a spin that won
nothing has no line; a line an older build stored for a spin shows once; and the projector
stores no spin line."""

from __future__ import annotations

from typing import Any

import pytest

from games import spin_projection
from games.tables import SpinCampaign
from programs.feed import FeedEntry, publish
from programs.tables import FeedItem
from tests.factories import launched, new_program, projected, spin, spinning_participant

pytestmark = pytest.mark.sql

SURE_POINTS = {"name": "Sure points", "cost_points": 10, "segments": [
    {"label": "50 points", "weight": 1, "prize": {"type": "points", "points": 50}}]}
SURE_NOTHING = {"name": "Sure nothing", "cost_points": 10, "segments": [
    {"label": "Try again", "weight": 1, "prize": {"type": "nothing"}}]}


async def whole_feed(client: Any, me: dict[str, str], limit: int) -> list[dict[str, Any]]:
    """Every line of the participant's feed, read `limit` at a time by its cursor."""
    lines: list[dict[str, Any]] = []
    cursor = ""
    for _ in range(50):
        page = (await client.get(f"/v1/me/feed?limit={limit}{'&cursor=' + cursor if cursor else ''}",
                                 headers=me)).json()
        assert len(page["items"]) <= limit
        lines += page["items"]
        if not page["next_cursor"]:
            return lines
        cursor = page["next_cursor"]
    raise AssertionError("the feed's cursor never ended")


async def test_winning_spins_show_in_the_feed_in_time_among_stored_lines(client, redis) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    points, nothing = await launched(client, program, SURE_POINTS), await launched(client, program, SURE_NOTHING)
    person, me = await spinning_participant(client, program, 1_000)

    async def note(n: int) -> str:
        await publish(program.id, [FeedEntry(key=f"note:{n}", participant_id=person, kind="note", text=f"Note {n}")])
        return f"Note {n}"

    said: list[str] = []  # what the feed should say, oldest first
    for step in range(3):
        won = await spin(client, points, me, f"win-{step}")
        assert won.status_code == 201, won.text
        said.append(f"spin {won.json()['id']}")
        assert (await spin(client, nothing, me, f"lose-{step}")).status_code == 201  # no line
        said.append(await note(step))
    await projected(redis, program.id)

    for limit in (1, 2, 4, 50):
        feed = await whole_feed(client, me, limit)
        shown = [f"spin {line['reference']}" if line["kind"] == "spin" else line["text"]
                 for line in feed if line["kind"] in ("spin", "note")]
        assert shown == list(reversed(said)), limit
    spins = [line for line in await whole_feed(client, me, 50) if line["kind"] == "spin"]
    assert {(line["text"], line["points"]) for line in spins} == {("Won 50 points on Sure points", 50)}
    assert all(line["id"] == "feed_" + line["reference"].removeprefix("spn_") for line in spins)
    # The projector stored none of them: the lines are the spins' rows.
    assert await FeedItem.count().where((FeedItem.program_id == program.id) & (FeedItem.kind == "spin")).run() == 0


@pytest.mark.parametrize("stored_id", ["the spin's", "its own"])
async def test_a_spin_line_an_older_build_stored_shows_once(client, redis, stored_id) -> None:  # type: ignore[no-untyped-def]
    """Since 2026-12-01 the projector stored a spin's line under the spin's id (`feed_` and the
    spin id's tail); before, the request stored it with an id of its own. Either way the feed
    shows the stored line and no second one, on every page size."""
    program = await new_program(client)
    points = await launched(client, program, SURE_POINTS)
    person, me = await spinning_participant(client, program, 1_000)
    spun = (await spin(client, points, me, "stored")).json()
    later = (await spin(client, points, me, "later")).json()
    await projected(redis, program.id)
    line_id = "feed_" + spun["id"].removeprefix("spn_") if stored_id == "the spin's" else None
    await publish(program.id, [FeedEntry(key=f"spin:{spun['id']}", participant_id=person, kind="spin",
                                         text="Won 50 points on Sure points", points=50, reference=spun["id"],
                                         id=line_id)])
    stored = await FeedItem.select(FeedItem.id).where(FeedItem.reference == spun["id"]).run()
    assert len(stored) == 1
    for limit in (1, 50):
        spins = [line for line in await whole_feed(client, me, limit) if line["kind"] == "spin"]
        assert sorted(line["reference"] for line in spins) == sorted([spun["id"], later["id"]]), limit
        assert stored[0]["id"] in {line["id"] for line in spins}, limit


async def test_a_spin_whose_wheel_design_cannot_be_read_keeps_the_feed_answering(client, redis) -> None:  # type: ignore[no-untyped-def]
    """A stored design a later build could not decode (a breaking change to WheelSpec) takes
    the feed's line for that spin down to its segment's label, not the whole feed to a 500."""
    program = await new_program(client)
    points = await launched(client, program, SURE_POINTS)
    person, me = await spinning_participant(client, program, 1_000)
    won = (await spin(client, points, me, "before")).json()
    await publish(program.id, [FeedEntry(key="note:after", participant_id=person, kind="note", text="A note")])
    await projected(redis, program.id)
    await SpinCampaign.update({SpinCampaign.spec: '{"name": "Sure points", "segments": "not a list"}'}).where(
        SpinCampaign.id == points).run()
    spin_projection._SPECS.clear()  # a fresh process: the design is read from SQL

    page = await client.get("/v1/me/feed?limit=50", headers=me)
    assert page.status_code == 200, page.text
    lines = [(line["kind"], line["text"], line["reference"]) for line in page.json()["items"]
             if line["kind"] in ("spin", "note")]
    assert lines == [("note", "A note", None), ("spin", "Won 50 points", won["id"])]
