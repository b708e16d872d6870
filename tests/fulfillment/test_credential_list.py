"""Partners deliver a card as the credentials object or as a supplier's labelled list, and the
participant's order answers both shapes either way."""

from __future__ import annotations

import pytest

from tests.factories import bearer, redeem, shop, shopper

pytestmark = pytest.mark.sql


async def claimed_order(client):  # type: ignore[no-untyped-def]
    program, partner, item = await shop(client)
    _, me = await shopper(client, program, 3000)
    order = (await redeem(client, me, item["id"])).json()
    key = bearer(partner["api_key"])
    [claimed] = (await client.post("/v1/fulfillment/orders/claim", json={"limit": 1, "lease_seconds": 60},
                                   headers=key)).json()["items"]
    return order, claimed, key, me, program


async def test_a_supplier_list_is_kept_line_by_line_and_answered_as_an_object_too(client) -> None:  # type: ignore[no-untyped-def]
    order, claimed, key, me, program = await claimed_order(client)
    lines = [{"label": "Card number", "type": "code", "value": "6006-1234-5678"},
             {"label": "Security code", "type": "pin", "value": "0420"},
             {"label": "Scan at the till", "type": "barcode", "value": "9780201379624"},
             {"label": "Valid until", "type": "expiry", "value": "2028-12-31"}]
    done = await client.post(f"/v1/fulfillment/orders/{order['id']}/fulfill", headers=key,
                             json={"lease_id": claimed["lease_id"], "credential_list": lines})
    assert done.status_code == 200, done.text
    mine = (await client.get(f"/v1/me/redemptions/{order['id']}", headers=me)).json()
    assert mine["credential_list"] == lines
    assert mine["credentials"] == {"code": "6006-1234-5678", "pin": "0420", "expires_at": "2028-12-31"}
    # The same delivery again is idempotent; a different one is refused and the first stands.
    again = await client.post(f"/v1/fulfillment/orders/{order['id']}/fulfill", headers=key,
                              json={"lease_id": claimed["lease_id"], "credential_list": lines})
    assert again.status_code == 200
    other = await client.post(f"/v1/fulfillment/orders/{order['id']}/fulfill", headers=key,
                              json={"lease_id": claimed["lease_id"], "credential_list": lines[:1]})
    assert other.status_code == 409
    # Admins never see the card, in either shape.
    as_admin = await client.get(f"/v1/orders/{order['id']}", headers=program.headers)
    assert as_admin.status_code == 200 and as_admin.json()["status"] == "fulfilled"
    assert "6006-1234-5678" not in as_admin.text and "credential" not in as_admin.text  # the card, not digits a timestamp may hold


async def test_the_object_alone_is_answered_as_a_list_too(client) -> None:  # type: ignore[no-untyped-def]
    order, claimed, key, me, program = await claimed_order(client)
    done = await client.post(f"/v1/fulfillment/orders/{order['id']}/fulfill", headers=key, json={
        "lease_id": claimed["lease_id"], "credentials": {"code": "ABCD-EFGH", "url": "https://example.com/r"}})
    assert done.status_code == 200, done.text
    mine = (await client.get(f"/v1/me/redemptions/{order['id']}", headers=me)).json()
    assert mine["credentials"] == {"code": "ABCD-EFGH", "url": "https://example.com/r"}
    assert mine["credential_list"] == [{"label": "Code", "type": "code", "value": "ABCD-EFGH"},
                                       {"label": "Redeem at", "type": "url", "value": "https://example.com/r"}]


@pytest.mark.parametrize("body", [
    {},
    {"credential_list": []},
    {"credential_list": [{"label": "PIN", "type": "pin", "value": "1234"}]},  # nothing to redeem with
    {"credential_list": [{"label": "Link", "type": "url", "value": "javascript:alert(1)"}]},
    {"credential_list": [{"label": "X", "type": "password", "value": "1"}]},
])
async def test_a_delivery_nobody_can_redeem_is_refused_and_the_order_stays_claimed(client, body) -> None:  # type: ignore[no-untyped-def]
    order, claimed, key, me, program = await claimed_order(client)
    refused = await client.post(f"/v1/fulfillment/orders/{order['id']}/fulfill", headers=key,
                                json={"lease_id": claimed["lease_id"], **body})
    assert refused.status_code in (400, 422), refused.text
    assert refused.json()["code"] == "validation_error"
    assert (await client.get(f"/v1/me/redemptions/{order['id']}", headers=me)).json()["status"] == "claimed"
