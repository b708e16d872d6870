"""Orders in the console: searched by status, partner and participant; an order's page tells
its story from the order row, the ledger, its webhooks and the audit log; a manager cancels
an order not yet delivered and the points go back."""

from __future__ import annotations

from typing import Any


from tests.console.sessions import csrf_of, get, person_in, post
from tests.factories import available, bearer, claim_orders, redeem, shop, shopper, wait_until

# Pages over domain reads and use cases that their own tests run on Postgres too: SQLite
# only, to keep CI under its 20 minutes.


async def test_orders_are_found_by_participant_and_partner_and_tell_their_story(client: Any) -> None:
    program, partner, item = await shop(client, face_value=1000)
    ann, ann_headers = await shopper(client, program, 3_000)
    bob, bob_headers = await shopper(client, program, 3_000)
    first = (await redeem(client, ann_headers, item["id"])).json()
    second = (await redeem(client, bob_headers, item["id"])).json()
    (claimed, *_) = (await claim_orders(client, bearer(partner["api_key"]), limit=1)).json()["items"]
    delivered = await client.post(f"/v1/fulfillment/orders/{claimed['id']}/fulfill",
                                  headers=bearer(partner["api_key"]), json={"credentials": {"code": "C-1"}})
    assert delivered.status_code == 200
    _, session = await person_in(client, program, "manager")
    by_ann = await get(client, f"/console/p/{program.id}/orders?participant={ann['external_id']}", session)
    assert first["id"] in by_ann.text and second["id"] not in by_ann.text
    by_partner = await get(client, f"/console/p/{program.id}/orders?partner={partner['id']}", session)
    assert first["id"] in by_partner.text and second["id"] in by_partner.text
    nobody = await get(client, f"/console/p/{program.id}/orders?participant=no-such-person", session)
    assert "No single participant matches" in nobody.text and first["id"] not in nobody.text

    async def story() -> bool:
        page = await get(client, f"/console/p/{program.id}/orders/{claimed['id']}", session)
        return "points taken (delivered)" in page.text

    assert await wait_until(story, True), "the ledger's capture shows once projected"
    page = await get(client, f"/console/p/{program.id}/orders/{claimed['id']}", session)
    assert "ledger: points held" in page.text and "delivered by partner" in page.text and "C-1" not in page.text

    other = second if claimed["id"] == first["id"] else first
    other_headers = bob_headers if other is second else ann_headers
    other_person = bob if other is second else ann
    before = await available(client, program, other_person["id"])
    page = await get(client, f"/console/p/{program.id}/orders/{other['id']}", session)
    assert "Cancel order" in page.text
    cancelled = await post(client, f"/console/p/{program.id}/orders/{other['id']}/cancel", session,
                           {"csrf": csrf_of(page.text), "reason": "Item discontinued"})
    assert cancelled.status_code == 303
    assert await available(client, program, other_person["id"]) == before + 1000
    mine = (await client.get(f"/v1/me/redemptions/{other['id']}", headers=other_headers)).json()
    assert mine["status"] == "cancelled"
    after = await get(client, f"/console/p/{program.id}/orders/{other['id']}", session)
    assert "order.cancelled by user:" in after.text and "Cancel order" not in after.text
