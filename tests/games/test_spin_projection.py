"""A spin writes no SQL row on its request: the journal projector writes its history row, once
(its feed line is that row, read as a line: games/spin_feed.py), and the history read sees a
spin the projector has not written yet."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
from redis.exceptions import ResponseError

from games.tables import Spin
from tests.factories import wait_until, ProgramHandle, launched, projected, spin, spinning_participant
from wallet import keys
from wallet.journal import GROUP
from wallet.tables import LedgerEntry

pytestmark = pytest.mark.sql

SURE_POINTS = {"name": "Sure points", "cost_points": 10, "segments": [
    {"label": "50 points", "weight": 1, "prize": {"type": "points", "points": 50}}]}


@contextlib.asynccontextmanager
async def projection_paused(redis: Any, program_id: str) -> AsyncIterator[None]:
    """No projector reads this program's journal inside the block: its consumer group's
    last delivered id is set past every entry to come (the group stays, so a projector that
    meets the program for the first time finds it), then back to the start of the stream,
    so everything journalled meanwhile is projected afterwards."""
    stream = keys.journal(program_id)
    with contextlib.suppress(ResponseError):  # BUSYGROUP: a projector made it first
        await redis.xgroup_create(stream, GROUP, id="0", mkstream=True)
    await wait_until(lambda: redis.xlen(stream), 0)  # what came before is projected
    await redis.xgroup_setid(stream, GROUP, "9999999999999-0")
    try:
        yield
    finally:
        await redis.xgroup_setid(stream, GROUP, "0")


def spin_rows(participant_id: str) -> Any:
    return lambda: Spin.count().where(Spin.participant_id == participant_id).run()


def spin_lines(client: Any, me: dict[str, str]) -> Any:
    """How many spin lines the participant's feed shows."""
    async def count() -> int:
        feed = (await client.get("/v1/me/feed", headers=me)).json()["items"]
        return sum(1 for line in feed if line["kind"] == "spin")
    return count


async def test_a_spin_writes_no_sql_row_and_my_history_lists_it_at_once(client, redis) -> None:  # type: ignore[no-untyped-def]
    from tests.factories import new_program

    program: ProgramHandle = await new_program(client)
    campaign_id = await launched(client, program, SURE_POINTS)
    person, me = await spinning_participant(client, program, 1_000)
    async with projection_paused(redis, program.id):
        answers = [await spin(client, campaign_id, me, f"now-{n}") for n in range(3)]
        assert [a.status_code for a in answers] == [201, 201, 201]
        # Nothing in SQL yet: the request wrote no row, and no projector has run.
        assert await spin_rows(person)() == 0 and await spin_lines(client, me)() == 0
        history = (await client.get("/v1/me/spins", headers=me)).json()["items"]
        assert [h["id"] for h in history] == [a.json()["id"] for a in reversed(answers)]
        assert [h["created_at"] for h in history] == [a.json()["created_at"] for a in reversed(answers)]
        assert [h["proof"] for h in history] == [a.json()["proof"] for a in reversed(answers)]
        page = (await client.get(f"/v1/me/spins?limit=2&campaign_id={campaign_id}", headers=me)).json()
        assert [h["id"] for h in page["items"]] == [a.json()["id"] for a in reversed(answers)][:2]
        rest = (await client.get(f"/v1/me/spins?cursor={page['next_cursor']}", headers=me)).json()["items"]
        assert [h["id"] for h in rest] == [answers[0].json()["id"]]
        report = (await client.get(f"/v1/campaigns/{campaign_id}/report", headers=program.headers)).json()
        assert (report["spins"], report["participants"], report["prizes_paid_points"]) == (3, 1, 150)
    # Projected afterwards: each row and feed line once, and the read does not list a spin twice.
    assert await wait_until(spin_lines(client, me), 3) == 3
    assert await spin_rows(person)() == 3
    after = (await client.get("/v1/me/spins", headers=me)).json()["items"]
    assert after == history
    report = (await client.get(f"/v1/campaigns/{campaign_id}/report", headers=program.headers)).json()
    assert (report["spins"], report["participants"], report["prizes_paid_points"]) == (3, 1, 150)
    feed = (await client.get("/v1/me/feed", headers=me)).json()["items"]
    assert [f["reference"] for f in feed if f["kind"] == "spin"] == [a.json()["id"] for a in reversed(answers)]


async def test_a_spin_entry_projected_twice_writes_its_rows_once(client, redis) -> None:  # type: ignore[no-untyped-def]
    from tests.factories import new_program

    program = await new_program(client)
    campaign_id = await launched(client, program, SURE_POINTS)
    person, me = await spinning_participant(client, program, 1_000)
    stream = keys.journal(program.id)
    async with projection_paused(redis, program.id):
        spun = (await spin(client, campaign_id, me, "twice")).json()
        [(_, fields)] = await redis.xrange(stream)
        assert await spin_rows(person)() == 0
    assert await wait_until(spin_lines(client, me), 1) == 1
    # The same entry again, as a crash before the acknowledgement would leave it.
    await redis.xadd(stream, fields)
    await projected(redis, program.id, consumer="replay")  # raises unless the journal empties
    assert await spin_rows(person)() == 1 and await spin_lines(client, me)() == 1
    assert await LedgerEntry.count().where(LedgerEntry.transaction_id == spun["id"]).run() == 1
    row = await Spin.select().where(Spin.id == spun["id"]).first().run()
    assert (row["label"], row["cost_points"], row["prize_value"], row["nonce"]) == ("50 points", 10, 50, 0)


async def test_a_spin_row_the_projector_left_out_is_repaired_from_the_ledger(client, redis) -> None:  # type: ignore[no-untyped-def]
    from catalog.items import pricing_of
    from games.spins import complete_unrecorded
    from programs.programs import get_program
    from tests.factories import new_program
    from wallet.store import WalletStore

    program = await new_program(client)
    campaign_id = await launched(client, program, SURE_POINTS)
    person, me = await spinning_participant(client, program, 1_000)
    spun = (await spin(client, campaign_id, me, "repair")).json()
    assert await wait_until(spin_lines(client, me), 1) == 1
    assert await wait_until(lambda: LedgerEntry.count().where(LedgerEntry.transaction_id == spun["id"]).run(), 1) == 1
    await Spin.delete().where(Spin.id == spun["id"]).run()  # as if its follower had failed
    view = await get_program(program.id)
    store = WalletStore(redis)
    sealer = client.app.state.sealer
    assert await complete_unrecorded(store, sealer, view, pricing_of(view), settle_seconds=0) == 1
    assert await complete_unrecorded(store, sealer, view, pricing_of(view), settle_seconds=0) == 0
    assert [h["id"] for h in (await client.get("/v1/me/spins", headers=me)).json()["items"]] == [spun["id"]]
    assert await spin_lines(client, me)() == 1


async def test_the_spin_sweep_reads_the_last_days_not_the_whole_ledger(migrated) -> None:  # type: ignore[no-untyped-def]
    """complete_unrecorded runs every 30 s for every program: each of its reads is bounded by
    an index to the spins (or item prizes) of the window, and an order's substitute is found
    by its reference, whatever the size of the program's ledger."""
    from datetime import datetime, timedelta, timezone

    from games.spins import _UNORDERED, _UNRECORDED
    from tests.query_plans import plan, sqlite_only

    sqlite_only(Spin)
    until = datetime.now(timezone.utc)
    since = until - timedelta(days=2)
    assert [await plan(Spin, query, "prg_any", since, until) for query in (_UNRECORDED, _UNORDERED)] == [
        ["SEARCH e USING INDEX ledger_entries_spins (program_id=? AND created_at>? AND created_at<?)",
         "SEARCH s USING COVERING INDEX sqlite_autoindex_spins_1 (id=?) LEFT-JOIN"],
        ["SEARCH s USING INDEX spins_item_prizes (program_id=? AND created_at>? AND created_at<?)",
         "SEARCH o USING COVERING INDEX sqlite_autoindex_orders_1 (id=?) LEFT-JOIN",
         "SEARCH e USING INDEX ledger_entries_substitutes (program_id=? AND reference=?) LEFT-JOIN"],
    ]


async def test_a_page_of_my_spins_is_read_in_its_order(migrated) -> None:  # type: ignore[no-untyped-def]
    """Newest first, straight from an index, not sorted from every spin the participant made."""
    from games.spins import history_page
    from tests.query_plans import plan_of, sqlite_only

    sqlite_only(Spin)
    for after, campaign in ((None, None), ("spn_any", None), (None, "cmp_any")):
        steps = await plan_of(history_page("prg_any", "par_any", 51, after, campaign))
        assert steps[0].startswith("SEARCH spins USING INDEX spins_by_participant (participant_id=?"), steps
        assert not any("TEMP B-TREE" in step for step in steps), steps
