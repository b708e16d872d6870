"""How many SQL write transactions one redemption commits on the request path (issue #13):
each one queues behind SQLite's single writer, so they set the hot path's floor."""

from __future__ import annotations

import pytest
from piccolo.engine.postgres import PostgresEngine

from fulfillment.tables import Order
from tests.factories import admin_idem, bearer, claim_orders, launched, projected, redeem, shop, shopper, spin, upload_codes
from tests.sql_writes import sql_write_transactions

pytestmark = pytest.mark.sql

# Every order (fulfillment/order_writes.py): one Redis call takes (or holds) the points and
# journals the order, then one transaction writes what the answer shows at once; the journal
# projector writes the same rows if the request dies between the two.
FLOOR = 1


async def _skip_on_postgres() -> None:
    if isinstance(Order._meta.db, PostgresEngine):
        pytest.skip("counts SQLite's write transactions")


async def test_a_code_pool_redemption_commits_no_sql_write_on_its_request_the_projector_writes_it(  # type: ignore[no-untyped-def]
        client, redis) -> None:
    """Redis syncs every write (the embedded server): the call's journal entry carries the
    order and its code, so the request answers the card with no SQL write and the projector
    writes the order, its code's binding and its feed lines."""
    from fulfillment.tables import PoolCode
    from programs.tables import FeedItem
    from tests.games.test_spin_projection import projection_paused

    await _skip_on_postgres()
    program, _, item = await shop(client)
    await upload_codes(client, program, item["id"], ["GC-1", "GC-2"])
    _, me = await shopper(client, program, 10_000)
    await redeem(client, me, item["id"])  # warm: caches, the pool partner
    await projected(redis, program.id)
    async with projection_paused(redis, program.id):
        with sql_write_transactions() as writes:
            answer = await redeem(client, me, item["id"])
        assert answer.status_code == 201 and answer.json()["status"] == "fulfilled", answer.text
        assert answer.json()["credentials"]["code"] in ("GC-1", "GC-2")
        print(f"\ncode-pool redemption: {writes.transactions} SQL write transactions: {writes.statements}")
        assert writes.transactions == 0, writes.statements
        order_id = answer.json()["id"]
        assert await Order.count().where(Order.id == order_id).run() == 0
        # Until then the participant's reads and the pool's stock find it in the journal.
        mine = (await client.get("/v1/me/redemptions", headers=me)).json()["items"]
        assert [(o["id"], o["credentials"]["code"]) for o in mine][0] == (order_id, answer.json()["credentials"]["code"])
        one = await client.get(f"/v1/me/redemptions/{order_id}", headers=me)
        assert one.status_code == 200 and one.json() == answer.json(), one.text
        stock = (await client.get("/v1/catalog/stock", headers=program.headers)).json()["items"]
        assert [(s["available"], s["used"]) for s in stock] == [(0, 2)]
    await projected(redis, program.id)
    row = await Order.select(Order.status, Order.settled_at).where(Order.id == order_id).first().run()
    assert row is not None and row["status"] == "fulfilled" and row["settled_at"] is not None
    assert await PoolCode.count().where(PoolCode.order_id == order_id).run() == 1
    lines = await FeedItem.select(FeedItem.kind).where(FeedItem.reference == order_id).run()
    assert [line["kind"] for line in lines] == ["redemption"]  # one line: its points and its card


@pytest.fixture
def pauses(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits redemptions make for a projector behind (pooled_orders.pause), noted, not slept."""
    from fulfillment import pooled_orders

    noted: list[float] = []

    async def note(seconds: float) -> None:
        noted.append(seconds)

    monkeypatch.setattr(pooled_orders, "pause", note)
    return noted


async def test_a_code_pool_redemption_waits_for_a_projector_behind_and_writes_nothing(  # type: ignore[no-untyped-def]
        client, redis, pauses) -> None:
    """The journal holding more than a projector that keeps up leaves: the request waits in
    proportion to the backlog before it answers, so the requests slow down while the projector
    catches up, and it still writes no SQL: its rows are the projector's to write."""
    from fulfillment import pooled_orders
    from fulfillment.pooled_orders import PROJECTOR_KEEPS_UP
    from tests.games.test_spin_projection import projection_paused
    from wallet import accounts
    from wallet.store import WalletStore

    await _skip_on_postgres()
    program, _, item = await shop(client)
    await upload_codes(client, program, item["id"], ["GC-1", "GC-2"])
    person, me = await shopper(client, program, 10_000)
    await redeem(client, me, item["id"])  # warm: caches, the pool partner, the tax counter
    await projected(redis, program.id)
    with sql_write_transactions() as writes:
        kept_up = await redeem(client, me, item["id"])
    assert kept_up.status_code == 201 and writes.transactions == 0, writes.statements
    assert pauses == []  # a projector that keeps up slows nobody
    await projected(redis, program.id)
    await upload_codes(client, program, item["id"], ["GC-3"])
    async with projection_paused(redis, program.id):
        store = WalletStore(redis)
        for _ in range(PROJECTOR_KEEPS_UP):
            await accounts.grant(store, program.id, person["id"], 1, "backlog", admin_idem(program.id))
        with sql_write_transactions() as writes:
            answer = await redeem(client, me, item["id"])
        assert answer.status_code == 201 and answer.json()["status"] == "fulfilled", answer.text
        assert writes.transactions == 0, writes.statements
        assert await Order.count().where(Order.id == answer.json()["id"]).run() == 0
        # The backlog: the grants and the order's entry, each PROJECTOR_KEEPS_UP of them
        # PAUSE_PER_BACKLOG seconds.
        waiting = PROJECTOR_KEEPS_UP + 1
        assert pauses == [pytest.approx(pooled_orders.PAUSE_PER_BACKLOG * waiting / PROJECTOR_KEEPS_UP)]
        mine = (await client.get("/v1/me/redemptions", headers=me)).json()["items"]
        assert mine[0]["id"] == answer.json()["id"]
    await projected(redis, program.id)
    assert await Order.count().where(Order.id == answer.json()["id"]).run() == 1


async def test_a_code_pool_redemption_writes_its_own_rows_when_the_projector_is_far_behind(  # type: ignore[no-untyped-def]
        client, redis, pauses, monkeypatch) -> None:
    """Past PROJECTOR_BEHIND entries (a projector stopped, or outrun for long) the request writes
    its order itself, without waiting: the participant's reads find it in SQL however far behind
    the projector falls."""
    from fulfillment import pooled_orders
    from tests.games.test_spin_projection import projection_paused
    from wallet import accounts
    from wallet.store import WalletStore

    await _skip_on_postgres()
    monkeypatch.setattr(pooled_orders, "PROJECTOR_BEHIND", 300)  # 2,000 grants would only slow the test
    program, _, item = await shop(client)
    await upload_codes(client, program, item["id"], ["GC-1", "GC-2"])
    person, me = await shopper(client, program, 10_000)
    await redeem(client, me, item["id"])  # warm: caches, the pool partner, the tax counter
    await projected(redis, program.id)
    async with projection_paused(redis, program.id):
        store = WalletStore(redis)
        for _ in range(300):
            await accounts.grant(store, program.id, person["id"], 1, "backlog", admin_idem(program.id))
        with sql_write_transactions() as writes:
            answer = await redeem(client, me, item["id"])
        assert answer.status_code == 201 and answer.json()["status"] == "fulfilled", answer.text
        assert writes.transactions == FLOOR, writes.statements
        assert await Order.count().where(Order.id == answer.json()["id"]).run() == 1
        assert pauses == []
        mine = (await client.get("/v1/me/redemptions", headers=me)).json()["items"]
        assert mine[0]["id"] == answer.json()["id"]


async def test_a_code_pool_redemption_commits_one_sql_write_transaction_when_redis_may_lose_writes(  # type: ignore[no-untyped-def]
        client, monkeypatch) -> None:
    from kernel import sqlite_pool

    await _skip_on_postgres()
    monkeypatch.setattr(sqlite_pool, "_journal_synced", False)
    program, _, item = await shop(client)
    await upload_codes(client, program, item["id"], ["GC-1", "GC-2"])
    _, me = await shopper(client, program, 10_000)
    await redeem(client, me, item["id"])  # warm: caches, the pool partner
    with sql_write_transactions() as writes:
        answer = await redeem(client, me, item["id"])
    assert answer.status_code == 201 and answer.json()["status"] == "fulfilled", answer.text
    assert writes.transactions == FLOOR, writes.statements
    assert writes.journalled == 0  # synced as any other write: the journal may not outlive a power cut


async def test_a_partner_redemption_commits_one_sql_write_transaction(client) -> None:  # type: ignore[no-untyped-def]
    await _skip_on_postgres()
    program, _, item = await shop(client)
    _, me = await shopper(client, program, 10_000)
    with sql_write_transactions() as writes:
        answer = await redeem(client, me, item["id"])
    assert answer.status_code == 201 and answer.json()["status"] == "pending", answer.text
    print(f"\npartner redemption: {writes.transactions} SQL write transactions: {writes.statements}")
    assert writes.transactions == FLOOR, writes.statements
    assert writes.journalled == 1


async def test_out_of_stock_commits_nothing_and_moves_no_points(client) -> None:  # type: ignore[no-untyped-def]
    await _skip_on_postgres()
    program, _, item = await shop(client)
    await client.post(f"/v1/catalog/items/{item['id']}/codes", json={"csv": "code\nGC-1\n"}, headers=program.headers)
    _, me = await shopper(client, program, 10_000)
    assert (await redeem(client, me, item["id"])).status_code == 201
    with sql_write_transactions() as writes:
        answer = await redeem(client, me, item["id"])
    assert answer.status_code == 409 and answer.json()["code"] == "out_of_stock", answer.text
    assert writes.transactions == 0, writes.statements
    wallet = (await client.get("/v1/me/wallet", headers=me)).json()
    assert wallet["held"] == 0


async def test_a_partners_fulfil_commits_one_sql_write_transaction_and_the_projector_the_rest(client, redis) -> None:  # type: ignore[no-untyped-def]
    """The order delivered (its status and sealed card) on the request; after the points are
    captured in Redis, the capture's journal entry carries the participant's line, and the
    projector writes it with the settled mark (fulfillment/settlements.py)."""
    await _skip_on_postgres()
    program, partner, item = await shop(client)
    _, me = await shopper(client, program, 10_000)
    order = (await redeem(client, me, item["id"])).json()
    partner_key = bearer(partner["api_key"])
    [claimed] = (await claim_orders(client, partner_key)).json()["items"]
    await projected(redis, program.id, "writes")
    with sql_write_transactions() as writes:
        fulfilled = await client.post(f"/v1/fulfillment/orders/{order['id']}/fulfill", headers=partner_key,
                                      json={"lease_id": claimed["lease_id"], "credentials": {"code": "GC-1"}})
    assert fulfilled.status_code == 200 and fulfilled.json()["status"] == "fulfilled", fulfilled.text
    print(f"\npartner fulfil: {writes.transactions} SQL write transactions: {writes.statements}")
    assert writes.transactions == 1, writes.statements
    mine = (await client.get(f"/v1/me/redemptions/{order['id']}", headers=me)).json()
    assert mine["status"] == "fulfilled" and mine["credentials"]["code"] == "GC-1"  # the card at once
    await projected(redis, program.id, "writes")
    row = await Order.select(Order.settled_at).where(Order.id == order["id"]).first().run()
    assert row["settled_at"] is not None
    feed = (await client.get("/v1/me/feed", headers=me)).json()["items"]
    ready = [line for line in feed if line["kind"] == "order_fulfilled" and line["reference"] == order["id"]]
    assert [line["text"] for line in ready] == [f"Your {item['name']} is ready"], feed
    # The same fulfil again, and the entry projected again: one mark, one line.
    again = await client.post(f"/v1/fulfillment/orders/{order['id']}/fulfill", headers=partner_key,
                              json={"lease_id": claimed["lease_id"], "credentials": {"code": "GC-1"}})
    assert again.status_code == 200, again.text
    await projected(redis, program.id, "writes")
    feed = (await client.get("/v1/me/feed", headers=me)).json()["items"]
    assert len([line for line in feed if line["kind"] == "order_fulfilled"]) == 1, feed


async def test_a_prize_card_is_synced_on_its_own_no_journal_entry_carries_it(client) -> None:  # type: ignore[no-untyped-def]
    """An item prize moves no points, so its call journals nothing the projector could write
    the order from: its order commits with SQLite's fsync like any other write."""
    await _skip_on_postgres()
    program, _, item = await shop(client)
    await upload_codes(client, program, item["id"], ["GC-PRIZE-1", "GC-PRIZE-2"])
    campaign_id = await launched(client, program, {"name": "Sure card", "cost_points": 10, "segments": [
        {"label": "Gift card", "weight": 1, "prize": {"type": "item", "item_id": item["id"], "stock": 2}}]})
    _, me = await shopper(client, program, 1_000)
    with sql_write_transactions() as writes:
        won = await spin(client, campaign_id, me)
    assert won.status_code == 201, won.text
    assert writes.transactions >= 1 and writes.journalled == 0, writes
    orders = await Order.select(Order.status, Order.credentials).where(Order.item_id == item["id"]).run()
    assert [o["status"] for o in orders] == ["fulfilled"] and orders[0]["credentials"]


async def test_an_order_whose_followers_read_failed_once_is_written_by_the_same_pass(  # type: ignore[no-untyped-def]
        client, redis, monkeypatch) -> None:
    """A read of the projector's order follower that fails once (a dropped connection, a busy
    database) is asked again a moment later: the order is in SQL after that pass, not left
    to the repair a minute on, when the journal no longer holds it for the phone's reads."""
    from fulfillment import order_records
    from tests.games.test_spin_projection import projection_paused

    program, _, item = await shop(client)
    await upload_codes(client, program, item["id"], ["GC-1"])
    _, me = await shopper(client, program, 10_000)
    async with projection_paused(redis, program.id):
        answer = await redeem(client, me, item["id"])
        assert answer.status_code == 201, answer.text
        await Order.delete().where(Order.id == answer.json()["id"]).run()  # as if no request had written it
        reads, order_id = order_records.written, answer.json()["id"]
        asked: list[str] = []

        async def fails_once(order_ids: list[str]) -> set[str]:
            if order_id in order_ids:
                asked.append(order_id)
                if len(asked) == 1:
                    raise ConnectionResetError("the database went away for a moment")
            return await reads(order_ids)

        monkeypatch.setattr(order_records, "written", fails_once)
    await projected(redis, program.id)
    # Asked again after the failure. The test app's own projector runs too, and `projected`
    # claims what it holds (claim_idle_ms=0): both may read the entry, so a third ask (written
    # once: ON CONFLICT DO NOTHING) is not a failure; the order being in SQL now is the point.
    assert asked[:2] == [order_id, order_id]
    row = await Order.select(Order.status).where(Order.id == answer.json()["id"]).first().run()
    assert row == {"status": "fulfilled"}
    one = await client.get(f"/v1/me/redemptions/{answer.json()['id']}", headers=me)
    assert one.status_code == 200 and one.json()["credentials"] == answer.json()["credentials"], one.text
