"""Partners under an admin's control: keys rotated, partners disabled, orders never misrouted."""

from __future__ import annotations

import asyncio

import pytest

from fulfillment.tables import WebhookDelivery
from programs.tables import ApiKey
from tests.factories import bearer, claim_orders as claim, redeem, shop, shopper

pytestmark = pytest.mark.sql


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


async def partner_b(client, program, item=None):  # type: ignore[no-untyped-def]
    """A second partner; the item (when given) is routed to it."""
    partner = (await client.post("/v1/fulfillment/partners", json={"name": "Partner B"},
                                 headers=program.headers)).json()
    if item is not None:
        routed = await client.patch(f"/v1/catalog/items/{item['id']}", json={"partner_id": partner["id"]},
                                    headers=program.headers)
        assert routed.status_code == 200, routed.text
    return partner


async def set_status(client, program, partner_id, status):  # type: ignore[no-untyped-def]
    return await client.patch(f"/v1/fulfillment/partners/{partner_id}", json={"status": status},
                              headers=program.headers)


async def test_a_new_partner_key_is_shown_once_and_the_old_one_fails_on_the_next_request(client) -> None:  # type: ignore[no-untyped-def]
    program, partner, _ = await shop(client)
    old = bearer(partner["api_key"])
    assert (await claim(client, old)).status_code == 200  # the old key is cached now
    rotated = await client.post(f"/v1/fulfillment/partners/{partner['id']}/keys", headers=program.headers)
    assert rotated.status_code == 201, rotated.text
    new_key = rotated.json()["api_key"]
    assert set(rotated.json()) == {"api_key"} and new_key != partner["api_key"]
    refused = await claim(client, old)
    assert refused.status_code == 401 and refused.json()["code"] == "unauthenticated"
    assert (await claim(client, bearer(new_key))).status_code == 200
    listed = (await client.get("/v1/fulfillment/partners", headers=program.headers)).text
    assert new_key not in listed and new_key.split(".")[2] not in listed
    # Stored hashed: no column of the key's row holds its secret.
    row = await ApiKey.select().where(ApiKey.id == new_key.split(".")[1]).first().run()
    assert row is not None and row["partner_id"] == partner["id"]
    assert all(new_key.split(".")[2] not in str(value) for value in row.values())
    again = (await client.post(f"/v1/fulfillment/partners/{partner['id']}/keys", headers=program.headers)).json()
    assert (await claim(client, bearer(new_key))).status_code == 401
    assert (await claim(client, bearer(again["api_key"]))).status_code == 200


async def test_only_the_partners_own_program_admin_rotates_its_key(client) -> None:  # type: ignore[no-untyped-def]
    program, partner, _ = await shop(client)
    other, _, _ = await shop(client)
    stranger = await client.post(f"/v1/fulfillment/partners/{partner['id']}/keys", headers=other.headers)
    assert stranger.status_code == 404 and stranger.json()["code"] == "not_found"
    itself = await client.post(f"/v1/fulfillment/partners/{partner['id']}/keys",
                               headers=bearer(partner["api_key"]))
    assert itself.status_code == 403
    assert (await claim(client, bearer(partner["api_key"]))).status_code == 200
    assert (await set_status(client, other, partner["id"], "disabled")).status_code == 404
    assert (await claim(client, bearer(partner["api_key"]))).status_code == 200


async def test_a_disabled_partners_key_answers_401_until_it_is_enabled_again(client) -> None:  # type: ignore[no-untyped-def]
    program, partner, _ = await shop(client)
    key = bearer(partner["api_key"])
    assert (await claim(client, key)).status_code == 200
    disabled = await set_status(client, program, partner["id"], "disabled")
    assert disabled.status_code == 200 and disabled.json()["status"] == "disabled"
    assert (await claim(client, key)).status_code == 401
    assert (await client.get("/v1/fulfillment/deliveries", headers=key)).status_code == 401
    enabled = await set_status(client, program, partner["id"], "active")
    assert enabled.status_code == 200 and enabled.json()["status"] == "active"
    assert (await claim(client, key)).status_code == 200
    bad = await set_status(client, program, partner["id"], "paused")
    assert bad.status_code in (400, 422) and bad.json()["code"] == "validation_error"


async def test_a_disabled_partners_pending_orders_move_to_the_default_partner(client) -> None:  # type: ignore[no-untyped-def]
    program, default, item = await shop(client)
    b = await partner_b(client, program, item)
    _, me = await shopper(client, program, 5000)
    order = (await redeem(client, me, item["id"])).json()
    assert (await client.get(f"/v1/orders/{order['id']}", headers=program.headers)).json()["partner_id"] == b["id"]
    assert (await set_status(client, program, b["id"], "disabled")).status_code == 200
    moved = (await client.get(f"/v1/orders/{order['id']}", headers=program.headers)).json()
    assert (moved["partner_id"], moved["status"]) == (default["id"], "pending")
    [claimed] = (await claim(client, bearer(default["api_key"]))).json()["items"]
    assert claimed["id"] == order["id"]
    # New redemptions of the item go to the default partner too, while B is disabled.
    second = (await redeem(client, me, item["id"])).json()
    assert (await client.get(f"/v1/orders/{second['id']}", headers=program.headers)).json()["partner_id"] \
        == default["id"]


async def test_a_leased_order_stays_leased_then_moves_when_its_lease_ends(client) -> None:  # type: ignore[no-untyped-def]
    program, default, item = await shop(client)
    b = await partner_b(client, program, item)
    _, me = await shopper(client, program, 2500)
    order = (await redeem(client, me, item["id"])).json()
    [leased] = (await claim(client, bearer(b["api_key"]), lease_seconds=2)).json()["items"]
    assert leased["id"] == order["id"]
    assert (await set_status(client, program, b["id"], "disabled")).status_code == 200
    assert (await claim(client, bearer(default["api_key"]))).json()["items"] == []  # still under B's lease
    # B cannot act on it any more.
    late = await client.post(f"/v1/fulfillment/orders/{order['id']}/fulfill", headers=bearer(b["api_key"]),
                             json={"lease_id": leased["lease_id"], "credentials": {"code": "LATE"}})
    assert late.status_code == 401
    await asyncio.sleep(2.2)
    [again] = (await claim(client, bearer(default["api_key"]))).json()["items"]
    assert again["id"] == order["id"] and again["lease_id"] != leased["lease_id"]
    done = await client.post(f"/v1/fulfillment/orders/{order['id']}/fulfill", headers=bearer(default["api_key"]),
                             json={"lease_id": again["lease_id"], "credentials": {"code": "FROM-DEFAULT"}})
    assert done.status_code == 200
    assert (await client.get(f"/v1/me/redemptions/{order['id']}", headers=me)).json()["credentials"] == \
        {"code": "FROM-DEFAULT"}


async def test_with_no_active_partner_a_redemption_answers_409_and_nothing_is_held(client) -> None:  # type: ignore[no-untyped-def]
    program, only, item = await shop(client)
    _, me = await shopper(client, program, 5000)
    waiting = (await redeem(client, me, item["id"])).json()
    assert (await set_status(client, program, only["id"], "disabled")).status_code == 200
    refused = await redeem(client, me, item["id"])
    assert refused.status_code == 409 and refused.json()["code"] == "conflict"
    assert "fulfillment partner" in refused.json()["detail"]
    wallet = (await client.get("/v1/me/wallet", headers=me)).json()
    assert (wallet["available"], wallet["held"]) == (2500, 2500)  # only the first order's hold
    # The earlier order waits; a new partner takes it over (and becomes the default).
    newcomer = (await client.post("/v1/fulfillment/partners", json={"name": "Newcomer"},
                                  headers=program.headers)).json()
    assert newcomer["default"] is True
    [claimed] = (await claim(client, bearer(newcomer["api_key"]))).json()["items"]
    assert claimed["id"] == waiting["id"]
    assert (await redeem(client, me, item["id"])).status_code == 201


async def test_disabling_the_default_partner_hands_the_default_to_another_active_one(client) -> None:  # type: ignore[no-untyped-def]
    program, first, _ = await shop(client)
    second = await partner_b(client, program)
    assert (await set_status(client, program, first["id"], "disabled")).json()["default"] is False
    listed = (await client.get("/v1/fulfillment/partners", headers=program.headers)).json()
    rows = listed["items"] if isinstance(listed, dict) else listed
    assert {p["id"]: (p["default"], p["status"]) for p in rows} == {first["id"]: (False, "disabled"),
                                                                    second["id"]: (True, "active")}


async def test_an_order_of_an_item_now_in_the_code_pool_is_fulfilled_from_the_pool_when_its_partner_is_disabled(client) -> None:  # type: ignore[no-untyped-def]
    program, default, item = await shop(client)
    b = await partner_b(client, program, item)
    _, me = await shopper(client, program, 2500)
    order = (await redeem(client, me, item["id"])).json()
    upload = await client.post(f"/v1/catalog/items/{item['id']}/codes", json={"csv": "code\nPOOL-0001\n"},
                               headers=program.headers)
    assert upload.status_code in (200, 201), upload.text
    assert (await set_status(client, program, b["id"], "disabled")).status_code == 200
    mine = (await client.get(f"/v1/me/redemptions/{order['id']}", headers=me)).json()
    assert mine["status"] == "fulfilled" and mine["credentials"]["code"] == "POOL-0001"
    assert (await client.get("/v1/me/wallet", headers=me)).json()["held"] == 0


async def test_a_moved_order_is_announced_to_its_new_partners_webhook(client) -> None:  # type: ignore[no-untyped-def]
    program, default, item = await shop(client)
    b = await partner_b(client, program, item)
    for partner in (default, b):
        assert (await client.put(f"/v1/fulfillment/partners/{partner['id']}/webhook", headers=program.headers,
                                 json={"url": "https://hooks.partner.example/orders"})).status_code == 200
    _, me = await shopper(client, program, 2500)
    order = (await redeem(client, me, item["id"])).json()
    assert (await set_status(client, program, b["id"], "disabled")).status_code == 200
    rows = await WebhookDelivery.select(WebhookDelivery.partner_id).where(
        WebhookDelivery.order_id == order["id"]).run()
    assert sorted(r["partner_id"] for r in rows) == sorted([b["id"], default["id"]])


async def test_a_partners_webhook_and_a_new_default_partner_reach_the_next_redemption(client) -> None:  # type: ignore[no-untyped-def]
    """A redemption keeps its item's route per catalog version (fulfillment/item_routes.py):
    setting a webhook, clearing it and adding a new default partner each move the version, so
    the next order is pushed, or not, and goes where it should at once."""
    program, default, item = await shop(client)
    _, me = await shopper(client, program, 10_000)

    async def pushed_to() -> list[str]:
        order = (await redeem(client, me, item["id"])).json()
        rows = await WebhookDelivery.select(WebhookDelivery.partner_id).where(
            WebhookDelivery.order_id == order["id"]).run()
        return [r["partner_id"] for r in rows]

    assert await pushed_to() == []  # the route is kept now: no webhook
    webhook = f"/v1/fulfillment/partners/{default['id']}/webhook"
    assert (await client.put(webhook, headers=program.headers,
                             json={"url": "https://hooks.partner.example/orders"})).status_code == 200
    assert await pushed_to() == [default["id"]]
    assert (await client.put(webhook, headers=program.headers, json={"url": None})).status_code == 200
    assert await pushed_to() == []
    new_default = (await client.post("/v1/fulfillment/partners", headers=program.headers, json={
        "name": "Second partner", "default": True, "webhook_url": "https://hooks.second.example/orders"})).json()
    assert await pushed_to() == [new_default["id"]]
