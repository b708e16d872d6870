"""Funding a program through Stripe (localstripe stands in) and offline."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import msgspec
import pytest
import stripe
from litestar.testing import AsyncTestClient

from tests.conftest import STRIPE_WEBHOOK_SECRET
from tests.factories import OPERATOR, ProgramHandle, grant, new_participant, new_program, random_ref

# Payment intents go to localstripe: this module starts it (no other app test needs it).
pytestmark = [pytest.mark.sql, pytest.mark.usefixtures("localstripe_url")]


def signed(event: dict[str, Any], secret: str = STRIPE_WEBHOOK_SECRET, timestamp: int | None = None,
           ) -> tuple[bytes, dict[str, str]]:
    payload = json.dumps(event)
    header = stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=timestamp)
    return payload.encode(), {"Stripe-Signature": header, "Content-Type": "application/json"}


def event(kind: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {"id": random_ref("evt"), "object": "event", "type": kind, "data": {"object": obj},
            "created": int(time.time())}


async def budget(client, program: ProgramHandle) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return (await client.get("/v1/program/budget", headers=program.headers)).json()


async def paid_intent(client, program: ProgramHandle, amount: int = 50_000) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    response = await client.post("/v1/funding/payment-intents", json={"amount": {"amount": amount, "currency": "USD"}},
                                 headers={**program.headers, "Idempotency-Key": random_ref()})
    assert response.status_code == 201, response.text
    return response.json()


async def deliver(client, body: bytes, headers: dict[str, str]):  # type: ignore[no-untyped-def]
    return await client.post("/v1/stripe/webhooks", content=body, headers=headers)


async def test_a_payment_credits_the_budget_once_however_often_stripe_says_so(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client, allow_overdraft=False)
    intent = await paid_intent(client, program)
    assert intent["client_secret"] and intent["points"] == 50_000
    listed = (await client.get("/v1/funding", headers=program.headers)).json()["items"]
    assert [(f["id"], f["status"]) for f in listed] == [(intent["funding_id"], "requires_payment")]
    body, headers = signed(event("payment_intent.succeeded", {"id": intent["payment_intent_id"],
                                                              "object": "payment_intent", "amount": 50_000}))
    answers = await asyncio.gather(*[deliver(client, body, headers) for _ in range(5)])
    assert {a.status_code for a in answers} == {200}
    assert sorted(a.json()["outcome"] for a in answers).count("credited") >= 1
    assert (await deliver(client, body, headers)).json()["outcome"] == "duplicate"
    # A second, different event for the same payment (Stripe may send one) credits nothing more.
    body2, headers2 = signed(event("payment_intent.succeeded", {"id": intent["payment_intent_id"]}))
    assert (await deliver(client, body2, headers2)).status_code == 200
    figures = await budget(client, program)
    assert (figures["funded"]["points"], figures["available"]["points"]) == (50_000, 50_000)
    assert (await client.get("/v1/funding", headers=program.headers)).json()["items"][0]["status"] == "succeeded"


async def test_bad_signatures_answer_400_and_change_nothing(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    intent = await paid_intent(client, program)
    good = event("payment_intent.succeeded", {"id": intent["payment_intent_id"]})
    body, headers = signed(good)
    tampered = body.replace(b"payment_intent.succeeded", b"payment_intent.succeedeD")
    wrong_secret = signed(good, secret="whsec_someone_else")
    stale = signed(good, timestamp=int(time.time()) - 3600)
    for attempt_body, attempt_headers in ((tampered, headers), wrong_secret, stale, (body, {})):
        response = await deliver(client, attempt_body, attempt_headers)
        assert response.status_code == 400, response.text
        assert response.json()["code"] == "validation_error"
    assert (await budget(client, program))["funded"]["points"] == 0
    # The genuine one still works afterwards: nothing above recorded its id.
    assert (await deliver(client, body, headers)).json()["outcome"] == "credited"


async def test_refunds_and_disputes_take_points_back_and_a_negative_budget_blocks_grants(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client, allow_overdraft=False)
    person = await new_participant(client, program)
    intent = await paid_intent(client, program, 10_000)
    await deliver(client, *signed(event("payment_intent.succeeded", {"id": intent["payment_intent_id"]})))
    assert (await grant(client, program, person["id"], 8_000)).status_code == 201
    charge = {"id": "ch_" + random_ref(), "object": "charge", "payment_intent": intent["payment_intent_id"]}
    refund = await deliver(client, *signed(event("charge.refunded", {**charge, "amount_refunded": 3_000})))
    assert refund.json()["outcome"] == "refund taken back"
    dispute = {"id": "dp_" + random_ref(), "object": "dispute", "payment_intent": intent["payment_intent_id"],
               "amount": 2_000}
    assert (await deliver(client, *signed(event("charge.dispute.created", dispute)))).status_code == 200
    figures = await budget(client, program)
    assert (figures["available"]["points"], figures["blocked"]) == (-3_000, True)
    blocked = await grant(client, program, person["id"], 1)
    assert blocked.status_code == 409 and blocked.json()["code"] == "budget_exhausted"
    # A cumulative refund total Stripe repeats takes back only what is new.
    again = await deliver(client, *signed(event("charge.refunded", {**charge, "amount_refunded": 3_000})))
    assert again.json()["outcome"] == "nothing new refunded"
    refill = await paid_intent(client, program, 5_000)
    await deliver(client, *signed(event("payment_intent.succeeded", {"id": refill["payment_intent_id"]})))
    figures = await budget(client, program)
    assert (figures["available"]["points"], figures["blocked"]) == (2_000, False)
    assert (await grant(client, program, person["id"], 1)).status_code == 201


async def test_unknown_events_are_acknowledged_and_ignored(client) -> None:  # type: ignore[no-untyped-def]
    response = await deliver(client, *signed(event("customer.created", {"id": "cus_1"})))
    assert (response.status_code, response.json()["outcome"]) == (200, "ignored")


async def test_the_operator_records_an_offline_payment_once(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    body = {"amount": {"amount": 25_000, "currency": "USD"}, "reference": "Wire 2026-11-20 #4471"}
    path = f"/v1/programs/{program.id}/fundings/offline"
    first = await client.post(path, json=body, headers={**OPERATOR, "Idempotency-Key": "wire-4471"})
    again = await client.post(path, json=body, headers={**OPERATOR, "Idempotency-Key": "wire-4471"})
    assert first.status_code == again.status_code == 201 and first.json()["id"] == again.json()["id"]
    assert (await budget(client, program))["funded"]["points"] == 25_000
    assert (await client.post(path, json=body, headers=program.headers)).status_code == 403
    euros = await client.post(path, json={**body, "amount": {"amount": 100, "currency": "EUR"}},
                              headers={**OPERATOR, "Idempotency-Key": "eur"})
    assert euros.status_code == 422


async def test_without_stripe_settings_funding_says_so_and_the_rest_works(settings, migrated) -> None:  # type: ignore[no-untyped-def]
    from api.app import create_app

    plain = create_app(msgspec.structs.replace(settings, stripe_api_key=None, stripe_webhook_secret=None,
                                               journal_consumer=False, background_tasks=False))
    async with AsyncTestClient(app=plain) as bare:
        program = await new_program(bare)
        response = await bare.post("/v1/funding/payment-intents", json={"amount": {"amount": 100, "currency": "USD"}},
                                   headers={**program.headers, "Idempotency-Key": "k"})
        assert response.status_code == 503 and response.json()["code"] == "not_configured"
        assert "STRIPE_API_KEY" in response.json()["detail"]
        assert (await bare.get("/v1/program", headers=program.headers)).status_code == 200



async def test_an_offline_funding_replays_refuses_another_body_and_never_crosses_programs(client) -> None:  # type: ignore[no-untyped-def]
    first_program, other_program = await new_program(client), await new_program(client)
    body = {"amount": {"amount": 10_000, "currency": "USD"}, "reference": "Wire #1"}
    headers = {**OPERATOR, "Idempotency-Key": random_ref("wire")}
    path = f"/v1/programs/{first_program.id}/fundings/offline"
    first = await client.post(path, json=body, headers=headers)
    again = await client.post(path, json=body, headers=headers)
    assert first.status_code == again.status_code == 201 and again.json() == first.json()
    assert "Idempotent-Replayed" not in first.headers and again.headers["Idempotent-Replayed"] == "true"

    other_body = await client.post(path, json={**body, "amount": {"amount": 99_000, "currency": "USD"}},
                                   headers=headers)
    assert (other_body.status_code, other_body.json()["code"]) == (422, "idempotency_key_reused")

    crossed = await client.post(f"/v1/programs/{other_program.id}/fundings/offline", json=body, headers=headers)
    assert (crossed.status_code, crossed.json()["code"]) == (422, "idempotency_key_reused")
    assert (await budget(client, first_program))["funded"]["points"] == 10_000
    assert (await budget(client, other_program))["funded"]["points"] == 0
    assert (await client.get("/v1/funding", headers=other_program.headers)).json()["items"] == []


async def test_offline_funding_ids_differ_per_program_for_the_same_request_key() -> None:
    from programs.funding import offline_funding_id

    assert offline_funding_id("prg_a", "operator:k") != offline_funding_id("prg_b", "operator:k")
    assert offline_funding_id("prg_a", "operator:k") == offline_funding_id("prg_a", "operator:k")


async def test_payment_funding_ids_and_stripe_keys_never_change() -> None:
    # Recorded fundings and Stripe's idempotency records depend on these exact strings.
    from programs.funding import intent_ids

    assert intent_ids("rw:{p:abc}:idem:x") == (
        "fnd_1178507a76cda437657e6a1df2",
        "rw-funding-1178507a76cda437657e6a1df2539fcf86d0fc5b064deaf5c1a08212af12ede2")


async def test_an_offline_funding_past_the_bound_is_refused_and_leaves_no_record(client, redis) -> None:  # type: ignore[no-untyped-def]
    from tests.factories import fill_wallet, new_participant
    from kernel.money import MAX_BALANCE

    program = await new_program(client, point_value_cents=1)
    rep = await new_participant(client, program)
    await fill_wallet(redis, program.id, rep["id"], MAX_BALANCE - 100)
    path = f"/v1/programs/{program.id}/fundings/offline"
    body = {"amount": {"amount": 101, "currency": "USD"}, "reference": "Wire past the bound"}
    refused = await client.post(path, json=body, headers={**OPERATOR, "Idempotency-Key": "too-much"})
    assert refused.status_code == 422 and refused.json()["code"] == "validation_error", refused.text
    listed = (await client.get("/v1/funding", headers=program.headers)).json()["items"]
    assert listed == []
    fits = await client.post(path, json={**body, "amount": {"amount": 100, "currency": "USD"}},
                             headers={**OPERATOR, "Idempotency-Key": "fits"})
    assert fits.status_code == 201, fits.text
