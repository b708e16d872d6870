"""The built-in code pool hands out the oldest unused code, once, at any pool size: taking one
reads the unused codes' index (`pool_codes_free`), not every unused code of the item sorted
at each redemption, which made a redemption's cost grow with the pool (4 ms of SQLite per
redemption at 8,000 codes, bench/redemptions.py)."""

from __future__ import annotations

import pytest
from piccolo.engine.postgres import PostgresEngine

from fulfillment import code_pool
from fulfillment.code_pool import take_statement
from fulfillment.tables import PoolCode
from tests.factories import redeem, shop, shopper

pytestmark = pytest.mark.sql


async def _upload(client, program, item_id: str, codes: list[str]) -> None:  # type: ignore[no-untyped-def]
    answer = await client.post(f"/v1/catalog/items/{item_id}/codes", json={"csv": "code\n" + "\n".join(codes)},
                               headers=program.headers)
    assert answer.status_code in (200, 201), answer.text


async def test_a_large_pool_hands_out_the_earlier_uploads_codes_first_each_once(client) -> None:  # type: ignore[no-untyped-def]
    program, _, item = await shop(client)
    first = [f"OLD-{n:05d}" for n in range(1500)]
    await _upload(client, program, item["id"], first)
    await _upload(client, program, item["id"], [f"NEW-{n:05d}" for n in range(1500)])
    _, me = await shopper(client, program, 10 * item["points_price"])
    handed = []
    for _ in range(5):
        order = await redeem(client, me, item["id"])
        assert order.status_code == 201 and order.json()["status"] == "fulfilled", order.text
        handed.append(order.json()["credentials"]["code"])
    assert len(set(handed)) == 5 and all(code in first for code in handed)
    stock = (await client.get("/v1/catalog/stock", headers=program.headers)).json()["items"]
    assert [(s["available"], s["used"]) for s in stock if s["item_id"] == item["id"]] == [(2995, 5)]


async def test_taking_a_code_reads_the_unused_codes_index_instead_of_sorting_the_pool(migrated) -> None:  # type: ignore[no-untyped-def]
    engine = PoolCode._meta.db
    if isinstance(engine, PostgresEngine):
        # The planner's choice depends on the table's statistics there; the index must exist.
        found = await PoolCode.raw("SELECT indexdef FROM pg_indexes WHERE indexname = 'pool_codes_free'").run()
        assert found and "WHERE (order_id IS NULL)" in found[0]["indexdef"]
        return
    plan = await PoolCode.raw("EXPLAIN QUERY PLAN " + take_statement(postgres=False), "ord_x", "2026-01-01", "item_x")
    steps = " | ".join(str(step["detail"]) for step in plan)
    assert "pool_codes_free" in steps and "TEMP B-TREE" not in steps, steps


async def test_without_the_index_a_redemption_still_gets_its_code_and_the_index_is_named_again_once_back(client) -> None:  # type: ignore[no-untyped-def]
    if isinstance(PoolCode._meta.db, PostgresEngine):
        pytest.skip("SQLite names the index in its statement; Postgres' planner picks it")
    program, _, item = await shop(client)
    await _upload(client, program, item["id"], ["LONE-1", "LONE-2"])
    _, me = await shopper(client, program, 10 * item["points_price"])
    await PoolCode.raw("DROP INDEX pool_codes_free").run()  # a database its migration has not reached
    try:
        order = await redeem(client, me, item["id"])
        assert order.status_code == 201 and order.json()["credentials"]["code"] in ("LONE-1", "LONE-2"), order.text
        first = order.json()["credentials"]["code"]
        assert "pool_codes_free" not in take_statement(postgres=False)  # slow, not refused
    finally:
        await PoolCode.raw("CREATE INDEX IF NOT EXISTS pool_codes_free ON pool_codes (item_id, created_at, id) "
                           "WHERE order_id IS NULL").run()
        code_pool._Hint.named = True  # as a restarted process would
    order = await redeem(client, me, item["id"])
    assert order.status_code == 201, order.text
    assert {first, order.json()["credentials"]["code"]} == {"LONE-1", "LONE-2"}
