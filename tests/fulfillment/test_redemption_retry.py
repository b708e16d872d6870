"""A redemption interrupted by a crash and retried with the same Idempotency-Key (or left to
the sweep, or to the journal projector) carries the first attempt's order on: one order, one
hold, one code."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from catalog.items import item_row, pricing_of, redemption_points
from fulfillment.order_writes import NewOrder
from fulfillment.orders import hold_idem, settle_idem, sweep
from fulfillment.partners import route
from fulfillment.tables import Order, PoolCode
from programs.tables import FeedItem
from tests.games.test_spin_projection import projection_paused
from wallet.tables import LedgerEntry
from programs.programs import get_program
from wallet import accounts
from kernel import keys as kernel_keys
from kernel.ids import new_id
from wallet.store import WalletStore
from tests.factories import projected, redeem, shop, shopper, wait_until

pytestmark = pytest.mark.sql


async def _left_new(order: NewOrder) -> None:
    """The order row an earlier build wrote before its hold (it placed orders in steps)."""
    await Order.insert(Order(id=order.id, program_id=order.program_id, participant_id=order.participant_id,
                             item_id=order.item_id, partner_id=order.partner_id, source=order.source,
                             face_value=order.face_value, currency=order.currency, points=order.points, status="new",
                             created_at=order.created_at, updated_at=order.created_at)).run()


@pytest.mark.parametrize("crashed_after", ["open", "hold"])
async def test_a_partner_order_left_new_by_an_earlier_build_is_carried_on_by_its_retry(  # type: ignore[no-untyped-def]
        client, redis, crashed_after: str) -> None:
    """Partner orders used to be placed in steps (order `new`, hold, made pending); an attempt
    a crash left half-made before an upgrade is carried on by its retry, held once."""
    program, _, item = await shop(client)
    person, me = await shopper(client, program, 10_000)
    row = await item_row(program.id, item["id"])
    value, points = redemption_points(row, pricing_of(await get_program(program.id)), None)
    order = NewOrder(id=new_id("ord"), program_id=program.id, participant_id=person["id"], item_id=item["id"],
                     partner_id=(await route(program.id, row))["id"], source="redemption", face_value=value,
                     currency=row["currency"], points=points, created_at=datetime.now(timezone.utc))
    await _left_new(order)
    if crashed_after == "hold":
        await accounts.hold(WalletStore(redis), program.id, person["id"], points, order.id,
                            hold_idem(program.id, order.id))
    # Its id pinned to the key, its answer never recorded (the in-flight marker expired).
    await redis.set(kernel_keys.idempotency(program.id, f"pt:{person['id']}", "crash-me") + ":order", order.id)
    retried = await redeem(client, me, item["id"], key="crash-me")
    assert retried.status_code == 201, retried.text
    assert retried.json()["id"] == order.id and retried.json()["status"] == "pending"
    assert len((await client.get("/v1/me/redemptions", headers=me)).json()["items"]) == 1
    wallet = (await client.get("/v1/me/wallet", headers=me)).json()
    assert (wallet["available"], wallet["held"]) == (10_000 - points, points)


async def _pool_shop(client, codes: int = 2):  # type: ignore[no-untyped-def]
    program, _, item = await shop(client)
    csv_text = "code\n" + "".join(f"GC-{n}\n" for n in range(1, codes + 1))
    upload = await client.post(f"/v1/catalog/items/{item['id']}/codes", json={"csv": csv_text},
                               headers=program.headers)
    assert upload.status_code in (200, 201), upload.text
    return program, item


async def _stock(client, program) -> dict:  # type: ignore[no-untyped-def]
    return (await client.get("/v1/catalog/stock", headers=program.headers)).json()["items"][0]


async def _lose_the_sql_write(order_id: str) -> None:
    """As if the process died right after the pool's Redis call: no order row, no bound code,
    no feed line."""
    await PoolCode.update({PoolCode.order_id: None, PoolCode.used_at: None}).where(
        PoolCode.order_id == order_id).run()
    await Order.delete().where(Order.id == order_id).run()
    await FeedItem.delete().where(FeedItem.reference == order_id).run()


@pytest.mark.parametrize("finisher", ["retry", "projector"])
async def test_a_pool_redemption_whose_process_died_after_its_redis_call_is_finished_once(  # type: ignore[no-untyped-def]
        client, redis, finisher: str) -> None:
    program, item = await _pool_shop(client)
    person, me = await shopper(client, program, 10_000)
    async with projection_paused(redis, program.id):
        first = await redeem(client, me, item["id"], key="crash-pool")
        assert first.status_code == 201, first.text
        order_id, code, points = first.json()["id"], first.json()["credentials"]["code"], first.json()["points"]
        await _lose_the_sql_write(order_id)
        # No row yet: the participant's own read finds the order, card and all, in the journal.
        seen = await client.get(f"/v1/me/redemptions/{order_id}", headers=me)
        assert seen.status_code == 200 and seen.json()["credentials"]["code"] == code, seen.text
        assert await _orders(client, me) == [(order_id, "fulfilled", code)]
        if finisher == "retry":
            retried = await redeem(client, me, item["id"], key="crash-pool")
            assert retried.status_code == 201, retried.text
            assert (retried.json()["id"], retried.json()["credentials"]["code"]) == (order_id, code)
    # The journal holds the order until it is projected; the projector writes it (or finds
    # the retry's rows and writes nothing twice).
    await projected(redis, program.id)
    assert await Order.count().where(Order.id == order_id).run() == 1
    await sweep(WalletStore(redis), program.id)
    assert await _orders(client, me) == [(order_id, "fulfilled", code)]
    wallet = (await client.get("/v1/me/wallet", headers=me)).json()
    assert (wallet["available"], wallet["held"]) == (10_000 - points, 0)
    assert ((await _stock(client, program))["available"], (await _stock(client, program))["used"]) == (1, 1)
    lines = await FeedItem.select(FeedItem.kind).where(FeedItem.reference == order_id).run()
    assert [line["kind"] for line in lines] == ["redemption"]  # one line: its points and its card
    entries = lambda: LedgerEntry.count().where(LedgerEntry.reference == order_id).run()  # noqa: E731
    assert await wait_until(entries, 1) == 1  # the redemption's one entry, once


async def _orders(client, me) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    mine = (await client.get("/v1/me/redemptions", headers=me)).json()["items"]
    return [(o["id"], o["status"], (o.get("credentials") or {}).get("code")) for o in mine]


@pytest.mark.parametrize("crashed_after", ["open", "hold", "capture"])
async def test_a_pool_order_left_new_by_the_steps_of_an_earlier_build_is_finished_by_the_sweep(  # type: ignore[no-untyped-def]
        client, redis, crashed_after: str) -> None:
    """Pool orders used to be placed in steps (order `new`, hold, capture, fulfil); one a crash
    left half-made before an upgrade is carried on with a code from the Redis pool."""
    program, item = await _pool_shop(client)
    person, me = await shopper(client, program, 10_000)
    view = await get_program(program.id)
    row = await item_row(program.id, item["id"])
    value, points = redemption_points(row, pricing_of(view), None)
    store = WalletStore(redis)
    order = NewOrder(id=new_id("ord"), program_id=program.id, participant_id=person["id"], item_id=item["id"],
                     partner_id=(await route(program.id, row))["id"], source="redemption", face_value=value,
                     currency=row["currency"], points=points, created_at=datetime.now(timezone.utc) - timedelta(minutes=2))
    await _left_new(order)
    if crashed_after in ("hold", "capture"):
        await accounts.hold(store, program.id, person["id"], points, order.id, hold_idem(program.id, order.id))
    if crashed_after == "capture":
        await accounts.capture(store, program.id, person["id"], order.id, settle_idem(program.id, order.id, "capture"))
    assert (await client.get(f"/v1/me/redemptions/{order.id}", headers=me)).status_code == 404  # still `new`
    await sweep(store, program.id)
    await sweep(store, program.id)  # again: nothing happens twice
    mine = await _orders(client, me)
    assert [(o, s) for o, s, _ in mine] == [(order.id, "fulfilled")] and mine[0][2] in ("GC-1", "GC-2")
    wallet = (await client.get("/v1/me/wallet", headers=me)).json()
    assert (wallet["available"], wallet["held"]) == (10_000 - points, 0)
    assert ((await _stock(client, program))["available"], (await _stock(client, program))["used"]) == (1, 1)
    # The code the sweep took is gone from the Redis pool: the next redemption gets the other.
    other = await redeem(client, me, item["id"])
    assert other.status_code == 201 and other.json()["credentials"]["code"] != mine[0][2], other.text


async def test_a_refused_redemption_leaves_no_order_and_takes_no_code(client) -> None:  # type: ignore[no-untyped-def]
    program, item = await _pool_shop(client, codes=1)
    _, me = await shopper(client, program, 10)
    for _ in range(2):  # the retry answers the same refusal
        refused = await redeem(client, me, item["id"], key="too-poor")
        assert refused.status_code == 422 and refused.json()["code"] == "insufficient_points", refused.text
    assert (await client.get("/v1/me/redemptions", headers=me)).json()["items"] == []
    assert (await _stock(client, program))["available"] == 1
    wallet = (await client.get("/v1/me/wallet", headers=me)).json()
    assert (wallet["available"], wallet["held"]) == (10, 0)


async def test_a_pool_redemption_whose_sql_write_fails_answers_503_and_its_retry_the_same_card(  # type: ignore[no-untyped-def]
        client, redis, monkeypatch) -> None:
    import sqlite3

    from fulfillment import order_writes
    from kernel import sqlite_pool

    program, item = await _pool_shop(client)
    _, me = await shopper(client, program, 10_000)
    written = order_writes.record_pooled

    async def locked(*_: object, **__: object) -> bool:
        raise sqlite3.OperationalError("database is locked")

    # A Redis that does not sync every write before it answers: its journal could lose the
    # order, so the request writes it (with a Redis that does, the projector writes it).
    monkeypatch.setattr(sqlite_pool, "_journal_synced", False)
    async with projection_paused(redis, program.id):  # the retry, not the projector, writes it
        monkeypatch.setattr(order_writes, "record_pooled", locked)
        failed = await redeem(client, me, item["id"], key="sql-down")
        # No card is answered before SQL has its order: Redis alone could hand it out again.
        assert failed.status_code == 503 and "credentials" not in failed.text, failed.text
        monkeypatch.setattr(order_writes, "record_pooled", written)
        # The item is retired before the retry: the order is written as it was charged.
        retired = await client.patch(f"/v1/catalog/items/{item['id']}", json={"status": "disabled"},
                                     headers=program.headers)
        assert retired.status_code == 200, retired.text
        retried = await redeem(client, me, item["id"], key="sql-down")
        assert retried.status_code == 201, retried.text
        assert retried.json()["points"] == item["points_price"]
        order_id, code = retried.json()["id"], retried.json()["credentials"]["code"]
        assert await _orders(client, me) == [(order_id, "fulfilled", code)]
    assert await wait_until(lambda: _orders(client, me), [(order_id, "fulfilled", code)]) == [
        (order_id, "fulfilled", code)]
    assert ((await _stock(client, program))["available"], (await _stock(client, program))["used"]) == (1, 1)
    wallet = (await client.get("/v1/me/wallet", headers=me)).json()
    assert wallet["available"] == 10_000 - retried.json()["points"]


async def test_a_replay_answers_the_recorded_order_whatever_the_catalog_says_now(client) -> None:  # type: ignore[no-untyped-def]
    program, item = await _pool_shop(client)
    _, me = await shopper(client, program, 10_000)
    first = await redeem(client, me, item["id"], key="then-retired")
    assert first.status_code == 201, first.text
    retired = await client.patch(f"/v1/catalog/items/{item['id']}", json={"status": "disabled"},
                                 headers=program.headers)
    assert retired.status_code == 200, retired.text
    again = await redeem(client, me, item["id"], key="then-retired")
    assert again.status_code == 201 and again.headers.get("Idempotent-Replayed") == "true", again.text
    assert (again.json()["id"], again.json()["credentials"]) == (first.json()["id"], first.json()["credentials"])
    assert again.json()["created_at"] == first.json()["created_at"]
    other = await redeem(client, me, item["id"], key="then-retired", face_value={"amount": 1, "currency": "USD"})
    assert other.status_code == 422 and other.json()["code"] == "idempotency_key_reused", other.text


async def test_an_attempt_placed_in_steps_before_an_upgrade_is_carried_on_not_placed_again(client, redis) -> None:  # type: ignore[no-untyped-def]
    """A key whose first attempt pinned an order id and died (an earlier build placed pool
    orders in steps) keeps that order: the retry carries it on instead of a second order."""
    program, item = await _pool_shop(client)
    person, me = await shopper(client, program, 10_000)
    view = await get_program(program.id)
    row = await item_row(program.id, item["id"])
    value, points = redemption_points(row, pricing_of(view), None)
    order = NewOrder(id=new_id("ord"), program_id=program.id, participant_id=person["id"], item_id=item["id"],
                     partner_id=(await route(program.id, row))["id"], source="redemption", face_value=value,
                     currency=row["currency"], points=points, created_at=datetime.now(timezone.utc))
    await _left_new(order)
    await accounts.hold(WalletStore(redis), program.id, person["id"], points, order.id, hold_idem(program.id, order.id))
    await redis.set(kernel_keys.idempotency(program.id, f"pt:{person['id']}", "pinned") + ":order", order.id)
    retried = await redeem(client, me, item["id"], key="pinned")
    assert retried.status_code == 201 and retried.json()["id"] == order.id, retried.text
    assert [o for o, _, _ in await _orders(client, me)] == [order.id]
    wallet = (await client.get("/v1/me/wallet", headers=me)).json()
    assert (wallet["available"], wallet["held"]) == (10_000 - points, 0)
