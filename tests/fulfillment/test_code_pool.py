"""The built-in code pool hands out the oldest unused code, once, at any pool size. Which codes
are free lives in Redis (fulfillment/pool.lua), loaded from SQL at each upload and whenever
Redis does not have the item: a lost Redis, an interrupted upload, many redemptions at once
never hand a code out twice."""

from __future__ import annotations

import asyncio
import hashlib
from datetime import datetime, timezone
from typing import Any

import msgspec
import pytest

from fulfillment import keys, order_writes, pool_store, pooled_orders
from fulfillment.order_writes import NewOrder
from fulfillment.orders import OutOfStock
from fulfillment.tables import Order, PoolCode
from kernel.errors import Conflict, DomainError
from kernel.idempotency import NO_IDEM
from kernel.ids import new_id
from kernel import sqlite_pool
from programs.programs import get_program
from programs.tables import FeedItem
from tests.factories import projected, redeem, shop, shopper, upload_codes, wait_until
from tests.games.test_spin_projection import projection_paused
from wallet import keys as wallet_keys
from wallet.reconcile import reconcile_program
from wallet.store import WalletStore
from wallet.journal import parse_entry
from wallet.tables import LedgerEntry

pytestmark = pytest.mark.sql


async def test_a_large_pool_hands_out_the_earlier_uploads_codes_first_each_once(client) -> None:  # type: ignore[no-untyped-def]
    program, _, item = await shop(client)
    first = [f"OLD-{n:05d}" for n in range(1500)]
    await upload_codes(client, program, item["id"], first)
    await upload_codes(client, program, item["id"], [f"NEW-{n:05d}" for n in range(1500)])
    _, me = await shopper(client, program, 10 * item["points_price"])
    handed = []
    for _ in range(5):
        order = await redeem(client, me, item["id"])
        assert order.status_code == 201 and order.json()["status"] == "fulfilled", order.text
        handed.append(order.json()["credentials"]["code"])
    assert len(set(handed)) == 5 and all(code in first for code in handed)
    stock = (await client.get("/v1/catalog/stock", headers=program.headers)).json()["items"]
    assert [(s["available"], s["used"]) for s in stock if s["item_id"] == item["id"]] == [(2995, 5)]


def _lose_the_redis_pool(redis, program_id: str, item_id: str):  # type: ignore[no-untyped-def]
    """As a Redis rebuilt from SQL, or a pool from before the pool lived in Redis, finds it."""
    return redis.delete(*keys.pool_keys(program_id, item_id))


async def test_a_pool_redis_never_loaded_is_loaded_from_sql_on_the_next_redemption_without_codes_already_used(
        client, redis) -> None:  # type: ignore[no-untyped-def]
    program, _, item = await shop(client)
    await upload_codes(client, program, item["id"], ["ONE", "TWO", "THREE"])
    _, me = await shopper(client, program, 10 * item["points_price"])
    first = (await redeem(client, me, item["id"])).json()["credentials"]["code"]
    # A Redis rebuilt from SQL lost its journal too: what it held was projected before.
    await projected(redis, program.id)
    await _lose_the_redis_pool(redis, program.id, item["id"])
    handed = [first]
    for _ in range(2):
        order = await redeem(client, me, item["id"])
        assert order.status_code == 201, order.text
        handed.append(order.json()["credentials"]["code"])
    assert sorted(handed) == ["ONE", "THREE", "TWO"]
    empty = await redeem(client, me, item["id"])
    assert empty.status_code == 409 and empty.json()["code"] == "out_of_stock", empty.text


async def test_codes_an_interrupted_upload_left_out_of_the_pool_are_loaded_by_the_next_upload(client, redis) -> None:  # type: ignore[no-untyped-def]
    program, _, item = await shop(client)
    await upload_codes(client, program, item["id"], ["KEPT", "LATE"])
    # As if the process died between writing the rows and loading them into Redis.
    late = await PoolCode.select(PoolCode.id).where(
        PoolCode.code_hash == hashlib.sha256(b"LATE").hexdigest()).first().run()
    await redis.zrem(keys.pool_free(program.id, item["id"]), late["id"])
    _, me = await shopper(client, program, 10 * item["points_price"])
    assert (await redeem(client, me, item["id"])).json()["credentials"]["code"] == "KEPT"
    assert (await redeem(client, me, item["id"])).status_code == 409
    again = await client.post(f"/v1/catalog/items/{item['id']}/codes", json={"csv": "code\nLATE\nNEWER\n"},
                              headers=program.headers)
    assert (again.json()["added"], again.json()["duplicates"], again.json()["available"]) == (1, 1, 2), again.text
    assert [(await redeem(client, me, item["id"])).json()["credentials"]["code"] for _ in range(2)] == ["LATE", "NEWER"]


async def test_many_participants_redeeming_at_once_share_a_small_pool_each_code_once(client) -> None:  # type: ignore[no-untyped-def]
    program, _, item = await shop(client)
    await upload_codes(client, program, item["id"], [f"C-{n}" for n in range(10)])
    price = item["points_price"]
    shoppers = [await shopper(client, program, 5 * price) for _ in range(5)]
    answers = await asyncio.gather(*(redeem(client, me, item["id"]) for _, me in shoppers for _ in range(5)))
    fulfilled = [a.json()["credentials"]["code"] for a in answers if a.status_code == 201]
    refused = [a.json()["code"] for a in answers if a.status_code != 201]
    assert sorted(fulfilled) == sorted(f"C-{n}" for n in range(10))
    assert refused == ["out_of_stock"] * 15
    spent = 0
    for person, me in shoppers:
        wallet = (await client.get("/v1/me/wallet", headers=me)).json()
        mine = len((await client.get("/v1/me/redemptions", headers=me)).json()["items"])
        assert (wallet["available"], wallet["held"]) == (5 * price - mine * price, 0)
        spent += mine * price
    assert spent == 10 * price
    stock = (await client.get("/v1/catalog/stock", headers=program.headers)).json()["items"]
    assert [(s["available"], s["used"]) for s in stock if s["item_id"] == item["id"]] == [(0, 10)]


async def test_a_code_sql_has_on_another_order_is_never_handed_out_again(client, redis) -> None:  # type: ignore[no-untyped-def]
    """Redis may offer a code SQL already has on another order (a pool reloaded after Redis
    lost codes it had handed out, a process of an earlier build taking codes in SQL): the
    order takes the next code, and the journal projector never writes it with the first."""
    program, _, item = await shop(client)
    await upload_codes(client, program, item["id"], ["FIRST"])
    await upload_codes(client, program, item["id"], ["SECOND"])
    first = hashlib.sha256(b"FIRST").hexdigest()
    await PoolCode.update({PoolCode.order_id: "ord_elsewhere"}).where(PoolCode.code_hash == first).run()
    _, me = await shopper(client, program, 10 * item["points_price"])
    order = await redeem(client, me, item["id"])
    assert order.status_code == 201 and order.json()["credentials"]["code"] == "SECOND", order.text
    # Once the projector has written the entry (which names FIRST), the order still has SECOND.
    stream = wallet_keys.journal(program.id)
    assert await wait_until(lambda: redis.xlen(stream), 0) == 0
    mine = (await client.get("/v1/me/redemptions", headers=me)).json()["items"]
    assert [(o["id"], o["credentials"]["code"]) for o in mine] == [(order.json()["id"], "SECOND")]
    holders = await PoolCode.select(PoolCode.code_hash, PoolCode.order_id).where(PoolCode.item_id == item["id"]).run()
    assert {h["code_hash"]: h["order_id"] for h in holders}[first] == "ord_elsewhere"
    empty = await redeem(client, me, item["id"])
    assert empty.status_code == 409 and empty.json()["code"] == "out_of_stock", empty.text


async def _feed_kinds(order_id: str) -> list[str]:
    return sorted(line["kind"] for line in await FeedItem.select(FeedItem.kind).where(FeedItem.reference == order_id).run())


async def test_an_order_left_with_no_code_after_a_pool_error_gets_its_points_back_and_reads_failed(
        client, redis) -> None:  # type: ignore[no-untyped-def]
    """Redis offered the pool's last code, which SQL has on another order: the points already
    taken come back at once (journalled), the order reads failed, and neither a retry nor the
    journal projector hands out a card or takes the points again."""
    program, _, item = await shop(client)
    await upload_codes(client, program, item["id"], ["ONLY"])
    elsewhere = new_id("ord")
    await PoolCode.update({PoolCode.order_id: elsewhere}).where(
        (PoolCode.code_hash == hashlib.sha256(b"ONLY").hexdigest()) & (PoolCode.item_id == item["id"])).run()
    balance = 10 * item["points_price"]
    _, me = await shopper(client, program, balance)
    # The projector writes the entries after the request wrote the failed order: it leaves that
    # order and its lines as they are, and adds no "ready" line.
    async with projection_paused(redis, program.id):
        refused = await redeem(client, me, item["id"], key="no-code-left")
        assert refused.status_code == 409 and refused.json()["code"] == "out_of_stock", refused.text
        assert "points were returned" in refused.json()["detail"]
        again = await redeem(client, me, item["id"], key="no-code-left")
        assert again.status_code == 409 and again.json()["code"] == "out_of_stock", again.text
    stream = wallet_keys.journal(program.id)
    assert await wait_until(lambda: redis.xlen(stream), 0) == 0  # the projector wrote its entries
    wallet = (await client.get("/v1/me/wallet", headers=me)).json()
    assert (wallet["available"], wallet["held"]) == (balance, 0)
    mine = (await client.get("/v1/me/redemptions", headers=me)).json()["items"]
    assert [(o["status"], o.get("credentials")) for o in mine] == [("failed", None)]
    order_id = mine[0]["id"]
    assert await _feed_kinds(order_id) == ["order_failed", "redemption"]
    moves = await LedgerEntry.select(LedgerEntry.kind, LedgerEntry.points).where(
        LedgerEntry.reference == order_id).order_by(LedgerEntry.id).run()
    price = item["points_price"]
    # One entry paid for the order (available -> redeemed), one gave the points back.
    assert [(m["kind"], m["points"]) for m in moves] == [("redemption", -price), ("redemption_void", price)]
    assert await reconcile_program(redis, program.id) == []
    holders = await PoolCode.select(PoolCode.order_id).where(PoolCode.item_id == item["id"]).run()
    assert [h["order_id"] for h in holders] == [elsewhere]


async def test_an_order_whose_request_died_after_taking_another_code_is_finished_by_the_sweep(
        client, redis) -> None:  # type: ignore[no-untyped-def]
    """The journal names the order's first code (on another order in SQL); the code it took
    instead lives only in Redis. If the request dies before writing the order, the projector
    cannot write it; the order sweep does, with the code the pool holds for it."""
    program, _, item = await shop(client)
    await upload_codes(client, program, item["id"], ["FIRST"])
    await upload_codes(client, program, item["id"], ["SECOND"])
    await PoolCode.update({PoolCode.order_id: new_id("ord")}).where(
        (PoolCode.code_hash == hashlib.sha256(b"FIRST").hexdigest()) & (PoolCode.item_id == item["id"])).run()
    person, me = await shopper(client, program, 10 * item["points_price"])
    async with projection_paused(redis, program.id):
        order = await redeem(client, me, item["id"])
        assert order.status_code == 201 and order.json()["credentials"]["code"] == "SECOND", order.text
        order_id = order.json()["id"]
        await PoolCode.update({PoolCode.order_id: None, PoolCode.used_at: None}).where(
            PoolCode.order_id == order_id).run()
        await Order.delete().where(Order.id == order_id).run()
        await FeedItem.delete().where(FeedItem.reference == order_id).run()
    stream = wallet_keys.journal(program.id)
    assert await wait_until(lambda: redis.xlen(stream), 0) == 0
    assert (await client.get(f"/v1/me/redemptions/{order_id}", headers=me)).status_code == 404
    store, view = WalletStore(redis), await get_program(program.id)
    assert await pooled_orders.mend(store, view) == 0  # too recent: its request may still be writing it
    later = datetime.now(timezone.utc) + 2 * pooled_orders.MEND_AFTER
    assert await pooled_orders.mend(store, view, later) == 1
    assert await pooled_orders.mend(store, view, later) == 0  # once
    mine = (await client.get("/v1/me/redemptions", headers=me)).json()["items"]
    assert [(o["id"], o["status"], o["credentials"]["code"]) for o in mine] == [(order_id, "fulfilled", "SECOND")]
    assert await _feed_kinds(order_id) == ["redemption"]
    wallet = (await client.get("/v1/me/wallet", headers=me)).json()
    assert (wallet["available"], wallet["held"]) == (9 * item["points_price"], 0)
    assert await redis.hlen(keys.pool_retaken(program.id)) == 0


async def test_an_order_whose_points_went_back_never_takes_a_code_afterwards(client, redis) -> None:  # type: ignore[no-untyped-def]
    """The pool answered three codes SQL has on other orders, so the order gave up and its
    points went back, with a good code still free. An attempt that was behind (a retry that
    replayed the call before the refusal was recorded, an approval's second try) must not
    then hand that code out: the order stays failed, the points returned once."""
    program, _, item = await shop(client)
    for code in ("BAD-1", "BAD-2", "BAD-3", "GOOD"):
        await upload_codes(client, program, item["id"], [code])
    bad = {}
    for code in ("BAD-1", "BAD-2", "BAD-3"):
        digest = hashlib.sha256(code.encode()).hexdigest()
        row = await PoolCode.select(PoolCode.id).where(
            (PoolCode.code_hash == digest) & (PoolCode.item_id == item["id"])).first().run()
        bad[code] = row["id"]
        await PoolCode.update({PoolCode.order_id: new_id("ord")}).where(PoolCode.id == row["id"]).run()
    balance = 10 * item["points_price"]
    person, me = await shopper(client, program, balance)
    refused = await redeem(client, me, item["id"], key="gave-up")
    assert refused.status_code == 409 and refused.json()["code"] == "out_of_stock", refused.text
    failed = (await client.get("/v1/me/redemptions", headers=me)).json()["items"]
    assert [o["status"] for o in failed] == ["failed"]
    order = await Order.select().where(Order.id == failed[0]["id"]).first().run()
    late = NewOrder(id=order["id"], program_id=program.id, participant_id=person["id"], item_id=item["id"],
                    partner_id=order["partner_id"], source="redemption", face_value=order["face_value"],
                    currency=order["currency"], points=order["points"], created_at=order["created_at"])
    store, view = WalletStore(redis), await get_program(program.id)
    with pytest.raises(OutOfStock):
        await pooled_orders._write(store, view, late, bad["BAD-1"], "a card", NO_IDEM)
    good = await PoolCode.select(PoolCode.order_id).where(
        (PoolCode.code_hash == hashlib.sha256(b"GOOD").hexdigest()) & (PoolCode.item_id == item["id"])).first().run()
    assert good["order_id"] is None
    wallet = (await client.get("/v1/me/wallet", headers=me)).json()
    assert (wallet["available"], wallet["held"]) == (balance, 0)
    assert [o["status"] for o in (await client.get("/v1/me/redemptions", headers=me)).json()["items"]] == ["failed"]
    # Nor does a dispatch of it (rw_pool_take), nor placing it again under its own id (a prize,
    # an approval: no key, the order's id).
    assert await pool_store.take(store, program.id, item["id"], late.id) is None
    with pytest.raises(OutOfStock):
        await pooled_orders.place(store, view, late, "a card")
    fresh = await redeem(client, me, item["id"])
    assert fresh.status_code == 201 and fresh.json()["credentials"]["code"] == "GOOD", fresh.text
    stream = wallet_keys.journal(program.id)
    assert await wait_until(lambda: redis.xlen(stream), 0) == 0
    assert await reconcile_program(redis, program.id) == []


async def test_a_change_to_the_item_or_its_route_holds_from_the_next_redemption(client) -> None:  # type: ignore[no-untyped-def]
    """A pool redemption keeps what it read of its item for a few seconds (fulfillment/
    item_routes.py), per catalog version: nothing is kept by this process's own hand, so
    a disabled item or one routed elsewhere holds from the very next redemption here exactly
    as in every other process (the catalog version moved)."""
    program, partner, item = await shop(client)
    await upload_codes(client, program, item["id"], [f"KEEP-{n}" for n in range(5)])
    _, me = await shopper(client, program, 100 * item["points_price"])
    assert (await redeem(client, me, item["id"])).status_code == 201
    disabled = await client.patch(f"/v1/catalog/items/{item['id']}", json={"status": "disabled"},
                                  headers=program.headers)
    assert disabled.status_code == 200, disabled.text
    refused = await redeem(client, me, item["id"])
    assert refused.status_code in (404, 409), refused.text
    back = await client.patch(f"/v1/catalog/items/{item['id']}", json={"status": "active"}, headers=program.headers)
    assert back.status_code == 200, back.text
    again = await redeem(client, me, item["id"])
    assert again.status_code == 201 and again.json()["status"] == "fulfilled", again.text
    moved = await client.patch(f"/v1/catalog/items/{item['id']}", json={"partner_id": partner["id"]},
                               headers=program.headers)
    assert moved.status_code == 200, moved.text
    routed = await redeem(client, me, item["id"])
    assert routed.status_code == 201 and routed.json()["status"] == "pending", routed.text


async def test_a_catalog_change_another_process_made_is_seen_by_the_redemptions_own_call(client, redis) -> None:  # type: ignore[no-untyped-def]
    """This process keeps the item's route and places the order without reading Redis first;
    the order's own call compares the catalog version the route was read at with the version
    now (fulfillment/redemption_guard.py). A change made elsewhere (the row changed, the
    version moved, nothing told this process) is refused before anything is held, and the
    route read again decides."""
    from catalog import keys as catalog_keys
    from catalog.tables import CatalogItem

    program, _, item = await shop(client)
    await upload_codes(client, program, item["id"], [f"ELSEWHERE-{n}" for n in range(3)])
    _, me = await shopper(client, program, 100 * item["points_price"])
    assert (await redeem(client, me, item["id"])).status_code == 201  # the route is kept here now
    before = (await client.get("/v1/me/wallet", headers=me)).json()

    async def elsewhere(status: str) -> None:  # what another process's catalog change does
        await CatalogItem.update({CatalogItem.status: status}).where(CatalogItem.id == item["id"]).run()
        await redis.incr(catalog_keys.catalog_version(program.id))

    await elsewhere("disabled")
    refused = await redeem(client, me, item["id"])
    assert refused.status_code == 404 and refused.json()["code"] == "not_found", refused.text
    assert (await client.get("/v1/me/wallet", headers=me)).json() == before
    await elsewhere("active")
    again = await redeem(client, me, item["id"])
    assert again.status_code == 201 and again.json()["status"] == "fulfilled", again.text


async def test_giving_up_on_a_code_the_order_no_longer_holds_returns_nothing(client, redis) -> None:  # type: ignore[no-untyped-def]
    """Two attempts at one order: one gave up on its code while the other had already taken
    the next. The points stay taken and the one giving up is told the code to try."""
    program, _, item = await shop(client)
    person, _ = await shopper(client, program, 10 * item["points_price"])
    order_id = new_id("ord")
    await redis.hset(keys.pool_orders(program.id, item["id"]), order_id, "code_next")
    other = await pool_store.give_back(WalletStore(redis), pool_store.Return(
        program_id=program.id, order_id=order_id, participant_id=person["id"], tx=new_id("tx"), meta="{}",
        now_ms="0"), item["id"], "code_first", NO_IDEM)
    assert other == "code_next"
    assert await redis.hget(keys.pool_orders(program.id, item["id"]), order_id) == b"code_next"


async def test_an_order_whose_request_died_before_taking_another_code_is_finished_by_the_sweep(
        client, redis, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The pool's first code for the order is on another order in SQL, and the request dies
    (here: its SQL write fails and the phone never retries) before it takes another: the
    projector cannot write the order with the journal's code, so the sweep finds the points
    taken with no order in the ledger and finishes it with the next code."""
    program, _, item = await shop(client)
    await upload_codes(client, program, item["id"], ["FIRST"])
    await upload_codes(client, program, item["id"], ["SECOND"])
    await PoolCode.update({PoolCode.order_id: new_id("ord")}).where(
        (PoolCode.code_hash == hashlib.sha256(b"FIRST").hexdigest()) & (PoolCode.item_id == item["id"])).run()
    price = item["points_price"]
    _, me = await shopper(client, program, 10 * price)

    async def disk_gone(*_: object, **__: object) -> bool:
        raise OSError("disk I/O error")

    monkeypatch.setattr(order_writes, "record_pooled", disk_gone)
    lost = await redeem(client, me, item["id"])
    assert lost.status_code == 503, lost.text
    monkeypatch.undo()
    stream = wallet_keys.journal(program.id)
    assert await wait_until(lambda: redis.xlen(stream), 0) == 0
    assert (await client.get("/v1/me/redemptions", headers=me)).json()["items"] == []
    assert (await client.get("/v1/me/wallet", headers=me)).json()["available"] == 9 * price
    store, view = WalletStore(redis), await get_program(program.id)
    assert await pooled_orders.mend(store, view) == 0  # too recent: its request may still be writing it
    later = datetime.now(timezone.utc) + 2 * pooled_orders.MEND_AFTER
    assert await pooled_orders.mend(store, view, later) == 1
    assert await pooled_orders.mend(store, view, later) == 0
    mine = (await client.get("/v1/me/redemptions", headers=me)).json()["items"]
    assert [(o["status"], o["credentials"]["code"]) for o in mine] == [("fulfilled", "SECOND")]
    assert (await client.get("/v1/me/wallet", headers=me)).json()["available"] == 9 * price
    assert await wait_until(lambda: redis.xlen(stream), 0) == 0
    assert await reconcile_program(redis, program.id) == []


async def test_writing_a_pool_order_again_is_harmless_and_its_code_stays_its_own(client, redis) -> None:  # type: ignore[no-untyped-def]
    """The request and the journal projector both write a pool order, whichever comes first:
    the second finds the rows in place and answers as the first; another order asking for
    the same code is refused."""
    program, _, item = await shop(client)
    await upload_codes(client, program, item["id"], ["TWICE"])
    _, me = await shopper(client, program, 10 * item["points_price"])
    placed = await redeem(client, me, item["id"])
    assert placed.status_code == 201, placed.text
    await projected(redis, program.id)
    row = await Order.select().where(Order.id == placed.json()["id"]).first().run()
    code = await PoolCode.select(PoolCode.id, PoolCode.secret).where(PoolCode.order_id == row["id"]).first().run()
    order = NewOrder(id=row["id"], program_id=program.id, participant_id=row["participant_id"], item_id=item["id"],
                     partner_id=row["partner_id"], source="redemption", face_value=row["face_value"],
                     currency=row["currency"], points=row["points"], created_at=row["created_at"])
    assert await order_writes.record_pooled(order, code["id"], []) == code["secret"]
    with pytest.raises(Conflict):
        await order_writes.record_pooled(msgspec.structs.replace(order, id=new_id("ord")), code["id"], [])
    with pytest.raises(DomainError, match="no row"):  # a code SQL does not know: no card, and no retake
        await order_writes.record_pooled(msgspec.structs.replace(order, id=new_id("ord")), new_id("code"), [])
    assert await Order.count().where(Order.participant_id == row["participant_id"]).run() == 1


async def test_a_retry_of_an_order_the_sweep_gave_back_is_refused_as_out_of_stock(client, redis, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The request died before it could take another code and none was left: the sweep gives
    the points back, and a retry with the same key is refused as its request would have been."""
    program, _, item = await shop(client)
    await upload_codes(client, program, item["id"], ["ONLY"])
    await PoolCode.update({PoolCode.order_id: new_id("ord")}).where(
        (PoolCode.code_hash == hashlib.sha256(b"ONLY").hexdigest()) & (PoolCode.item_id == item["id"])).run()
    balance = 10 * item["points_price"]
    _, me = await shopper(client, program, balance)

    async def disk_gone(*_: object, **__: object) -> bool:
        raise OSError("disk I/O error")

    monkeypatch.setattr(order_writes, "record_pooled", disk_gone)
    assert (await redeem(client, me, item["id"], key="swept")).status_code == 503
    monkeypatch.undo()
    stream = wallet_keys.journal(program.id)
    assert await wait_until(lambda: redis.xlen(stream), 0) == 0
    later = datetime.now(timezone.utc) + 2 * pooled_orders.MEND_AFTER
    assert await pooled_orders.mend(WalletStore(redis), await get_program(program.id), later) == 1
    assert (await client.get("/v1/me/wallet", headers=me)).json()["available"] == balance
    retried = await redeem(client, me, item["id"], key="swept")
    assert retried.status_code == 409 and retried.json()["code"] == "out_of_stock", retried.text
    assert [o["status"] for o in (await client.get("/v1/me/redemptions", headers=me)).json()["items"]] == ["failed"]


async def test_the_projector_writes_only_the_pool_orders_their_requests_did_not(  # type: ignore[no-untyped-def]
        client, redis, monkeypatch) -> None:
    """With a Redis that may lose writes, requests write their order themselves; the journal
    projector then writes nothing for it (no second binding, insert or feed line to find
    already there). An order whose request died after its Redis call is still written by the
    projector, whole."""
    monkeypatch.setattr(sqlite_pool, "_journal_synced", False)
    program, _, item = await shop(client)
    await upload_codes(client, program, item["id"], ["KEPT", "LOST"])
    person, me = await shopper(client, program, 10 * item["points_price"])
    stream = wallet_keys.journal(program.id)
    async with projection_paused(redis, program.id):
        written = await redeem(client, me, item["id"])
        assert written.status_code == 201, written.text

        async def died(*_: object, **__: object) -> str:
            raise OSError("disk I/O error")

        written_by = order_writes.record_pooled
        monkeypatch.setattr(order_writes, "record_pooled", died)
        failed = await redeem(client, me, item["id"])
        assert failed.status_code == 503, failed.text
        monkeypatch.setattr(order_writes, "record_pooled", written_by)
        entries = [parse_entry(sid, fields) for sid, fields in await redis.xrange(stream)]
        captures = [e for e in entries if e.kind == "redemption"]
        assert len(captures) == 2
        rows = await pooled_orders.write_pool_orders(program.id, captures)
        lost = next(e.reference for e in captures if e.reference != written.json()["id"])
        inserted = {r.table: r.rows for r in rows if r.columns}  # (the rest take back what has no code)
        assert [row[0] for row in inserted["orders"]] == [lost]
        assert [line[1] for line in inserted["feed_items"]] == [f"{program.id}:order:{lost}:fulfilled"]
    assert await wait_until(lambda: redis.xlen(stream), 0) == 0
    mine = (await client.get("/v1/me/redemptions", headers=me)).json()["items"]
    # (The two codes came in one upload: which one the pool handed out first is not fixed.)
    first = written.json()["credentials"]["code"]
    assert sorted((o["id"], o["status"], o["credentials"]["code"]) for o in mine) == sorted(
        [(written.json()["id"], "fulfilled", first), (lost, "fulfilled", ({"KEPT", "LOST"} - {first}).pop())])
    assert await _feed_kinds(lost) == ["redemption"]
    assert await _feed_kinds(written.json()["id"]) == ["redemption"]
    assert await reconcile_program(redis, program.id) == []
    assert await Order.count().where(Order.participant_id == person["id"]).run() == 2


async def test_a_participants_own_pool_order_is_one_ledger_entry_and_one_line_and_one_made_for_them_is_audited(
        client, redis) -> None:  # type: ignore[no-untyped-def]
    program, _, item = await shop(client)
    await upload_codes(client, program, item["id"], ["ONE", "TWO"])
    price = item["points_price"]
    person, me = await shopper(client, program, 10 * price)
    own = await redeem(client, me, item["id"])
    made_for = await client.post(f"/v1/participants/{person['id']}/redemptions", json={"item_id": item["id"]},
                                 headers={**program.headers, "Idempotency-Key": "for-them"})
    assert own.status_code == 201 and own.json()["status"] == "fulfilled", own.text
    assert made_for.status_code == 201 and made_for.json()["status"] == "fulfilled", made_for.text
    await projected(redis, program.id)

    async def entries(order_id: str) -> list[tuple[str, int, list[list[Any]]]]:
        rows = await LedgerEntry.select(LedgerEntry.kind, LedgerEntry.points, LedgerEntry.legs).where(
            LedgerEntry.reference == order_id).order_by(LedgerEntry.id).run()
        return [(r["kind"], r["points"], msgspec.json.decode(r["legs"])) for r in rows]

    available, held = f"available:{person['id']}", f"held:{person['id']}"
    # The participant's own order is paid in one entry, available -> redeemed: no hold opened and
    # closed in the ledger. One made for them keeps its hold, which names who (the audit log's row).
    assert await entries(own.json()["id"]) == [("redemption", -price, [[available, "redeemed", price]])]
    assert await entries(made_for.json()["id"]) == [("hold", -price, [[available, held, price]]),
                                                    ("redemption", 0, [[held, "redeemed", price]])]
    history = (await client.get("/v1/me/transactions", headers=me)).json()["items"]
    assert [(t["kind"], t["points"]) for t in history if t.get("reference") == own.json()["id"]] == [
        ("redemption", -price)]
    wallet = (await client.get("/v1/me/wallet", headers=me)).json()
    assert (wallet["available"], wallet["held"]) == (8 * price, 0)
    # And one feed line an order: its points and its card together.
    feed = (await client.get("/v1/me/feed", headers=me)).json()["items"]
    for order in (own.json(), made_for.json()):
        lines = [(line["kind"], line["points"], line["text"]) for line in feed if line.get("reference") == order["id"]]
        assert lines == [("redemption", -price, f"Redeemed {price:,} points for {item['name']}: your card is ready")]
    logged = (await client.get("/v1/audit-events", params={"kind": "points.redemption"},
                               headers=program.headers)).json()["items"]
    assert [(row["subject"], row["detail"]["points"], row["detail"]["reason"]) for row in logged] == [
        (person["id"], price, f"redemption {made_for.json()['id']}")]
    assert logged[0]["actor"].startswith("key:")
    assert await reconcile_program(redis, program.id) == []
