"""Webhook URLs never reach inside: refused when set, refused again at delivery, and a
delivery connects to the very address that was checked."""

from __future__ import annotations


import httpx
import pytest

from fulfillment.tables import Partner, WebhookDelivery
from fulfillment.webhook_target import Refused, pin, send
from tests.factories import HookListener, random_ref, redeem, shop, shopper

pytestmark = pytest.mark.sql

INSIDE = ["http://127.0.0.1:8080/hooks", "http://[::1]/hooks", "http://localhost:9000/", "http://LOCALHOST./x",
          "http://169.254.169.254/latest/meta-data/", "http://10.0.0.5/", "http://172.16.3.4/", "http://192.168.0.1/",
          "https://[fd00::1]/", "http://[fe80::1]/", "http://0.0.0.0:22/", "http://[::ffff:127.0.0.1]/",
          "http://[::ffff:169.254.169.254]/", "http://2130706433/", "http://0x7f.1/", "http://127.1/",
          "http://user@127.0.0.1/", "http://[fd00:ec2::254]/", "http://224.0.0.1/"]


@pytest.mark.parametrize("url", INSIDE)
async def test_a_webhook_url_inside_the_network_is_refused_and_nothing_changes(client, url: str) -> None:  # type: ignore[no-untyped-def]
    program, partner, _ = await shop(client)
    answer = await client.put(f"/v1/fulfillment/partners/{partner['id']}/webhook", json={"url": url},
                              headers=program.headers)
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == "validation_error"
    assert [p["name"] for p in answer.json()["invalid_params"]] == ["url"]
    listed = (await client.get("/v1/fulfillment/partners", headers=program.headers)).json()
    rows = listed["items"] if isinstance(listed, dict) else listed
    assert all("webhook_url" not in p for p in rows)


async def test_a_new_partner_with_an_inside_webhook_is_refused_and_not_created(client) -> None:  # type: ignore[no-untyped-def]
    program, _, _ = await shop(client)
    answer = await client.post("/v1/fulfillment/partners", headers=program.headers,
                               json={"name": random_ref("p"), "webhook_url": "http://169.254.169.254/"})
    assert answer.status_code == 422 and answer.json()["invalid_params"][0]["name"] == "webhook_url"
    listed = (await client.get("/v1/fulfillment/partners", headers=program.headers)).json()
    assert len(listed["items"] if isinstance(listed, dict) else listed) == 1


async def test_a_public_or_not_yet_resolvable_url_is_accepted(client) -> None:  # type: ignore[no-untyped-def]
    program, partner, _ = await shop(client)
    for url in ("https://8.8.8.8/hooks", "https://hooks.partner.example/orders"):
        answer = await client.put(f"/v1/fulfillment/partners/{partner['id']}/webhook", json={"url": url},
                                  headers=program.headers)
        assert answer.status_code == 200 and answer.json()["url"] == url


async def test_a_delivery_to_an_inside_address_is_refused_at_delivery_time(client) -> None:  # type: ignore[no-untyped-def]
    """A URL stored while the operator allowed private targets (or a name that has since
    changed its answer) is checked again before each attempt: nothing is sent."""
    from datetime import datetime, timedelta, timezone

    from fulfillment import webhooks
    from fulfillment.webhook_target import system_lookup
    from kernel.ids import new_id

    program, partner, item = await shop(client)
    _, me = await shopper(client, program, 2500)
    order = (await redeem(client, me, item["id"])).json()  # no webhook yet: nothing queued
    with HookListener() as listener:
        # A signing secret comes with a URL set the normal way; then the stored URL turns inward.
        assert (await client.put(f"/v1/fulfillment/partners/{partner['id']}/webhook",
                                 json={"url": "https://hooks.partner.example/orders"},
                                 headers=program.headers)).status_code == 200
        await Partner.update({Partner.webhook_url: f"http://127.0.0.1:{listener.port}/hooks"}) \
            .where(Partner.id == partner["id"]).run()
        # Due only when this test says so: no dispatcher of the session takes it first.
        now = datetime.now(timezone.utc)
        delivery_id = new_id("whd")
        await WebhookDelivery.insert(WebhookDelivery(
            id=delivery_id, program_id=program.id, partner_id=partner["id"], order_id=order["id"],
            event="order.created", next_attempt_at=now + timedelta(hours=1), created_at=now)).run()
        row = await WebhookDelivery.select().where(WebhookDelivery.id == delivery_id).first().run()
        async with httpx.AsyncClient() as http:
            await webhooks.attempt(client.app.state.sealer, http, row, allow_private=False, lookup=system_lookup)
        row = await WebhookDelivery.select().where(WebhookDelivery.id == delivery_id).first().run()
        assert row["last_error"] == "refused: 127.0.0.1 is a loopback address"
        assert row["status"] == "pending" and row["attempts"] == 1 and listener.received == []


async def test_a_name_is_looked_up_once_and_the_checked_address_is_the_one_connected_to() -> None:
    """DNS rebinding: the first answer is checked and pinned; a second lookup never happens."""
    answers = [["93.184.216.34"], ["127.0.0.1"]]
    asked: list[str] = []

    async def rebinding(host: str, port: int) -> list[str]:
        asked.append(host)
        return answers[len(asked) - 1]

    target = await pin("https://hooks.partner.example:8443/orders?x=1", False, rebinding)
    assert asked == ["hooks.partner.example"]
    assert target.url == "https://93.184.216.34:8443/orders?x=1"
    assert (target.host_header, target.server_name) == ("hooks.partner.example:8443", "hooks.partner.example")


async def test_a_name_with_any_inside_address_is_refused() -> None:
    async def mixed(host: str, port: int) -> list[str]:
        return ["93.184.216.34", "10.0.0.7"]

    with pytest.raises(Refused, match="resolves to a private address"):
        await pin("https://hooks.partner.example/", False, mixed)


async def test_the_request_goes_to_the_pinned_address_with_the_original_host() -> None:
    """The name below resolves nowhere: only the pinned address can have carried the request."""
    async def local(host: str, port: int) -> list[str]:
        return ["127.0.0.1"]

    with HookListener() as listener:
        target = await pin(f"http://hooks.partner.invalid:{listener.port}/orders", True, local)
        async with httpx.AsyncClient() as http:
            response = await send(http, target, b"{}", {"Content-Type": "application/json"}, timeout=5)
        assert response.status_code == 200
        [(headers, body)] = listener.received
        assert headers["host"] == f"hooks.partner.invalid:{listener.port}" and body == b"{}"
