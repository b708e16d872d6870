"""A partner's claim reads what rarely changes (the program's disabled partners, the items'
names) once per catalog version, and still sees a change made by another API process at its
next claim after that change moved the version."""

from __future__ import annotations

import asyncio

import pytest

from catalog import keys as catalog_keys
from catalog.tables import CatalogItem
from fulfillment import rerouting
from fulfillment.tables import Partner
from tests.factories import bearer, claim_orders as claim, projected, redeem, shop, shopper
from tests.fulfillment.test_partner_admin import partner_b

pytestmark = pytest.mark.sql


async def another_process_changes(redis, program_id: str) -> None:  # type: ignore[no-untyped-def]
    """What a change made on another API machine leaves here: its SQL, and the catalog's version moved."""
    await redis.incr(catalog_keys.catalog_version(program_id))


async def test_a_partner_disabled_on_another_process_has_its_orders_moved_at_the_next_claim(client, redis) -> None:  # type: ignore[no-untyped-def]
    program, default, item = await shop(client)
    b = await partner_b(client, program, item)
    _, me = await shopper(client, program, 2500)
    default_key = bearer(default["api_key"])
    assert (await claim(client, default_key)).json()["items"] == []  # no partner disabled, as of this version
    order = (await redeem(client, me, item["id"])).json()
    assert (await client.get(f"/v1/orders/{order['id']}", headers=program.headers)).json()["partner_id"] == b["id"]
    await Partner.update({Partner.status: "disabled"}).where(Partner.id == b["id"]).run()
    await another_process_changes(redis, program.id)
    [moved] = (await claim(client, default_key)).json()["items"]
    assert moved["id"] == order["id"]
    assert (await client.get(f"/v1/orders/{order['id']}", headers=program.headers)).json()["partner_id"] \
        == default["id"]


async def test_a_claim_names_the_item_as_the_catalog_names_it_now(client, redis) -> None:  # type: ignore[no-untyped-def]
    program, partner, item = await shop(client)
    _, me = await shopper(client, program, 5000)
    key = bearer(partner["api_key"])
    first = (await redeem(client, me, item["id"])).json()
    [claimed] = (await claim(client, key)).json()["items"]
    assert (claimed["id"], claimed["item"]["name"], claimed["item"]["brand"]) == \
        (first["id"], item["name"], "Amazon")
    # Renamed through the API here, then in SQL by another process: each claim after it says so.
    renamed = await client.patch(f"/v1/catalog/items/{item['id']}", json={"name": "Amazon.com card"},
                                 headers=program.headers)
    assert renamed.status_code == 200, renamed.text
    second = (await redeem(client, me, item["id"])).json()
    [claimed] = (await claim(client, key)).json()["items"]
    assert (claimed["id"], claimed["item"]["name"]) == (second["id"], "Amazon.com card")
    await CatalogItem.update({CatalogItem.name: "Amazon eGift"}).where(CatalogItem.id == item["id"]).run()
    await another_process_changes(redis, program.id)
    done = await client.post(f"/v1/fulfillment/orders/{second['id']}/fulfill", headers=key,
                             json={"lease_id": claimed["lease_id"], "credentials": {"code": "AMZ-1"}})
    assert done.status_code == 200 and done.json()["item"]["name"] == "Amazon eGift"
    await projected(redis, program.id, "claims")  # the ready line follows from the capture's entry
    feed = (await client.get("/v1/me/feed", headers=me)).json()["items"]
    assert any(line["text"] == "Your Amazon eGift is ready" for line in feed), feed


async def test_a_status_change_whose_version_never_moved_is_seen_within_a_minute(client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # Its process died between the SQL commit and the version's move: what the claim keeps
    # ages out (a minute; shortened here), and the next claim after that moves the order.
    program, default, item = await shop(client)
    b = await partner_b(client, program, item)
    _, me = await shopper(client, program, 2500)
    default_key = bearer(default["api_key"])
    assert (await claim(client, default_key)).json()["items"] == []
    order = (await redeem(client, me, item["id"])).json()
    await Partner.update({Partner.status: "disabled"}).where(Partner.id == b["id"]).run()
    assert (await claim(client, default_key)).json()["items"] == []  # kept: no partner disabled
    monkeypatch.setattr(rerouting._disabled, "max_age", 0.2)
    await asyncio.sleep(0.25)
    [moved] = (await claim(client, default_key)).json()["items"]
    assert moved["id"] == order["id"]
