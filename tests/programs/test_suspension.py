"""The operator's suspension of a program, over HTTP: only the operator sets it; while it
holds, nothing new is promised (409 program_suspended) from the very next request on every
worker, and what was promised before still completes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.conftest import LiveServer, STRIPE_WEBHOOK_SECRET
from tests.factories import (
    OPERATOR, ProgramHandle, bearer, grant, new_participant, new_program, projected, random_ref, redeem, set_program_status,
    shop, shopper, tokens_for,
)

pytestmark = pytest.mark.sql

SALE_RULE = {"activity_type": "sale", "award": {"type": "per_unit", "attribute": "amount", "unit": 100,
                                                "points_per_unit": 1}}
WHEEL = {"name": "Wheel", "cost_points": 10, "segments": [
    {"label": "100 points", "weight": 50, "prize": {"type": "points", "points": 100}},
    {"label": "Try again", "weight": 50, "prize": {"type": "nothing"}}]}


def sale(external_id: str) -> dict[str, Any]:
    return {"activities": [{"external_id": random_ref("sale"), "type": "sale", "participant_external_id": external_id,
                            "occurred_at": datetime.now(timezone.utc).isoformat(), "attributes": {"amount": 5_000}}]}


def suspended(response: Any) -> bool:
    return response.status_code == 409 and response.json()["code"] == "program_suspended"


async def wallet_of(client: Any, program: ProgramHandle, participant_id: str) -> dict[str, Any]:
    response = await client.get(f"/v1/participants/{participant_id}/wallet", headers=program.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def test_only_the_operator_suspends_and_reactivates(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    by_admin = await client.patch("/v1/program", json={"status": "suspended"}, headers=program.headers)
    assert by_admin.status_code == 403 and by_admin.json()["code"] == "forbidden"
    assert (await client.get("/v1/program", headers=program.headers)).json()["status"] == "active"
    person = await new_participant(client, program)
    assert (await grant(client, program, person["id"], 10)).status_code == 201

    assert (await set_program_status(client, program, "suspended"))["status"] == "suspended"
    assert (await client.get("/v1/program", headers=program.headers)).json()["status"] == "suspended"
    # The admin cannot lift it either, and other settings still change.
    lift = await client.patch("/v1/program", json={"status": "active"}, headers=program.headers)
    assert lift.status_code == 403
    renamed = await client.patch("/v1/program", json={"name": random_ref("renamed")}, headers=program.headers)
    assert renamed.status_code == 200 and renamed.json()["status"] == "suspended"
    assert suspended(await grant(client, program, person["id"], 10))

    assert (await set_program_status(client, program, "active"))["status"] == "active"
    assert (await grant(client, program, person["id"], 10)).status_code == 201
    unknown = await client.patch("/v1/programs/prg_nope", json={"status": "suspended"}, headers=OPERATOR)
    assert unknown.status_code == 404
    bad = await client.patch(f"/v1/programs/{program.id}", json={"status": "paused"}, headers=OPERATOR)
    assert bad.status_code == 400
    as_admin = await client.patch(f"/v1/programs/{program.id}", json={"status": "suspended"}, headers=program.headers)
    assert as_admin.status_code == 403


async def test_a_suspended_program_refuses_every_new_promise_and_keeps_its_reads(client) -> None:  # type: ignore[no-untyped-def]
    program, partner, item = await shop(client, face_value=500)
    assert (await client.post("/v1/earning-rules", json={"name": "Sales", **SALE_RULE},
                              headers=program.headers)).status_code == 201
    person, me = await shopper(client, program, 5_000)
    refresh = (await tokens_for(client, program, person["id"]))["refresh_token"]
    created = await client.post("/v1/campaigns/spin", json=WHEEL, headers=program.headers)
    campaign_id = created.json()["id"]
    assert (await client.post(f"/v1/campaigns/{campaign_id}/launch", headers=program.headers)).status_code == 200
    closes = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
    sweep_design = {"name": "Draw", "entry_cost_points": 10, "max_entries_per_participant": 5, "winners": 1,
                    "alternates": 0, "closes_at": closes, "prizes": [{"type": "points", "points": 100}]}
    open_sweep = (await client.post("/v1/sweepstakes", json=sweep_design, headers=program.headers)).json()
    closed_sweep = (await client.post("/v1/sweepstakes", json=sweep_design, headers=program.headers)).json()
    entered = await client.post(f"/v1/me/sweepstakes/{closed_sweep['id']}/entries", json={"count": 1},
                                headers={**me, "Idempotency-Key": random_ref()})
    assert entered.status_code == 201, entered.text
    assert (await client.post(f"/v1/sweepstakes/{closed_sweep['id']}/close", headers=program.headers)).status_code == 200
    claim = {"invoice_number": random_ref("INV"), "invoice_date": "2026-06-01",
             "amount": {"amount": 10_000, "currency": "USD"}, "product": "ThermoPro 200"}
    filed = await client.post("/v1/me/claims", json=claim, headers={**me, "Idempotency-Key": random_ref()})
    assert filed.status_code == 201, filed.text
    granted_before = await grant(client, program, person["id"], 1, key="granted-before")
    before = await wallet_of(client, program, person["id"])

    await set_program_status(client, program, "suspended")

    def idem() -> dict[str, str]:
        return {"Idempotency-Key": random_ref()}

    admin = program.headers
    refused = {
        "grant": await grant(client, program, person["id"], 100),
        "deduction": await client.post("/v1/points/deductions", headers={**admin, **idem()},
                                       json={"participant_id": person["id"], "points": 10, "reason": "fix"}),
        "batch": await client.post("/v1/points/grants/batch", headers={**admin, **idem()}, json={"grants": [
            {"idempotency_id": random_ref(), "participant_id": person["id"], "points": 5, "reason": "bonus"}]}),
        "activity": await client.post("/v1/activities", json=sale(person["external_id"]), headers=admin),
        "claim filed": await client.post("/v1/me/claims", json={**claim, "invoice_number": random_ref("INV")},
                                         headers={**me, **idem()}),
        "claim approved": await client.post(f"/v1/claims/{filed.json()['id']}/approve", headers=admin),
        "spin": await client.post(f"/v1/me/campaigns/{campaign_id}/spins", headers={**me, **idem()}),
        "free spins": await client.post(f"/v1/participants/{person['id']}/free-spins", headers={**admin, **idem()},
                                        json={"spins": 1, "reason": "welcome"}),
        "entry": await client.post(f"/v1/me/sweepstakes/{open_sweep['id']}/entries", json={"count": 1},
                                   headers={**me, **idem()}),
        "free entry": await client.post(f"/v1/sweepstakes/{open_sweep['id']}/free-entries", headers={**admin, **idem()},
                                        json={"participant_id": person["id"], "count": 1, "reason": "mail-in"}),
        "draw": await client.post(f"/v1/sweepstakes/{closed_sweep['id']}/draw", headers=admin,
                                  json={"beacon": {"source": "test", "round": 1, "value": "beacon-1"}}),
        "redemption": await redeem(client, me, item["id"]),
        "token mint": await client.post(f"/v1/participants/{person['id']}/tokens", headers=admin),
        "refresh": await client.post("/v1/auth/refresh", json={"refresh_token": refresh}),
    }
    assert {name for name, r in refused.items() if not suspended(r)} == set(), \
        {name: (r.status_code, r.text[:200]) for name, r in refused.items() if not suspended(r)}

    # Nothing moved, and reads still answer.
    assert await wallet_of(client, program, person["id"]) == before
    assert (await client.get("/v1/me/wallet", headers=me)).status_code == 200
    assert (await client.get("/v1/me/transactions", headers=me)).status_code == 200
    assert (await client.get("/v1/participants", headers=admin)).status_code == 200
    assert (await client.get(f"/v1/claims/{filed.json()['id']}", headers=admin)).json()["status"] == "pending"
    assert (await client.get(f"/v1/sweepstakes/{closed_sweep['id']}", headers=admin)).json()["status"] == "closed"
    # A retry of a grant answered before the suspension replays its answer.
    replay = await grant(client, program, person["id"], 1, key="granted-before")
    assert replay.status_code == 201 and replay.json() == granted_before.json()

    # Reactivated: the same refresh token was not spent, and the re-sent work goes through.
    await set_program_status(client, program, "active")
    assert (await client.post("/v1/auth/refresh", json={"refresh_token": refresh})).status_code == 200
    assert (await grant(client, program, person["id"], 100)).status_code == 201
    approved = await client.post(f"/v1/claims/{filed.json()['id']}/approve", headers=admin)
    assert approved.status_code == 200 and approved.json()["status"] == "approved"
    assert (await wallet_of(client, program, person["id"]))["available"] == before["available"] + 100 + 100

    # A drawn sweepstakes: its prizes do not pass to an alternate while suspended either.
    drawn = await client.post(f"/v1/sweepstakes/{closed_sweep['id']}/draw", headers=admin,
                              json={"beacon": {"source": "test", "round": 1, "value": "beacon-1"}})
    assert drawn.status_code == 200, drawn.text
    await set_program_status(client, program, "suspended")
    assert suspended(await client.post(f"/v1/sweepstakes/{closed_sweep['id']}/winners/1/forfeit",
                                       json={"reason": "did not claim"}, headers=admin))


async def test_an_activity_refused_while_suspended_earns_when_sent_again_after(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    assert (await client.post("/v1/earning-rules", json={"name": "Sales", **SALE_RULE},
                              headers=program.headers)).status_code == 201
    person = await new_participant(client, program)
    batch = sale(person["external_id"])
    await set_program_status(client, program, "suspended")
    assert suspended(await client.post("/v1/activities", json=batch, headers=program.headers))
    assert (await wallet_of(client, program, person["id"]))["available"] == 0
    await set_program_status(client, program, "active")
    again = await client.post("/v1/activities", json=batch, headers=program.headers)
    assert again.status_code == 200, again.text
    assert (await wallet_of(client, program, person["id"]))["available"] == 50


@pytest.mark.usefixtures("localstripe_url")  # creates a payment intent
async def test_what_was_promised_before_still_completes_while_suspended(client) -> None:  # type: ignore[no-untyped-def]
    import json
    import time

    import stripe

    program, partner, item = await shop(client, face_value=500)
    person, me = await shopper(client, program, 2_000)
    first = await redeem(client, me, item["id"])
    second = await redeem(client, me, item["id"])
    assert first.status_code == second.status_code == 201
    intent = await client.post("/v1/funding/payment-intents", json={"amount": {"amount": 10_000, "currency": "USD"}},
                               headers={**program.headers, "Idempotency-Key": random_ref()})
    assert intent.status_code == 201, intent.text

    await set_program_status(client, program, "suspended")

    key = bearer(partner["api_key"])
    claimed = (await client.post("/v1/fulfillment/orders/claim", json={"limit": 5, "lease_seconds": 60},
                                 headers=key)).json()["items"]
    assert sorted(o["id"] for o in claimed) == sorted([first.json()["id"], second.json()["id"]])
    lease = {o["id"]: o["lease_id"] for o in claimed}
    done = await client.post(f"/v1/fulfillment/orders/{first.json()['id']}/fulfill", headers=key,
                             json={"lease_id": lease[first.json()["id"]], "credentials": {"code": "AMZ-1"}})
    assert done.status_code == 200, done.text
    failed = await client.post(f"/v1/fulfillment/orders/{second.json()['id']}/fail", headers=key,
                               json={"reason": "brand API down"})
    assert failed.status_code == 200, failed.text
    assert (await client.get("/v1/me/wallet", headers=me)).json() | {"expiring": []} == {
        "available": 1_500, "held": 0, "lifetime_earned": 2_000, "lifetime_spent": 500, "expiring": [],
        "pending": 0, "pending_lots": []}
    assert (await client.get(f"/v1/me/redemptions/{first.json()['id']}", headers=me)).json()["credentials"] == \
        {"code": "AMZ-1"}

    # Money that arrives is recorded.
    payload = json.dumps({"id": random_ref("evt"), "object": "event", "type": "payment_intent.succeeded",
                          "created": int(time.time()), "data": {"object": {
                              "id": intent.json()["payment_intent_id"], "object": "payment_intent",
                              "amount": 10_000}}})
    signature = stripe.WebhookSignature.generate_signature_header(payload, STRIPE_WEBHOOK_SECRET)
    webhook = await client.post("/v1/stripe/webhooks", content=payload.encode(),
                                headers={"Stripe-Signature": signature, "Content-Type": "application/json"})
    assert webhook.status_code == 200 and webhook.json()["outcome"] == "credited"
    budget = (await client.get("/v1/program/budget", headers=program.headers)).json()
    assert budget["funded"]["points"] == 10_000


async def test_expiry_runs_while_suspended(redis, migrated) -> None:  # type: ignore[no-untyped-def]
    from programs.expiry import sweep
    from programs.programs import NewProgram, create_program, set_status
    from wallet import accounts
    from kernel import keys as kernel_keys
    from wallet.store import WalletStore
    from kernel.idempotency import Idem

    program, _ = await create_program(NewProgram(name=random_ref("expiry"), points_expire_months=12))
    store = WalletStore(redis, clock=lambda: int(datetime(2025, 1, 10, tzinfo=timezone.utc).timestamp() * 1e9))
    await store.open_wallet(program.id, "rep")
    await accounts.grant(store, program.id, "rep", 100, "January sales",
                         Idem(key=kernel_keys.idempotency(program.id, "admin", random_ref()), fingerprint="f"))
    await projected(redis, program.id)
    await set_status(store, program.id, "suspended")
    swept = await sweep(store, program, 12, now=datetime(2026, 1, 11, tzinfo=timezone.utc))
    assert swept.points == 100
    assert (await store.balance(program.id, "rep"))["available"] == 0


@pytest.mark.redis_bound  # the generation carried into each worker's Redis call
def test_a_suspension_holds_on_the_very_next_request_of_every_worker(settings, migrated) -> None:  # type: ignore[no-untyped-def]
    import httpx

    server = LiveServer(workers=2)
    try:
        with httpx.Client(base_url=server.url, timeout=10) as http:
            created = http.post("/v1/programs", json={"name": random_ref("program")}, headers=OPERATOR).json()
            admin = bearer(created["admin_key"])
            person = http.post("/v1/participants", json={"external_id": random_ref(), "display_name": "Pat"},
                               headers=admin).json()
            # Every worker has the program's view cached as active.
            for _ in range(20):
                assert http.get("/v1/program", headers=admin).json()["status"] == "active"
            body = {"participant_id": person["id"], "points": 5, "reason": "bonus"}
            assert http.patch(f"/v1/programs/{created['program_id']}", json={"status": "suspended"},
                              headers=OPERATOR).status_code == 200
            answers = [http.post("/v1/points/grants", json=body,
                                 headers={**admin, "Idempotency-Key": random_ref()}) for _ in range(20)]
            assert [a.json()["code"] for a in answers] == ["program_suspended"] * 20
            assert http.patch(f"/v1/programs/{created['program_id']}", json={"status": "active"},
                              headers=OPERATOR).status_code == 200
            answers = [http.post("/v1/points/grants", json=body,
                                 headers={**admin, "Idempotency-Key": random_ref()}) for _ in range(20)]
            assert [a.status_code for a in answers] == [201] * 20
    finally:
        server.stop()
