"""An external partner's order is one Redis call and one SQL transaction
(fulfillment/partner_orders.py): whatever dies between the two, the order appears once, its
points held once, its partner told once."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from catalog.items import pricing_of
from fulfillment import order_records, order_writes, partner_orders
from fulfillment.redemptions import place_order
from fulfillment.sealing import Sealer
from fulfillment.tables import Order, WebhookDelivery
from kernel.errors import Unavailable
from kernel.ids import new_id
from programs.programs import get_program
from programs.tables import FeedItem
from api.projection import followers
from wallet.journal import parse_entry, write_batch
from wallet.keys import journal as journal_key
from wallet.store import WalletStore
from wallet.tables import LedgerEntry
from tests.factories import another_worker, bearer, claim_orders, commands_of, projected, redeem, shop, shopper, \
    wait_until
from tests.games.test_spin_projection import projection_paused

pytestmark = pytest.mark.sql

HOOK = "https://hooks.partner.example/orders"


async def _hooked_shop(client):  # type: ignore[no-untyped-def]
    program, partner, item = await shop(client)
    answer = await client.put(f"/v1/fulfillment/partners/{partner['id']}/webhook", headers=program.headers,
                              json={"url": HOOK})
    assert answer.status_code == 200, answer.text
    return program, partner, item


def _what_was_written(order_id: str):  # type: ignore[no-untyped-def]
    async def read() -> tuple[list[str], int, list[str]]:
        rows = await Order.select(Order.status).where(Order.id == order_id).run()
        deliveries = await WebhookDelivery.count().where(WebhookDelivery.order_id == order_id).run()
        lines = await FeedItem.select(FeedItem.kind).where(FeedItem.reference == order_id).run()
        return [r["status"] for r in rows], deliveries, [line["kind"] for line in lines]
    return read


async def _wallet(client, me) -> tuple[int, int]:  # type: ignore[no-untyped-def]
    wallet = (await client.get("/v1/me/wallet", headers=me)).json()
    return wallet["available"], wallet["held"]


async def test_a_partner_order_is_written_pending_with_its_webhook_and_feed_line(client) -> None:  # type: ignore[no-untyped-def]
    program, _, item = await _hooked_shop(client)
    _, me = await shopper(client, program, 10_000)
    placed = await redeem(client, me, item["id"])
    assert placed.status_code == 201 and placed.json()["status"] == "pending", placed.text
    order_id, points = placed.json()["id"], placed.json()["points"]
    assert await _what_was_written(order_id)() == (["pending"], 1, ["redemption"])
    mine = (await client.get(f"/v1/me/redemptions/{order_id}", headers=me)).json()
    assert (mine["status"], mine["created_at"], mine["points"]) == ("pending", placed.json()["created_at"], points)
    assert await _wallet(client, me) == (10_000 - points, points)


async def test_a_partner_order_whose_sql_write_fails_answers_503_and_its_retry_the_same_order(  # type: ignore[no-untyped-def]
        client, redis, monkeypatch) -> None:
    program, _, item = await _hooked_shop(client)
    _, me = await shopper(client, program, 10_000)
    written = order_writes.record_pending

    async def locked(*_: object, **__: object) -> bool:
        raise sqlite3.OperationalError("database is locked")

    async with projection_paused(redis, program.id):  # the retry, not the projector, writes it
        monkeypatch.setattr(order_writes, "record_pending", locked)
        failed = await redeem(client, me, item["id"], key="sql-down")
        assert failed.status_code == 503 and failed.json()["code"] == "unavailable", failed.text
        monkeypatch.setattr(order_writes, "record_pending", written)
        # The item is retired before the retry: the order is written as it was charged.
        retired = await client.patch(f"/v1/catalog/items/{item['id']}", json={"status": "disabled"},
                                     headers=program.headers)
        assert retired.status_code == 200, retired.text
        retried = await redeem(client, me, item["id"], key="sql-down")
        assert retried.status_code == 201 and retried.headers.get("Idempotent-Replayed") == "true", retried.text
        order_id, points = retried.json()["id"], retried.json()["points"]
        assert (retried.json()["status"], points) == ("pending", item["points_price"])
        assert await _what_was_written(order_id)() == (["pending"], 1, ["redemption"])
    # The projector then meets the order's journal entry: nothing is written twice.
    assert await wait_until(lambda: redis.xlen(journal_key(program.id)), 0) == 0
    assert await _what_was_written(order_id)() == (["pending"], 1, ["redemption"])
    assert [o["id"] for o in (await client.get("/v1/me/redemptions", headers=me)).json()["items"]] == [order_id]
    assert await _wallet(client, me) == (10_000 - points, points)


async def test_the_journal_projector_writes_a_partner_order_whose_request_died_after_its_redis_call(  # type: ignore[no-untyped-def]
        client, monkeypatch) -> None:
    program, partner, item = await _hooked_shop(client)
    person, me = await shopper(client, program, 10_000)

    async def died(*_: object, **__: object) -> bool:
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(order_writes, "record_pending", died)
    failed = await redeem(client, me, item["id"], key="died")
    assert failed.status_code == 503, failed.text
    monkeypatch.undo()

    # Nobody retries: the hold's journal entry carries the order, and the projector writes it.
    async def orders_of() -> list[tuple[str, str]]:
        rows = await Order.select(Order.status, Order.partner_id).where(Order.participant_id == person["id"]).run()
        return [(r["status"], r["partner_id"]) for r in rows]

    assert await wait_until(orders_of, [("pending", partner["id"])]) == [("pending", partner["id"])]
    [order_id] = [r["id"] for r in await Order.select(Order.id).where(Order.participant_id == person["id"]).run()]
    wanted = (["pending"], 1, ["redemption"])
    assert await wait_until(_what_was_written(order_id), wanted) == wanted
    claimed = (await claim_orders(client, bearer(partner["api_key"]))).json()["items"]
    assert [o["id"] for o in claimed] == [order_id]
    # A late retry answers that order; nothing is held or written twice.
    retried = await redeem(client, me, item["id"], key="died")
    assert retried.status_code == 201 and retried.headers.get("Idempotent-Replayed") == "true", retried.text
    assert retried.json()["id"] == order_id
    assert await _what_was_written(order_id)() == (["claimed"], 1, ["redemption"])
    points = retried.json()["points"]
    assert await _wallet(client, me) == (10_000 - points, points)


async def test_concurrent_attempts_with_one_key_place_one_order(client) -> None:  # type: ignore[no-untyped-def]
    program, _, item = await _hooked_shop(client)
    person, me = await shopper(client, program, 10_000)
    answers = await asyncio.gather(*(redeem(client, me, item["id"], key="twice") for _ in range(8)))
    placed = [a for a in answers if a.status_code == 201]
    assert placed and all(a.status_code in (201, 409) for a in answers), [a.text for a in answers]
    assert {a.json()["id"] for a in placed} == {placed[0].json()["id"]}
    order_id, points = placed[0].json()["id"], placed[0].json()["points"]
    assert await _what_was_written(order_id)() == (["pending"], 1, ["redemption"])
    assert await Order.count().where(Order.participant_id == person["id"]).run() == 1
    assert await _wallet(client, me) == (10_000 - points, points)


async def test_a_redemption_is_one_redis_command_carrying_its_gate(  # type: ignore[no-untyped-def]
        settings, migrated, private_valkey) -> None:
    """A partner's redemption and a pool's each send Redis one command (MONITOR): the order's
    function behind the request's gate (rw_gated), which also reads the Idempotency-Key and
    checks the catalog version the item's route was read at (fulfillment/redemption_guard.py)."""
    async with another_worker(settings, redis_url=private_valkey, redis_cluster=False) as app:
        program, _, item = await shop(app)
        pooled = (await app.post("/v1/catalog/items", headers=program.headers, json={
            "brand": "Amazon", "name": "Pooled card", "face_value": {"amount": 2500, "currency": "USD"},
            "sku": "pooled-sku"})).json()
        upload = await app.post(f"/v1/catalog/items/{pooled['id']}/codes", json={"csv": "code\nGC-1\nGC-2\n"},
                                headers=program.headers)
        assert upload.status_code in (200, 201), upload.text
        _, me = await shopper(app, program, 100_000)
        for warm in (item["id"], pooled["id"]):  # first use: the token, the routes, the pool's load
            assert (await redeem(app, me, warm)).status_code == 201

        async def place(item_id: str) -> None:
            answer = await redeem(app, me, item_id)
            assert answer.status_code == 201, answer.text

        partner = await commands_of(private_valkey, lambda: place(item["id"]))
        pool = await commands_of(private_valkey, lambda: place(pooled["id"]))
    print("\ncommands of a partner redemption:", partner, "\ncommands of a pool redemption:", pool)
    assert len(partner) == len(pool) == 1, (partner, pool)
    assert partner[0].startswith("FCALL rw_gated ") and " rw_partner_hold " in partner[0], partner
    assert pool[0].startswith("FCALL rw_gated ") and " rw_pool_redeem " in pool[0], pool


async def _broken(*_: object, **__: object) -> Any:
    raise sqlite3.OperationalError("database is locked")


async def test_the_sweep_writes_a_held_order_that_neither_its_request_nor_the_projector_wrote(  # type: ignore[no-untyped-def]
        client, redis, monkeypatch) -> None:
    program, partner, item = await _hooked_shop(client)
    person, me = await shopper(client, program, 10_000)
    async with projection_paused(redis, program.id):
        monkeypatch.setattr(order_writes, "record_pending", _broken)  # the request's write fails
        failed = await redeem(client, me, item["id"], key="lost")
        assert failed.status_code == 503, failed.text
        monkeypatch.undo()
        # The entry is projected with the ledger's rows alone (a follower that failed, or a
        # projector of an earlier build, which has no follower of partner orders).
        stream = journal_key(program.id)
        messages = await redis.xrange(stream)
        await write_batch(program.id, [parse_entry(sid, fields) for sid, fields in messages])
        await redis.xdel(stream, *[sid for sid, _ in messages])
    assert await Order.count().where(Order.participant_id == person["id"]).run() == 0
    assert await LedgerEntry.count().where((LedgerEntry.participant_id == person["id"])
                                           & (LedgerEntry.kind == "hold")).run() == 1
    view = await get_program(program.id)
    assert await partner_orders.mend(view) == 0  # too young: left to its request and the projector
    later = datetime.now(timezone.utc) + timedelta(minutes=2)
    assert await partner_orders.mend(view, now=later) == 1
    assert await partner_orders.mend(view, now=later) == 0  # written once
    [order_id] = [r["id"] for r in await Order.select(Order.id).where(Order.participant_id == person["id"]).run()]
    assert await _what_was_written(order_id)() == (["pending"], 1, ["redemption"])
    retried = await redeem(client, me, item["id"], key="lost")
    assert retried.status_code == 201 and retried.json()["id"] == order_id, retried.text
    points = retried.json()["points"]
    assert await _wallet(client, me) == (10_000 - points, points)


async def test_a_retry_by_order_id_writes_what_its_first_attempt_held_whatever_the_catalog_says_now(  # type: ignore[no-untyped-def]
        client, redis, settings, monkeypatch) -> None:
    """An approval or a redemption made for the participant retries by order id, with no
    idempotency record: the hold its first attempt made carries the order as it was charged."""
    program, _, item = await _hooked_shop(client)
    person, me = await shopper(client, program, 10_000)
    view = await get_program(program.id)
    store, sealer, order_id = WalletStore(redis), Sealer(settings.encryption_key), new_id("ord")

    def place() -> Any:
        return place_order(store, sealer, view, pricing_of(view), person["id"], item["id"], None, order_id=order_id,
                           actor={"actor": "key:admin", "approved_by": "user:boss"})

    async with projection_paused(redis, program.id):  # the retry, not the projector, writes it
        monkeypatch.setattr(order_writes, "record_pending", _broken)
        with pytest.raises(Unavailable):
            await place()
        monkeypatch.undo()
        retired = await client.patch(f"/v1/catalog/items/{item['id']}", json={"status": "disabled"},
                                     headers=program.headers)
        assert retired.status_code == 200, retired.text
        placed = await place()
        assert (placed.id, placed.status, placed.points) == (order_id, "pending", item["points_price"])
        assert await _what_was_written(order_id)() == (["pending"], 1, ["redemption"])
    assert await wait_until(lambda: redis.xlen(journal_key(program.id)), 0) == 0
    assert await _what_was_written(order_id)() == (["pending"], 1, ["redemption"])
    assert await _wallet(client, me) == (10_000 - placed.points, placed.points)


async def test_a_failing_order_follower_leaves_the_holds_audit_row_in_place(  # type: ignore[no-untyped-def]
        client, redis, settings, monkeypatch) -> None:
    """The `hold` kind has two followers (the audit log's, the orders'): one failing does not
    take the other's rows with it."""
    program, _, item = await _hooked_shop(client)
    person, _ = await shopper(client, program, 10_000)
    view = await get_program(program.id)
    async with projection_paused(redis, program.id):
        placed = await place_order(WalletStore(redis), Sealer(settings.encryption_key), view, pricing_of(view),
                                   person["id"], item["id"], None, order_id=new_id("ord"), actor={"actor": "key:admin"})
        # As if its request had died before its SQL write: the orders' follower has rows to write.
        await Order.delete().where(Order.id == placed.id).run()
        messages = await redis.xrange(journal_key(program.id))
        holds = [e for e in (parse_entry(sid, fields) for sid, fields in messages) if e.kind == "hold"]
        follow = followers()["hold"]
        assert {r.table for r in await follow(program.id, holds) if r.rows} == {"audit_events", "orders", "feed_items",
                                                                              "webhook_deliveries"}
        monkeypatch.setattr(order_records, "titles", _broken)  # the orders' follower reads titles
        rows = await follow(program.id, holds)
    assert placed.status == "pending"
    assert [(r.table, len(r.rows)) for r in rows] == [("audit_events", 1)]
    assert "key:admin" in rows[0].rows[0]


async def test_the_projector_writes_only_the_partner_orders_their_requests_did_not(  # type: ignore[no-untyped-def]
        client, redis, monkeypatch) -> None:
    """The projector leaves an order its request wrote alone (its webhook and feed line came
    with it) and writes, whole, the one whose request died after its Redis call."""
    program, _, item = await _hooked_shop(client)
    person, me = await shopper(client, program, 10_000)
    stream = journal_key(program.id)
    async with projection_paused(redis, program.id):
        written = await redeem(client, me, item["id"])
        assert written.status_code == 201, written.text

        async def died(*_: object, **__: object) -> bool:
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(order_writes, "record_pending", died)
        failed = await redeem(client, me, item["id"])
        assert failed.status_code == 503, failed.text
        monkeypatch.undo()
        holds = [e for e in (parse_entry(sid, fields) for sid, fields in await redis.xrange(stream)) if e.kind == "hold"]
        assert len(holds) == 2
        lost = next(e.reference for e in holds if e.reference != written.json()["id"])
        rows = {r.table: r.rows for r in await partner_orders.write_partner_orders(program.id, holds)}
        assert [row[0] for row in rows["orders"]] == [lost]
        # (The written order's delivery too, which its request wrote: ON CONFLICT leaves it.)
        assert sorted(row[3] for row in rows["webhook_deliveries"]) == sorted([lost, written.json()["id"]])
        assert [line[1] for line in rows["feed_items"]] == [f"{program.id}:order:{lost}:placed"]
    assert await wait_until(lambda: redis.xlen(stream), 0) == 0
    wanted = (["pending"], 1, ["redemption"])
    for order_id in (written.json()["id"], lost):
        assert await wait_until(_what_was_written(order_id), wanted) == wanted
    assert await Order.count().where(Order.participant_id == person["id"]).run() == 2


async def test_an_order_placed_just_before_its_partners_webhook_was_set_is_still_told(  # type: ignore[no-untyped-def]
        client, redis) -> None:
    """A redemption routed by what its process kept from before the partner's webhook was set
    writes its order with no delivery; the journal projector queues it (fulfillment/item_routes.py),
    once, while the order is still pending."""
    program, partner, item = await shop(client)
    _, me = await shopper(client, program, 10_000)
    async with projection_paused(redis, program.id):
        placed = await redeem(client, me, item["id"])
        assert placed.status_code == 201, placed.text
        order_id = placed.json()["id"]
        assert await WebhookDelivery.count().where(WebhookDelivery.order_id == order_id).run() == 0
        answer = await client.put(f"/v1/fulfillment/partners/{partner['id']}/webhook", headers=program.headers,
                                  json={"url": HOOK})
        assert answer.status_code == 200, answer.text
    wanted = (["pending"], 1, ["redemption"])
    assert await wait_until(_what_was_written(order_id), wanted) == wanted


async def test_an_ended_order_whose_hold_is_gone_does_not_stop_the_sweep_and_settles_once_the_ledger_ends_it(  # type: ignore[no-untyped-def]
        client, redis) -> None:
    """Two cancelled orders a crash left unsettled; Redis has lost one's hold (and its settle
    record). The sweep settles the other and leaves that one, which used to fail the whole
    program's sweep at every round; once the ledger holds the void that ended it, the sweep
    marks it settled too."""
    from fulfillment import orders
    from wallet.keys import hold as hold_key

    program, _, item = await shop(client)
    _, me = await shopper(client, program, 10_000)
    placed = [(await redeem(client, me, item["id"])).json()["id"] for _ in range(2)]
    lost, kept = placed

    async def settled() -> dict[str, Any]:
        rows = await Order.select(Order.id, Order.settled_at).where(Order.id.is_in(placed)).run()
        return {r["id"]: r["settled_at"] for r in rows}

    async with projection_paused(redis, program.id):  # the voids stay out of the ledger for now
        for order_id in placed:
            cancelled = await client.post(f"/v1/orders/{order_id}/cancel", headers=program.headers)
            assert cancelled.status_code == 200, cancelled.text
        await Order.update({Order.settled_at: None}).where(Order.id.is_in(placed)).run()  # the crash
        await redis.delete(hold_key(program.id, lost), orders.settle_idem(program.id, lost, "void").key)
        # A live server's own sweep may run too: what counts is the end state, and that the
        # sweep returns instead of raising.
        await orders.sweep(WalletStore(redis), program.id)
        now = await settled()
        assert now[kept] is not None and now[lost] is None
        assert await orders.sweep(WalletStore(redis), program.id) == 0  # and again
    await projected(redis, program.id)  # the lost order's void reaches the ledger
    await orders.sweep(WalletStore(redis), program.id)
    assert (await settled())[lost] is not None
    assert await LedgerEntry.count().where((LedgerEntry.reference == lost)
                                           & (LedgerEntry.kind == "redemption_void")).run() == 1
