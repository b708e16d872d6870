"""From points to a gift card: redemption, the partner queue, and every transition's edge."""

from __future__ import annotations

import asyncio

import pytest

from tests.factories import bearer, projected, redeem, shop, shopper

pytestmark = pytest.mark.sql


async def wallet(client, headers):  # type: ignore[no-untyped-def]
    return (await client.get("/v1/me/wallet", headers=headers)).json()


async def test_a_redemption_holds_points_and_a_fulfilled_order_shows_its_code_to_its_owner_only(client, redis) -> None:  # type: ignore[no-untyped-def]
    program, partner, item = await shop(client)
    assert item["points_price"] == 2500
    person, me = await shopper(client, program, 3000)
    order = await redeem(client, me, item["id"])
    assert order.status_code == 201, order.text
    body = order.json()
    assert (body["status"], body["points"], body["item_id"]) == ("pending", 2500, item["id"])
    assert (await wallet(client, me))["available"] == 500 and (await wallet(client, me))["held"] == 2500

    partner_key = bearer(partner["api_key"])
    claimed = (await client.post("/v1/fulfillment/orders/claim", json={"limit": 5, "lease_seconds": 60},
                                 headers=partner_key)).json()["items"]
    assert [o["id"] for o in claimed] == [body["id"]]
    assert claimed[0]["recipient"]["id"] == person["id"] and claimed[0]["lease_id"]
    done = await client.post(f"/v1/fulfillment/orders/{body['id']}/fulfill", headers=partner_key, json={
        "lease_id": claimed[0]["lease_id"], "credentials": {"code": "AMZ-1234-5678", "pin": "9911"}})
    assert done.status_code == 200, done.text
    again = await client.post(f"/v1/fulfillment/orders/{body['id']}/fulfill", headers=partner_key, json={
        "lease_id": claimed[0]["lease_id"], "credentials": {"code": "AMZ-1234-5678", "pin": "9911"}})
    assert again.status_code == 200  # idempotent: nothing captured twice

    mine = (await client.get(f"/v1/me/redemptions/{body['id']}", headers=me)).json()
    assert mine["status"] == "fulfilled" and mine["credentials"] == {"code": "AMZ-1234-5678", "pin": "9911"}
    assert (await wallet(client, me)) | {"expiring": []} == {"available": 500, "held": 0, "lifetime_earned": 3000,
                                                            "lifetime_spent": 2500, "expiring": [], "pending": 0,
                                                            "pending_lots": []}
    # Nobody else sees the code: not another participant, not the admin, not the partner's views.
    _, other = await shopper(client, program, 0)
    assert (await client.get(f"/v1/me/redemptions/{body['id']}", headers=other)).status_code == 404
    assert (await client.get("/v1/me/redemptions", headers=other)).json()["items"] == []
    admin_view = (await client.get(f"/v1/orders/{body['id']}", headers=program.headers)).json()
    assert "credentials" not in admin_view and admin_view["status"] == "fulfilled"
    assert "AMZ-1234" not in (await client.get("/v1/orders/export.csv", headers=program.headers)).text
    assert "AMZ-1234" not in done.text
    await projected(redis, program.id, "orders")  # the ready line follows from the capture's entry
    feed = [i["text"] for i in (await client.get("/v1/me/feed", headers=me)).json()["items"]]
    assert feed[0] == "Your Amazon $25 gift card is ready"  # the brand once


async def test_not_enough_points_creates_no_order_and_holds_nothing(client) -> None:  # type: ignore[no-untyped-def]
    program, _, item = await shop(client)
    _, me = await shopper(client, program, 2499)
    response = await redeem(client, me, item["id"])
    assert response.status_code == 422 and response.json()["code"] == "insufficient_points"
    assert (await client.get("/v1/me/redemptions", headers=me)).json()["items"] == []
    assert (await client.get("/v1/orders", headers=program.headers)).json()["items"] == []
    assert (await wallet(client, me))["held"] == 0


async def test_a_retried_redemption_creates_one_order(client) -> None:  # type: ignore[no-untyped-def]
    program, _, item = await shop(client)
    _, me = await shopper(client, program, 10_000)
    answers = await asyncio.gather(*[redeem(client, me, item["id"], key="same-tap") for _ in range(5)])
    created = [a for a in answers if a.status_code == 201]
    assert {a.json()["id"] for a in created} and len({a.json()["id"] for a in created}) == 1
    assert all(a.status_code in (201, 409) for a in answers)
    assert len((await client.get("/v1/me/redemptions", headers=me)).json()["items"]) == 1
    assert (await wallet(client, me))["held"] == 2500


async def test_a_failed_order_returns_the_points_and_tells_the_participant(client) -> None:  # type: ignore[no-untyped-def]
    program, partner, item = await shop(client)
    _, me = await shopper(client, program, 2500)
    order = (await redeem(client, me, item["id"])).json()
    key = bearer(partner["api_key"])
    await client.post("/v1/fulfillment/orders/claim", json={"limit": 1}, headers=key)
    failed = await client.post(f"/v1/fulfillment/orders/{order['id']}/fail", json={"reason": "brand API down"},
                               headers=key)
    assert failed.status_code == 200 and failed.json()["status"] == "failed"
    assert (await wallet(client, me))["available"] == 2500
    late = await client.post(f"/v1/fulfillment/orders/{order['id']}/fulfill", json={"credentials": {"code": "X"}},
                             headers=key)
    assert late.status_code == 409
    assert (await wallet(client, me))["available"] == 2500
    feed = [i["text"] for i in (await client.get("/v1/me/feed", headers=me)).json()["items"]]
    assert feed[0].startswith(f"Order {order['id']} failed: brand API down. 2,500 points returned")


async def test_a_cancelled_order_cannot_be_fulfilled(client) -> None:  # type: ignore[no-untyped-def]
    program, partner, item = await shop(client)
    _, me = await shopper(client, program, 2500)
    order = (await redeem(client, me, item["id"])).json()
    cancelled = await client.post(f"/v1/me/redemptions/{order['id']}/cancel", headers=me)
    assert cancelled.json()["status"] == "cancelled"
    assert (await wallet(client, me))["available"] == 2500
    key = bearer(partner["api_key"])
    assert (await client.post("/v1/fulfillment/orders/claim", json={"limit": 5}, headers=key)).json()["items"] == []
    response = await client.post(f"/v1/fulfillment/orders/{order['id']}/fulfill",
                                 json={"credentials": {"code": "X"}}, headers=key)
    assert response.status_code == 409
    assert (await wallet(client, me))["available"] == 2500
    # Cancelling again answers the same cancelled order and returns nothing twice.
    again = await client.post(f"/v1/me/redemptions/{order['id']}/cancel", headers=me)
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    assert (await wallet(client, me))["available"] == 2500


async def test_an_expired_lease_is_claimed_again_and_the_late_fulfil_is_refused(client) -> None:  # type: ignore[no-untyped-def]
    program, partner, item = await shop(client)
    _, me = await shopper(client, program, 2500)
    order = (await redeem(client, me, item["id"])).json()
    key = bearer(partner["api_key"])
    first = (await client.post("/v1/fulfillment/orders/claim", json={"limit": 1, "lease_seconds": 1},
                               headers=key)).json()["items"]
    assert (await client.post("/v1/fulfillment/orders/claim", json={"limit": 1}, headers=key)).json()["items"] == []
    await asyncio.sleep(1.2)
    second = (await client.post("/v1/fulfillment/orders/claim", json={"limit": 1, "lease_seconds": 60},
                                headers=key)).json()["items"]
    assert [o["id"] for o in second] == [order["id"]] and second[0]["lease_id"] != first[0]["lease_id"]
    assert second[0]["attempts"] == 2
    late = await client.post(f"/v1/fulfillment/orders/{order['id']}/fulfill", headers=key,
                             json={"lease_id": first[0]["lease_id"], "credentials": {"code": "LATE"}})
    assert late.status_code == 409
    assert (await wallet(client, me))["held"] == 2500
    ok = await client.post(f"/v1/fulfillment/orders/{order['id']}/fulfill", headers=key,
                           json={"lease_id": second[0]["lease_id"], "credentials": {"code": "ONTIME"}})
    assert ok.status_code == 200
    assert (await client.get(f"/v1/me/redemptions/{order['id']}", headers=me)).json()["credentials"]["code"] == "ONTIME"


async def test_partners_see_only_orders_routed_to_them(client) -> None:  # type: ignore[no-untyped-def]
    program, default_partner, item = await shop(client)
    special = (await client.post("/v1/fulfillment/partners", json={"name": "Visa desk"},
                                 headers=program.headers)).json()
    visa = (await client.post("/v1/catalog/items", headers=program.headers, json={
        "brand": "Visa", "name": "Visa prepaid", "face_value": {"amount": 5000, "currency": "USD"},
        "partner_id": special["id"]})).json()
    _, me = await shopper(client, program, 10_000)
    amazon_order = (await redeem(client, me, item["id"])).json()
    visa_order = (await redeem(client, me, visa["id"])).json()
    got = (await client.post("/v1/fulfillment/orders/claim", json={"limit": 10},
                             headers=bearer(special["api_key"]))).json()["items"]
    assert [o["id"] for o in got] == [visa_order["id"]]
    other = await client.post(f"/v1/fulfillment/orders/{amazon_order['id']}/fulfill",
                              json={"credentials": {"code": "X"}}, headers=bearer(special["api_key"]))
    assert other.status_code == 404
    # Another program's partner key sees nothing of this program.
    _, stranger, _ = await shop(client)
    assert (await client.post("/v1/fulfillment/orders/claim", json={"limit": 10},
                              headers=bearer(stranger["api_key"]))).json()["items"] == []
    assert (await client.post("/v1/fulfillment/orders/claim", json={"limit": 10},
                              headers=bearer(default_partner["api_key"]))).json()["items"][0]["id"] == amazon_order["id"]


async def test_admins_search_orders_and_export_csv(client) -> None:  # type: ignore[no-untyped-def]
    program, partner, item = await shop(client)
    person, me = await shopper(client, program, 5000)
    first = (await redeem(client, me, item["id"])).json()
    second = (await redeem(client, me, item["id"])).json()
    await client.post(f"/v1/me/redemptions/{second['id']}/cancel", headers=me)
    pending = (await client.get("/v1/orders", params={"status": "pending"}, headers=program.headers)).json()
    assert [o["id"] for o in pending["items"]] == [first["id"]]
    by_person = (await client.get("/v1/orders", params={"participant_id": person["id"]}, headers=program.headers))
    assert len(by_person.json()["items"]) == 2
    csv_text = (await client.get("/v1/orders/export.csv", headers=program.headers)).text
    lines = csv_text.strip().split("\n")
    assert lines[0].startswith("order_id,created_at,status")
    assert {line.split(",")[2] for line in lines[1:]} == {"pending", "cancelled"}


async def test_the_csv_export_defuses_formulas_and_keeps_carriage_returns_inside_their_cell(client) -> None:  # type: ignore[no-untyped-def]
    import csv
    import io

    program, partner, item = await shop(client)
    person, me = await shopper(client, program, 10_000)
    key = bearer(partner["api_key"])
    reasons = ["\t=1+2", "\r=HYPERLINK(\"http://x\")", "line one\rline two", "=cmd", "@SUM(A1)"]
    for reason in reasons:
        order = (await redeem(client, me, item["id"])).json()
        await client.post("/v1/fulfillment/orders/claim", json={"limit": 1}, headers=key)
        failed = await client.post(f"/v1/fulfillment/orders/{order['id']}/fail", json={"reason": reason},
                                   headers=key)
        assert failed.status_code == 200, failed.text
    text = (await client.get("/v1/orders/export.csv", headers=program.headers)).text
    # A bare CR is never left outside quotes, where a spreadsheet would start a new row.
    outside = text.replace("\r\n", "").split('"')[0::2]
    assert not any("\r" in chunk for chunk in outside)
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert len(rows) == 1 + len(reasons)
    exported = sorted(row[-1] for row in rows[1:])
    assert exported == sorted("'" + r if r[0] in "\t\r=@" else r for r in reasons)
