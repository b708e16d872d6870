"""A redemption interrupted by a crash and retried with the same Idempotency-Key (or left to
the sweep) carries the first attempt's order on: one order, one hold, one code."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest

from catalog.items import item_row, pricing_of, redemption_points
from fulfillment.order_writes import NewOrder, open_order
from fulfillment.orders import hold_idem, settle_idem, sweep
from fulfillment.partners import route
from fulfillment.tables import Order, PoolCode
from programs.programs import get_program
from wallet import accounts
from kernel import keys as kernel_keys
from kernel.ids import new_id
from wallet.store import WalletStore
from tests.factories import redeem, shop, shopper

pytestmark = pytest.mark.sql


@pytest.mark.parametrize("crashed_in", ["new", "pending"])
async def test_a_retry_after_a_crash_makes_no_second_order(client, redis, crashed_in: str) -> None:  # type: ignore[no-untyped-def]
    program, _, item = await shop(client)
    person, me = await shopper(client, program, 10_000)
    first = await redeem(client, me, item["id"], key="crash-me")
    assert first.status_code == 201, first.text
    order_id = first.json()["id"]
    # The process died after the order was written (and, for "new", before it was marked
    # pending) but before the answer was recorded; the in-flight marker has since expired.
    await redis.delete(kernel_keys.idempotency(program.id, f"pt:{person['id']}", "crash-me"))
    if crashed_in == "new":
        await Order.update({Order.status: "new"}).where(Order.id == order_id).run()
    retried = await redeem(client, me, item["id"], key="crash-me")
    assert retried.status_code == 201, retried.text
    assert retried.json()["id"] == order_id and retried.json()["status"] == "pending"
    assert len((await client.get("/v1/me/redemptions", headers=me)).json()["items"]) == 1
    wallet = (await client.get("/v1/me/wallet", headers=me)).json()
    assert (wallet["available"], wallet["held"]) == (10_000 - first.json()["points"], first.json()["points"])


async def _pool_shop(client, codes: int = 2):  # type: ignore[no-untyped-def]
    program, _, item = await shop(client)
    csv_text = "code\n" + "".join(f"GC-{n}\n" for n in range(1, codes + 1))
    upload = await client.post(f"/v1/catalog/items/{item['id']}/codes", json={"csv": csv_text},
                               headers=program.headers)
    assert upload.status_code in (200, 201), upload.text
    return program, item


async def _stock(client, program) -> dict:  # type: ignore[no-untyped-def]
    return (await client.get("/v1/catalog/stock", headers=program.headers)).json()["items"][0]


@pytest.mark.parametrize("crashed_after", ["open", "hold", "capture"])
@pytest.mark.parametrize("finisher", ["retry", "sweep"])
async def test_a_pool_redemption_interrupted_anywhere_is_finished_once(  # type: ignore[no-untyped-def]
        client, redis, crashed_after: str, finisher: str) -> None:
    program, item = await _pool_shop(client)
    person, me = await shopper(client, program, 10_000)
    view = await get_program(program.id)
    row = await item_row(program.id, item["id"])
    value, points = redemption_points(row, pricing_of(view), None)
    store = WalletStore(redis)
    # The first attempt's steps, up to the crash (a sweep only picks up orders past STALE_NEW).
    aged = timedelta(minutes=2) if finisher == "sweep" else timedelta()
    order = NewOrder(id=new_id("ord"), program_id=program.id, participant_id=person["id"], item_id=item["id"],
                     partner_id=(await route(program.id, row))["id"], source="redemption", face_value=value,
                     currency=row["currency"], points=points, created_at=datetime.now(timezone.utc) - aged)
    assert await open_order(order, pooled=True) is not None
    bound = await PoolCode.select(PoolCode.code_hash).where(PoolCode.order_id == order.id).run()
    assert len(bound) == 1
    code = {hashlib.sha256(c.encode()).hexdigest(): c for c in ("GC-1", "GC-2")}[bound[0]["code_hash"]]
    if crashed_after in ("hold", "capture"):
        await accounts.hold(store, program.id, person["id"], points, order.id, hold_idem(program.id, order.id))
    if crashed_after == "capture":
        await accounts.capture(store, program.id, person["id"], order.id, settle_idem(program.id, order.id, "capture"))
    if finisher == "retry":
        # The route fixed the order id under the key; the crash lost the answer.
        await redis.set(kernel_keys.idempotency(program.id, f"pt:{person['id']}", "crash-pool") + ":order", order.id)
        retried = await redeem(client, me, item["id"], key="crash-pool")
        assert retried.status_code == 201, retried.text
        assert retried.json()["id"] == order.id and retried.json()["credentials"]["code"] == code
    else:
        assert (await client.get(f"/v1/me/redemptions/{order.id}", headers=me)).status_code == 404  # still `new`
        await sweep(store, program.id)
    await sweep(store, program.id)  # again: nothing happens twice
    mine = (await client.get("/v1/me/redemptions", headers=me)).json()["items"]
    assert [(o["id"], o["status"], o["credentials"]["code"]) for o in mine] == [(order.id, "fulfilled", code)]
    wallet = (await client.get("/v1/me/wallet", headers=me)).json()
    assert (wallet["available"], wallet["held"]) == (10_000 - points, 0)
    assert ((await _stock(client, program))["available"], (await _stock(client, program))["used"]) == (1, 1)


async def test_a_refused_hold_leaves_no_order_and_puts_the_code_back(client) -> None:  # type: ignore[no-untyped-def]
    program, item = await _pool_shop(client, codes=1)
    _, me = await shopper(client, program, 10)
    for _ in range(2):  # the retry answers the same refusal
        refused = await redeem(client, me, item["id"], key="too-poor")
        assert refused.status_code == 422 and refused.json()["code"] == "insufficient_points", refused.text
    assert (await client.get("/v1/me/redemptions", headers=me)).json()["items"] == []
    assert (await _stock(client, program))["available"] == 1
    wallet = (await client.get("/v1/me/wallet", headers=me)).json()
    assert (wallet["available"], wallet["held"]) == (10, 0)
