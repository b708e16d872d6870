"""Partners under an admin's control: keys rotated, partners disabled, orders never misrouted."""

from __future__ import annotations

import pytest

from tests.factories import bearer
from tests.fulfillment.helpers import redeem, shop, shopper

pytestmark = pytest.mark.sql


async def claim(client, partner_key, **body):  # type: ignore[no-untyped-def]
    return await client.post("/v1/fulfillment/orders/claim", json={"limit": 10, "lease_seconds": 60, **body},
                              headers=partner_key)


async def test_a_second_fulfil_with_other_credentials_is_refused_and_the_first_code_stands(client) -> None:  # type: ignore[no-untyped-def]
    program, partner, item = await shop(client)
    _, me = await shopper(client, program, 2500)
    order = (await redeem(client, me, item["id"])).json()
    partner_key = bearer(partner["api_key"])
    [claimed] = (await claim(client, partner_key)).json()["items"]
    first = {"lease_id": claimed["lease_id"], "credentials": {"code": "FIRST-CODE"}}
    assert (await client.post(f"/v1/fulfillment/orders/{order['id']}/fulfill", headers=partner_key,
                              json=first)).status_code == 200
    other = await client.post(f"/v1/fulfillment/orders/{order['id']}/fulfill", headers=partner_key,
                              json={**first, "credentials": {"code": "SECOND-CODE"}})
    assert other.status_code == 409 and other.json()["code"] == "conflict"
    assert "SECOND-CODE" not in other.text
    again = await client.post(f"/v1/fulfillment/orders/{order['id']}/fulfill", headers=partner_key, json=first)
    assert again.status_code == 200  # the very same call again stays idempotent
    mine = (await client.get(f"/v1/me/redemptions/{order['id']}", headers=me)).json()
    assert mine["credentials"] == {"code": "FIRST-CODE"}
