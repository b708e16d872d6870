"""A partner marks an item it delivers unavailable, or back: phones see it at once, and the
partner cannot touch items routed elsewhere or undo an admin's decision."""

from __future__ import annotations

import pytest

from tests.factories import bearer, redeem, shop, shopper

pytestmark = pytest.mark.sql


async def mark(client, partner_key, item_id, available):  # type: ignore[no-untyped-def]
    return await client.patch(f"/v1/fulfillment/items/{item_id}", json={"available": available}, headers=partner_key)


async def test_an_unavailable_item_leaves_the_catalog_at_once_and_comes_back(client) -> None:  # type: ignore[no-untyped-def]
    program, partner, item = await shop(client)
    _, me = await shopper(client, program, 10_000)
    partner_key = bearer(partner["api_key"])
    first = await client.get("/v1/catalog/items", headers=me)
    assert item["id"] in [i["id"] for i in first.json()["items"]]
    etag = first.headers["etag"]

    gone = await mark(client, partner_key, item["id"], False)
    assert gone.status_code == 200, gone.text
    assert gone.json() == {"item_id": item["id"], "available": False, "status": "unavailable"}
    after = await client.get("/v1/catalog/items", headers={**me, "If-None-Match": etag})
    assert after.status_code == 200, "the phone's cached catalog must not be confirmed"
    assert item["id"] not in [i["id"] for i in after.json()["items"]]
    refused = await redeem(client, me, item["id"])
    assert refused.status_code == 404

    back = await mark(client, partner_key, item["id"], True)
    assert back.json() == {"item_id": item["id"], "available": True, "status": "active"}
    assert (await redeem(client, me, item["id"])).status_code == 201


async def test_a_partner_cannot_touch_items_routed_elsewhere_or_revive_a_disabled_one(client) -> None:  # type: ignore[no-untyped-def]
    program, partner, item = await shop(client)
    other = (await client.post("/v1/fulfillment/partners", json={"name": "Partner B"},
                               headers=program.headers)).json()
    # The item goes to the default partner; partner B is not its route.
    assert (await mark(client, bearer(other["api_key"]), item["id"], False)).status_code == 404
    assert (await mark(client, bearer(partner["api_key"]), "itm_unknown", False)).status_code == 404
    # Another program's partner cannot see it at all.
    _, stranger, _ = await shop(client)
    assert (await mark(client, bearer(stranger["api_key"]), item["id"], False)).status_code == 404

    disabled = await client.patch(f"/v1/catalog/items/{item['id']}", json={"status": "disabled"},
                                  headers=program.headers)
    assert disabled.status_code == 200
    answer = await mark(client, bearer(partner["api_key"]), item["id"], True)
    assert answer.json() == {"item_id": item["id"], "available": False, "status": "disabled"}
    # Only the admin and the partner may use the route: a participant may not.
    _, me = await shopper(client, program, 0)
    assert (await mark(client, me, item["id"], True)).status_code in (401, 403)
    assert (await client.patch(f"/v1/fulfillment/items/{item['id']}", json={"available": "no"},
                               headers=bearer(partner["api_key"]))).status_code in (400, 422)
