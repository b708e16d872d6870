"""Partners from the console: an owner adds one (its key shown once, and it works), sets its
webhook, issues a new key (the old one refused at once), disables and enables it and reads
its webhook deliveries; a manager sees no change and the server refuses one."""

from __future__ import annotations

import html
import re
from typing import Any


from fulfillment import partners, webhooks
from tests.console.sessions import csrf_of, get, person_in, post
from tests.factories import new_program, random_ref

# Pages over domain reads and use cases that their own tests run on Postgres too: SQLite
# only, to keep CI under its 20 minutes.


def shown(page: str, field: str) -> str:
    found = re.search(rf'id="{field}" type="text" readonly value="([^"]+)"', page)
    assert found, page
    return html.unescape(found.group(1))


async def partner_can_pull(client: Any, key: str) -> int:
    response = await client.get("/v1/fulfillment/deliveries", headers={"Authorization": f"Bearer {key}"})
    return response.status_code


async def test_an_owner_runs_a_partner_from_add_to_disable(client: Any) -> None:
    program = await new_program(client)
    _, owner = await person_in(client, program, "owner")
    listing = await get(client, f"/console/p/{program.id}/partners", owner)
    name = random_ref("Acme Fulfil")
    added = await post(client, f"/console/p/{program.id}/partners/new", owner,
                       {"csrf": csrf_of(listing.text), "name": name})
    assert added.status_code == 200 and "Shown once" in added.text
    first_key = shown(added.text, "api-key")
    assert await partner_can_pull(client, first_key) == 200
    partner_id = re.search(r"/partners/(ptn_[^/\"]+)/key", added.text).group(1)  # type: ignore[union-attr]
    page = await get(client, f"/console/p/{program.id}/partners/{partner_id}", owner)
    assert "Shown once" not in page.text and first_key not in page.text, "a key is shown once"

    bad = await post(client, f"/console/p/{program.id}/partners/{partner_id}/webhook", owner,
                     {"csrf": csrf_of(page.text), "webhook_url": "ftp://nowhere"})
    assert bad.status_code == 422 and 'role="alert"' in bad.text
    private = await post(client, f"/console/p/{program.id}/partners/{partner_id}/webhook", owner,
                         {"csrf": csrf_of(page.text), "webhook_url": "http://127.0.0.1:9/orders"})
    assert private.status_code == 422 and "loopback" in html.unescape(private.text)
    # An address literal: no resolver needed on a machine without DNS.
    hooked = await post(client, f"/console/p/{program.id}/partners/{partner_id}/webhook", owner,
                        {"csrf": csrf_of(page.text), "webhook_url": "https://93.184.216.34/orders"})
    assert hooked.status_code == 200, hooked.text
    assert shown(hooked.text, "webhook-secret").startswith("whsec_")
    assert (await partners.partner_view(program.id, partner_id)).webhook_url == "https://93.184.216.34/orders"

    rotated = await post(client, f"/console/p/{program.id}/partners/{partner_id}/key", owner,
                         {"csrf": csrf_of(page.text)})
    second_key = shown(rotated.text, "api-key")
    assert await partner_can_pull(client, first_key) == 401, "the old key is refused at once"
    assert await partner_can_pull(client, second_key) == 200

    row = await partners.get_partner(program.id, partner_id)
    await webhooks.enqueue(program.id, {**row, "webhook_url": "https://hooks.acme.example/orders"}, "ord_test1")
    log = await get(client, f"/console/p/{program.id}/partners/{partner_id}", owner)
    assert "ord_test1" in log.text and "order.created" in log.text

    off = await post(client, f"/console/p/{program.id}/partners/{partner_id}/disable", owner,
                     {"csrf": csrf_of(page.text)})
    assert off.status_code == 303
    assert await partner_can_pull(client, second_key) == 401
    assert "Enable partner" in (await get(client, off.headers["location"], owner)).text
    on = await post(client, f"/console/p/{program.id}/partners/{partner_id}/enable", owner,
                    {"csrf": csrf_of(page.text)})
    assert on.status_code == 303 and await partner_can_pull(client, second_key) == 200
    kinds = [e["kind"] for e in (await client.get("/v1/audit-events", headers=program.headers)).json()["items"]]
    assert {"partner.created", "partner.key_rotated", "partner.disabled", "partner.enabled"} <= set(kinds)


async def test_a_manager_sees_partners_but_cannot_change_them(client: Any) -> None:
    program = await new_program(client)
    created = await client.post("/v1/fulfillment/partners", json={"name": random_ref("partner")},
                                headers=program.headers)
    partner_id, key = created.json()["id"], created.json()["api_key"]
    _, manager = await person_in(client, program, "manager")
    page = await get(client, f"/console/p/{program.id}/partners/{partner_id}", manager)
    assert page.status_code == 200 and "Issue a new key" not in page.text and "Add a partner" not in page.text
    for action in ("key", "disable"):
        refused = await post(client, f"/console/p/{program.id}/partners/{partner_id}/{action}", manager,
                             {"csrf": csrf_of(page.text)})
        assert refused.status_code == 403
    assert await partner_can_pull(client, key) == 200, "nothing changed"
    refused = await post(client, f"/console/p/{program.id}/partners/new", manager,
                         {"csrf": csrf_of(page.text), "name": "Sneaky"})
    assert refused.status_code == 403
    assert len(await partners.list_partners(program.id)) == 1, "no partner added"
