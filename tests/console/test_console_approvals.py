"""Four eyes in the console: Redeem for participant (the form, a confirmation with the
server's price, then the redemption or, above the threshold, a request), and Approvals
showing every kind of request in words, decided by another owner or manager, never by a
viewer (403 from the server)."""

from __future__ import annotations

import html
import re
from datetime import datetime, timezone
from typing import Any

from tests.console.sessions import csrf_of, get, person_in, post
from tests.factories import available, grant, new_participant, random_ref, shop

# Pages over domain use cases whose own tests (tests/programs/test_approval_kinds.py) run on
# Postgres too: SQLite only, to keep CI under its 20 minutes.


async def test_a_redemption_for_a_participant_is_confirmed_then_approved_by_another_person(client: Any) -> None:
    program, _, item = await shop(client, face_value=2500)
    person = await new_participant(client, program, display_name="Robin Dealer")
    assert (await grant(client, program, person["id"], 3000)).status_code == 201
    assert (await client.patch("/v1/program", json={"approval_threshold_points": 1000},
                               headers=program.headers)).status_code == 200
    # A top-up and a rule activation filed through the API wait on the same page.
    topped = await client.post("/v1/funding/payment-intents", json={"amount": {"amount": 50_000, "currency": "USD"}},
                               headers={**program.headers, "Idempotency-Key": random_ref()})
    assert topped.status_code == 202, topped.text
    sold = {"external_id": random_ref("evt"), "type": "sale", "participant_external_id": person["external_id"],
            "occurred_at": datetime.now(timezone.utc).isoformat(), "attributes": {"amount": 100}}
    assert (await client.post("/v1/activities", json={"activities": [sold]}, headers=program.headers)).status_code == 200
    ruled = await client.post("/v1/earning-rules", headers=program.headers, json={
        "name": "Big sales", "activity_type": "sale", "award": {"type": "fixed", "points": 2000}})
    assert ruled.status_code == 202, ruled.text

    _, manager = await person_in(client, program, "manager")
    _, owner = await person_in(client, program, "owner")
    _, viewer = await person_in(client, program, "viewer")
    shown = await get(client, f"/console/p/{program.id}/participants/{person['id']}", manager)
    form_key = re.search(r'/redeem" class="stack">\s*<input type="hidden" name="csrf" value="[^"]+">\s*'
                         r'<input type="hidden" name="key" value="([^"]+)"', shown.text)
    assert form_key and f'<option value="{item["id"]}">' in shown.text
    assert "Redeem for participant" not in (await get(client, f"/console/p/{program.id}/participants/{person['id']}",
                                                      viewer)).text
    form = {"csrf": csrf_of(shown.text), "key": form_key.group(1), "item_id": item["id"], "face_value": ""}
    confirm = await post(client, f"/console/p/{program.id}/participants/{person['id']}/redeem", manager, form)
    assert confirm.status_code == 200 and re.search(r'id="redeem-points">2,500 ', confirm.text), confirm.text
    assert "above the program's approval threshold" in html.unescape(confirm.text)
    assert await available(client, program, person["id"]) == 3000, "a confirmation moves nothing"
    for _ in range(2):  # confirmed twice (a double click): one request
        sent = await post(client, f"/console/p/{program.id}/participants/{person['id']}/redeem", manager,
                          {**form, "confirmed": "yes"})
        assert sent.status_code == 303 and "done=requested" in sent.headers["location"]
    asked = (await client.get("/v1/approvals", headers=program.headers)).json()["items"]
    assert sorted(r["kind"] for r in asked) == ["redemption", "rule_activation", "top_up"]
    [redemption] = [r for r in asked if r["kind"] == "redemption"]
    assert await available(client, program, person["id"]) == 3000
    refused = await post(client, f"/console/p/{program.id}/participants/{person['id']}/redeem", viewer,
                         {**form, "csrf": csrf_of(shown.text), "confirmed": "yes"})
    assert refused.status_code == 403

    shown = await get(client, f"/console/p/{program.id}/approvals", owner)
    page = html.unescape(re.sub(r"<[^>]+>", "", shown.text))  # the words a person reads
    assert "Redeem Amazon $25 gift card for Robin Dealer" in page and "25.00 USD" in page, "whom for, by name"
    assert f'href="/console/p/{program.id}/participants/{person["id"]}">Robin Dealer</a>' in shown.text
    assert "Budget top-up by card or bank" in page and "500.00 USD" in page
    assert "Activate the earning rule “Big sales” (a new rule)" in page and "2,000 simulated" in page
    assert "Casey Manager (" in page, "who asked, by name"
    seen = await get(client, f"/console/p/{program.id}/approvals", viewer)
    assert ">Approve</button>" not in seen.text
    forged = await post(client, f"/console/p/{program.id}/approvals/{redemption['id']}/decide", viewer,
                        {"csrf": csrf_of(seen.text), "verdict": "approved"})
    assert forged.status_code == 403 and await available(client, program, person["id"]) == 3000
    decided = await post(client, f"/console/p/{program.id}/approvals/{redemption['id']}/decide", owner,
                         {"csrf": csrf_of(shown.text), "verdict": "approved"})
    assert decided.status_code == 303, decided.text
    assert await available(client, program, person["id"]) == 500
    orders = (await client.get("/v1/orders", params={"participant_id": person["id"]},
                               headers=program.headers)).json()["items"]
    assert [o["item_id"] for o in orders] == [item["id"]]
