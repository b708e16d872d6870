"""Four eyes beyond grants: a redemption made for someone, a budget top-up and a rule
activation above the program's threshold answer 202 with a request and move nothing; under
it they happen at once; the one who asked cannot approve; another person's approval (even
two at once) does it exactly once; a rejection does nothing."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from fulfillment.sealing import Sealer
from kernel.errors import IdempotencyKeyInFlight
from programs import approving, funding
from wallet.store import WalletStore
from tests.factories import available, grant, new_participant, new_program, random_ref, shop, wait_until
from tests.programs.test_approvals import second_admin
from tests.programs.test_funding import deliver, event, signed

pytestmark = pytest.mark.sql


async def threshold(client: Any, program: Any, points: int) -> None:
    changed = await client.patch("/v1/program", json={"approval_threshold_points": points}, headers=program.headers)
    assert changed.status_code == 200, changed.text


async def approve_twice_at_once(client: Any, redis: Any, settings: Any, program: Any, request_id: str,
                                headers: dict[str, str]) -> dict[str, Any]:
    """Two approvals racing (the use case itself on this loop, so that they interleave at every
    await): one does it, the other answers the same or is told to retry (in flight)."""
    answers = await asyncio.gather(*[approving.approve(
        WalletStore(redis), Sealer(settings.encryption_key), program.id, request_id, "key:the-other-admin",
        gateway=client.app.state.stripe) for _ in range(2)], return_exceptions=True)
    assert all(isinstance(a, IdempotencyKeyInFlight) or getattr(a, "status", "") == "approved"
               for a in answers), answers
    assert any(not isinstance(a, Exception) for a in answers), answers
    again = await client.post(f"/v1/approvals/{request_id}/approve", headers=headers)
    assert again.status_code == 200 and again.json()["status"] == "approved", again.text
    return dict(again.json())


async def test_a_redemption_for_someone_waits_and_is_placed_once(client, redis, settings) -> None:  # type: ignore[no-untyped-def]
    program, _, item = await shop(client, face_value=2500)  # 2,500 points
    person = await new_participant(client, program)
    assert (await grant(client, program, person["id"], 6000)).status_code == 201
    other = await second_admin(client, program)

    async def redeem_for(key: str | None = None) -> Any:
        return await client.post(f"/v1/participants/{person['id']}/redemptions", json={"item_id": item["id"]},
                                 headers={**program.headers, "Idempotency-Key": key or random_ref()})

    async def orders() -> list[dict[str, Any]]:
        return (await client.get("/v1/orders", params={"participant_id": person["id"]},
                                 headers=program.headers)).json()["items"]

    await threshold(client, program, 2500)
    placed = await redeem_for()  # at the threshold: at once, from the participant's points
    assert placed.status_code == 201, placed.text
    assert placed.json()["participant_id"] == person["id"] and "credentials" not in placed.json()
    assert await available(client, program, person["id"]) == 3500

    async def logged() -> int:
        return len((await client.get("/v1/audit-events", params={"kind": "points.redemption"},
                                     headers=program.headers)).json()["items"])

    assert await wait_until(logged, 1) == 1  # the projector writes it from the hold's journal entry
    [row] = (await client.get("/v1/audit-events", params={"kind": "points.redemption"},
                              headers=program.headers)).json()["items"]
    assert row["actor"].startswith("key:") and row["subject"] == person["id"] and row["detail"]["points"] == 2500

    await threshold(client, program, 2000)
    asked = await redeem_for("for-pat")
    assert asked.status_code == 202, asked.text
    request = asked.json()
    assert (request["kind"], request["points"], request["participant_id"], request["item_id"]) == (
        "redemption", 2500, person["id"], item["id"])
    assert request["item_title"] == "Amazon $25 gift card"
    assert request["amount"] == {"amount": 2500, "currency": "USD"}
    assert (await redeem_for("for-pat")).json()["id"] == request["id"]  # a retry files nothing twice
    assert await available(client, program, person["id"]) == 3500 and len(await orders()) == 1

    own = await client.post(f"/v1/approvals/{request['id']}/approve", headers=program.headers)
    assert own.status_code == 403 and len(await orders()) == 1
    approved = await approve_twice_at_once(client, redis, settings, program, request["id"], other)
    assert approved["order_id"] and approved["decided_by"].startswith("key:")
    assert [o["id"] for o in await orders()].count(approved["order_id"]) == 1 and len(await orders()) == 2
    assert await available(client, program, person["id"]) == 1000

    refused = (await redeem_for()).json()
    rejected = await client.post(f"/v1/approvals/{refused['id']}/reject", headers=other, json={"reason": "no"})
    assert rejected.json()["status"] == "rejected"
    assert await available(client, program, person["id"]) == 1000 and len(await orders()) == 2
    # Not enough points left when approved: failed with the wallet's words, nothing held.
    short = (await redeem_for()).json()
    failed = (await client.post(f"/v1/approvals/{short['id']}/approve", headers=other)).json()
    assert failed["status"] == "failed" and "available balance is 1000" in failed["decision_reason"]
    assert len(await orders()) == 2


@pytest.mark.usefixtures("localstripe_url")
async def test_a_top_up_waits_and_its_approval_makes_one_payment_intent(client, redis, settings) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client, approval_threshold_points=10_000, allow_overdraft=False)
    other = await second_admin(client, program)

    async def top_up(amount: int) -> Any:
        return await client.post("/v1/funding/payment-intents", json={"amount": {"amount": amount, "currency": "USD"}},
                                 headers={**program.headers, "Idempotency-Key": random_ref()})

    async def fundings() -> list[dict[str, Any]]:
        return (await client.get("/v1/funding", headers=program.headers)).json()["items"]

    small = await top_up(10_000)  # at the threshold: the intent at once
    assert small.status_code == 201 and small.json()["client_secret"]
    asked = await top_up(50_000)
    assert asked.status_code == 202, asked.text
    request = asked.json()
    assert (request["kind"], request["points"], request["amount"]) == (
        "top_up", 50_000, {"amount": 50_000, "currency": "USD"})
    assert "participant_id" not in request and len(await fundings()) == 1
    assert (await client.post(f"/v1/approvals/{request['id']}/approve", headers=program.headers)).status_code == 403

    approved = await approve_twice_at_once(client, redis, settings, program, request["id"], other)
    made = [f for f in await fundings() if f["id"] == approved["funding_id"]]
    assert len(await fundings()) == 2 and [f["status"] for f in made] == ["requires_payment"]
    gateway = client.app.state.stripe
    secret = await funding.client_secret_for(gateway, program.id, approved["funding_id"])
    assert secret.startswith(made[0]["payment_intent_id"] + "_secret_")
    assert [f.id for f in await funding.awaiting_payment(program.id)] == [approved["funding_id"], small.json()["funding_id"]]
    # Paid: Stripe's webhook credits the budget with the approved points, as any payment.
    body, headers = signed(event("payment_intent.succeeded", {"id": made[0]["payment_intent_id"]}))
    assert (await deliver(client, body, headers)).json()["outcome"] == "credited"
    budget = (await client.get("/v1/program/budget", headers=program.headers)).json()
    assert budget["funded"]["points"] == 50_000

    refused = (await top_up(20_000)).json()
    assert (await client.post(f"/v1/approvals/{refused['id']}/reject", headers=other,
                              json={"reason": "wire it instead"})).json()["status"] == "rejected"
    assert len(await fundings()) == 2


def sale(who: str, days_ago: int) -> dict[str, Any]:
    at = datetime.now(timezone.utc) - timedelta(days=days_ago)
    return {"external_id": random_ref("evt"), "type": "sale", "participant_external_id": who,
            "occurred_at": at.isoformat(), "attributes": {"amount": 10_000}}


def rule(points: int) -> dict[str, Any]:
    return {"name": f"{points} a sale", "activity_type": "sale", "award": {"type": "fixed", "points": points}}


async def test_a_rule_whose_simulated_cost_passes_the_threshold_waits_for_its_exact_version(client, redis, settings) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client, approval_threshold_points=100)
    ann = await new_participant(client, program)
    other = await second_admin(client, program)
    sent = await client.post("/v1/activities", headers=program.headers,
                             json={"activities": [sale(ann["external_id"], days) for days in (2, 20, 40, 120)]})
    assert sent.status_code == 200, sent.text

    async def rules() -> list[dict[str, Any]]:
        return (await client.get("/v1/earning-rules", headers=program.headers)).json()["items"]

    cheap = await client.post("/v1/earning-rules", json=rule(30), headers=program.headers)  # 3 sales in 90 days: 90
    assert cheap.status_code == 201, cheap.text
    asked = await client.post("/v1/earning-rules", json=rule(50), headers={**program.headers, "Idempotency-Key": "r50"})
    assert asked.status_code == 202, asked.text
    request = asked.json()
    assert (request["kind"], request["points"], request["rule_name"], request["rule_version"]) == (
        "rule_activation", 150, "50 a sale", 1)
    assert request["amount"] == {"amount": 150, "currency": "USD"} and request["rule_digest"]
    again = await client.post("/v1/earning-rules", json=rule(50), headers={**program.headers, "Idempotency-Key": "r50"})
    assert again.json()["id"] == request["id"] and len(await rules()) == 1
    assert (await client.post(f"/v1/approvals/{request['id']}/approve", headers=program.headers)).status_code == 403

    approved = await approve_twice_at_once(client, redis, settings, program, request["id"], other)
    active = {r["id"]: r for r in await rules()}
    assert len(active) == 2 and active[approved["rule_id"]]["version"] == 1
    assert active[approved["rule_id"]]["rule"]["award"]["points"] == 50

    # A new version is an activation too; approved after the rule moved on, it fails.
    cheap_id = cheap.json()["id"]
    bigger = await client.put(f"/v1/earning-rules/{cheap_id}", json=rule(60), headers=program.headers)
    assert bigger.status_code == 202 and bigger.json()["rule_version"] == 2
    rejected = await client.put(f"/v1/earning-rules/{cheap_id}", json=rule(70), headers=program.headers)
    assert (await client.post(f"/v1/approvals/{rejected.json()['id']}/reject", headers=other,
                              json={"reason": "too rich"})).json()["status"] == "rejected"
    assert (await client.put(f"/v1/earning-rules/{cheap_id}", json=rule(20), headers=program.headers)).status_code == 200
    late = (await client.post(f"/v1/approvals/{bigger.json()['id']}/approve", headers=other)).json()
    assert late["status"] == "failed" and "changed meanwhile" in late["decision_reason"]
    detail = (await client.get(f"/v1/earning-rules/{cheap_id}", headers=program.headers)).json()
    assert (detail["version"], detail["rule"]["award"]["points"]) == (2, 20)
