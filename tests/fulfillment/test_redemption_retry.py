"""A redemption interrupted by a crash and retried with the same Idempotency-Key carries the
first attempt's order on: one order, one hold."""

from __future__ import annotations

import pytest

from fulfillment.tables import Order
from tests.fulfillment.helpers import redeem, shop, shopper
from wallet import keys

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
    await redis.delete(keys.idempotency(program.id, f"pt:{person['id']}", "crash-me"))
    if crashed_in == "new":
        await Order.update({Order.status: "new"}).where(Order.id == order_id).run()
    retried = await redeem(client, me, item["id"], key="crash-me")
    assert retried.status_code == 201, retried.text
    assert retried.json()["id"] == order_id and retried.json()["status"] == "pending"
    assert len((await client.get("/v1/me/redemptions", headers=me)).json()["items"]) == 1
    wallet = (await client.get("/v1/me/wallet", headers=me)).json()
    assert (wallet["available"], wallet["held"]) == (10_000 - first.json()["points"], first.json()["points"])
