"""An admin cancels an order no partner has delivered: the points come back, once, and the
partner can no longer deliver it."""

from __future__ import annotations

import pytest

from tests.factories import available, bearer, claim_orders, redeem, shop, shopper, wait_until

pytestmark = pytest.mark.sql


async def test_a_claimed_order_cancelled_by_an_admin_returns_the_points_once_and_cannot_be_fulfilled(client) -> None:  # type: ignore[no-untyped-def]
    program, partner, item = await shop(client)
    person, me = await shopper(client, program, 3000)
    order = (await redeem(client, me, item["id"])).json()
    partner_key = bearer(partner["api_key"])
    [claimed] = (await claim_orders(client, partner_key)).json()["items"]
    assert await available(client, program, person["id"]) == 3000 - order["points"]

    cancelled = await client.post(f"/v1/orders/{order['id']}/cancel", headers=program.headers,
                                  json={"reason": "dealer returned the sale"})
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled"
    assert await available(client, program, person["id"]) == 3000
    again = await client.post(f"/v1/orders/{order['id']}/cancel", headers=program.headers,
                              json={"reason": "dealer returned the sale"})
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    assert await available(client, program, person["id"]) == 3000  # returned once, not twice

    late = await client.post(f"/v1/fulfillment/orders/{order['id']}/fulfill", headers=partner_key,
                             json={"lease_id": claimed["lease_id"], "credentials": {"code": "TOO-LATE"}})
    assert late.status_code == 409 and late.json()["code"] == "conflict"
    assert "cancelled" in late.json()["detail"]
    mine = (await client.get(f"/v1/me/redemptions/{order['id']}", headers=me)).json()
    assert mine["status"] == "cancelled" and not mine.get("credentials")

    async def cancelled_lines() -> int:
        lines = (await client.get("/v1/me/feed", headers=me)).json()["items"]
        return sum("was cancelled: dealer returned the sale" in line["text"]
                   and f"{order['points']:,}" in line["text"] for line in lines)

    assert await wait_until(cancelled_lines, 1) == 1


async def test_a_fulfilled_order_can_be_delivered_again_but_not_cancelled(client) -> None:  # type: ignore[no-untyped-def]
    program, partner, item = await shop(client)
    person, me = await shopper(client, program, 6000)
    order = (await redeem(client, me, item["id"])).json()
    partner_key = bearer(partner["api_key"])
    [claimed] = (await claim_orders(client, partner_key)).json()["items"]
    assert (await client.post(f"/v1/fulfillment/orders/{order['id']}/fulfill", headers=partner_key, json={
        "lease_id": claimed["lease_id"], "credentials": {"code": "DELIVERED"}})).status_code == 200

    again = await client.post(f"/v1/orders/{order['id']}/redeliver", headers=program.headers)
    assert again.status_code == 200 and "DELIVERED" not in again.text
    lines = (await client.get("/v1/me/feed", headers=me)).json()["items"]
    assert any(line["kind"] == "order_redelivered" and line["reference"] == order["id"] for line in lines)
    mine = (await client.get(f"/v1/me/redemptions/{order['id']}", headers=me)).json()
    assert mine["credentials"] == {"code": "DELIVERED"}

    refused = await client.post(f"/v1/orders/{order['id']}/cancel", headers=program.headers)
    assert refused.status_code == 409 and "fulfilled" in refused.json()["detail"]
    assert await available(client, program, person["id"]) == 6000 - order["points"]
    assert (await client.post("/v1/orders/ord_nope/cancel", headers=program.headers)).status_code == 404
    pending = (await redeem(client, me, item["id"])).json()
    not_yet = await client.post(f"/v1/orders/{pending['id']}/redeliver", headers=program.headers)
    assert not_yet.status_code == 409 and "pending" in not_yet.json()["detail"]
    # Another program's admin cannot cancel it either.
    other, _, _ = await shop(client)
    assert (await client.post(f"/v1/orders/{order['id']}/cancel", headers=other.headers)).status_code == 404
