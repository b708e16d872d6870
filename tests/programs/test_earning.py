"""Earning rules at their edges, through the HTTP API."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from tests.factories import ProgramHandle, bearer, new_participant, new_program, random_ref, tokens_for

pytestmark = pytest.mark.sql

T0 = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def event(kind: str, who: str, at: datetime, ext: str | None = None, **attributes: Any) -> dict[str, Any]:
    return {"external_id": ext or random_ref("evt"), "type": kind, "participant_external_id": who,
            "occurred_at": iso(at), "attributes": attributes}


async def send(client, program: ProgramHandle, *events: dict[str, Any]) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    response = await client.post("/v1/activities", json={"activities": list(events)}, headers=program.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def rule(client, program: ProgramHandle, **spec: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    response = await client.post("/v1/earning-rules", json={"name": random_ref("rule"), **spec},
                                 headers=program.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def balance(client, program: ProgramHandle, participant_id: str) -> int:  # type: ignore[no-untyped-def]
    response = await client.get(f"/v1/participants/{participant_id}/wallet", headers=program.headers)
    return response.json()["available"]


async def seller(client, program: ProgramHandle, **fields: Any) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return await new_participant(client, program, external_id=random_ref("rep"), **fields)


async def test_a_sale_earns_points_per_dollar_and_a_resend_changes_nothing(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    jill = await seller(client, program)
    await rule(client, program, activity_type="sale",
               award={"type": "per_unit", "attribute": "amount", "unit": 100, "points_per_unit": 2})
    sale = event("sale", jill["external_id"], T0, ext="INV-1", amount=12_550, sku="TP-200")
    first = await send(client, program, sale)
    assert first["items"][0]["status"] == "new"
    assert [a["points"] for a in first["items"][0]["awards"]] == [250]
    again = await send(client, program, sale)
    assert (again["new"], again["duplicates"], again["points_awarded"]) == (0, 1, 0)
    assert await balance(client, program, jill["id"]) == 250


async def test_bad_activities_are_rejected_with_reasons_and_the_rest_go_through(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    jill = await seller(client, program)
    who = jill["external_id"]
    report = await send(
        client, program,
        event("sale", who, T0),                                   # no amount
        event("sale", who, T0, amount=-5),                        # negative amount
        event("teleport", who, T0),                               # unknown type
        event("demo_placed", "nobody", T0),                       # unknown participant
        event("demo_placed", who, datetime.now(timezone.utc) + timedelta(days=2)),  # future
        event("demo_placed", who, T0),                            # fine
    )
    reasons = [i.get("reason") for i in report["items"]]
    assert report["rejected"] == 5 and report["new"] == 1
    assert "amount" in reasons[0] and "amount" in reasons[1] and "teleport" in reasons[2]
    assert "nobody" in reasons[3] and "future" in reasons[4]
    # A program's own type is accepted once defined.
    created = await client.post("/v1/activity-types", json={"name": "webinar_hosted"}, headers=program.headers)
    assert created.status_code == 201
    assert (await send(client, program, event("webinar_hosted", who, T0)))["new"] == 1


async def test_the_multiplier_window_includes_its_last_day_and_not_a_second_more(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    await rule(client, program, activity_type="sale", award={"type": "fixed", "points": 100},
               multiplier={"factor": 1.5, "when_activity_type": "training_completed", "within_days": 90,
                           "match_attributes": ["product"]})
    inside, outside, other_product = [await seller(client, program) for _ in range(3)]
    for person, trained_at, product in ((inside, T0 - timedelta(days=90), "ThermoPro"),
                                        (outside, T0 - timedelta(days=90, seconds=1), "ThermoPro"),
                                        (other_product, T0 - timedelta(days=1), "AquaMax")):
        await send(client, program, event("training_completed", person["external_id"], trained_at,
                                          course="installer-101", product=product))
        await send(client, program, event("sale", person["external_id"], T0, amount=1000, product="ThermoPro"))
    assert [await balance(client, program, p["id"]) for p in (inside, outside, other_product)] == [150, 100, 100]


async def test_a_follow_up_earns_only_within_its_deadline(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    await rule(client, program, activity_type="lead_followed_up", award={"type": "fixed", "points": 40},
               deadline={"after_activity_type": "lead_received", "match_attribute": "lead_id", "within_hours": 4})
    on_time, late, unknown_lead = [await seller(client, program) for _ in range(3)]
    for person, delay in ((on_time, timedelta(hours=4)), (late, timedelta(hours=4, seconds=1))):
        await send(client, program, event("lead_received", person["external_id"], T0, lead_id="L-1"),
                   event("lead_followed_up", person["external_id"], T0 + delay, lead_id="L-1"))
    await send(client, program, event("lead_received", unknown_lead["external_id"], T0, lead_id="L-7"),
               event("lead_followed_up", unknown_lead["external_id"], T0 + timedelta(hours=1), lead_id="L-8"))
    assert [await balance(client, program, p["id"]) for p in (on_time, late, unknown_lead)] == [40, 0, 0]


async def test_a_cap_trims_within_a_month_and_starts_again_in_the_next(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client, timezone="America/Chicago")
    await rule(client, program, activity_type="demo_placed", award={"type": "fixed", "points": 60},
               cap={"points": 100, "period": "month"})
    rep = await seller(client, program)
    who = rep["external_id"]
    # 04:30 UTC on July 1st is still June 30th (23:30 CDT) in Chicago.
    june = [datetime(2026, 6, 30, 10, tzinfo=timezone.utc), datetime(2026, 7, 1, 4, 30, tzinfo=timezone.utc)]
    report = await send(client, program, *(event("demo_placed", who, at) for at in june))
    assert [i["awards"][0]["points"] for i in report["items"]] == [60, 40]
    assert report["items"][1]["awards"][0]["outcome"] == "capped"
    third = await send(client, program, event("demo_placed", who, datetime(2026, 6, 30, 11, tzinfo=timezone.utc)))
    assert third["items"][0]["awards"][0] | {"transaction_id": None} == {
        **third["items"][0]["awards"][0], "points": 0, "outcome": "capped", "transaction_id": None}
    july = await send(client, program, event("demo_placed", who, datetime(2026, 7, 1, 6, 0, tzinfo=timezone.utc)))
    assert july["items"][0]["awards"][0]["points"] == 60
    assert await balance(client, program, rep["id"]) == 160


async def test_a_team_award_splits_with_no_point_lost_or_created(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    team = (await client.post("/v1/teams", json={"name": "Northside"}, headers=program.headers)).json()
    members = [await seller(client, program, team_id=team["id"]) for _ in range(3)]
    await rule(client, program, activity_type="deal_registered", award={"type": "fixed", "points": 100},
               team_award=True)
    report = await send(client, program, event("deal_registered", members[1]["external_id"], T0, deal="D-9"))
    shares = sorted(a["points"] for a in report["items"][0]["awards"])
    assert shares == [33, 33, 34]
    balances = [await balance(client, program, m["id"]) for m in members]
    assert sum(balances) == 100 and sorted(balances) == [33, 33, 34]


async def test_conditions_and_participant_filters_decide_eligibility(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    gold, silver = await seller(client, program, segment="gold"), await seller(client, program, segment="silver")
    await rule(client, program, activity_type="sale", award={"type": "fixed", "points": 10},
               conditions=[{"attribute": "amount", "op": "gte", "value": 50_000},
                           {"attribute": "sku", "op": "in", "value": ["TP-200", "TP-300"]}],
               participants={"segments": ["gold"]})
    await send(client, program,
               event("sale", gold["external_id"], T0, amount=50_000, sku="TP-200"),
               event("sale", gold["external_id"], T0, amount=49_999, sku="TP-200"),
               event("sale", gold["external_id"], T0, amount=90_000, sku="XX-1"),
               event("sale", silver["external_id"], T0, amount=90_000, sku="TP-300"))
    assert [await balance(client, program, p["id"]) for p in (gold, silver)] == [10, 0]


async def test_a_rule_edited_while_activities_arrive_names_its_version_in_each_award(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    rep = await seller(client, program)
    created = await rule(client, program, activity_type="demo_placed", award={"type": "fixed", "points": 5})
    points_for = {1: 5, 2: 7}

    async def stream() -> list[dict[str, Any]]:
        awards = []
        for _ in range(20):
            report = await send(client, program, event("demo_placed", rep["external_id"], T0))
            awards += report["items"][0]["awards"]
        return awards

    async def edit() -> None:
        await asyncio.sleep(0.01)
        updated = await client.put(f"/v1/earning-rules/{created['id']}", headers=program.headers,
                                   json={"name": "Demo placed (raised)", "activity_type": "demo_placed",
                                         "award": {"type": "fixed", "points": 7}})
        assert updated.json()["version"] == 2

    awards, _ = await asyncio.gather(stream(), edit())
    assert {a["rule_version"] for a in awards} <= {1, 2}
    assert all(a["points"] == points_for[a["rule_version"]] for a in awards)
    assert await balance(client, program, rep["id"]) == sum(a["points"] for a in awards)
    detail = (await client.get(f"/v1/earning-rules/{created['id']}", headers=program.headers)).json()
    assert [v["version"] for v in detail["versions"]] == [1, 2]


async def test_a_retired_rule_awards_nothing_more(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    rep = await seller(client, program)
    created = await rule(client, program, activity_type="demo_placed", award={"type": "fixed", "points": 5})
    await send(client, program, event("demo_placed", rep["external_id"], T0))
    retired = await client.post(f"/v1/earning-rules/{created['id']}/retire", headers=program.headers)
    assert retired.json()["status"] == "retired"
    await send(client, program, event("demo_placed", rep["external_id"], T0))
    assert await balance(client, program, rep["id"]) == 5


async def test_simulation_equals_what_the_live_rule_then_awards(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    team = (await client.post("/v1/teams", json={"name": "East"}, headers=program.headers)).json()
    reps = [await seller(client, program, team_id=team["id"]) for _ in range(4)]
    events = []
    for i in range(40):
        who = reps[i % 4]["external_id"]
        at = T0 + timedelta(hours=7 * i)
        if i % 5 == 0:
            events.append(event("training_completed", who, at - timedelta(days=3), course="c", product="TP"))
        events.append(event("sale", who, at, amount=1_000 * (i + 1), product="TP" if i % 2 else "AQ"))
    await send(client, program, *events)  # no rule yet: nothing earned
    draft = {"name": "Spring sale boost", "activity_type": "sale",
             "award": {"type": "per_unit", "unit": 100, "points_per_unit": 1},
             "multiplier": {"factor": 2, "when_activity_type": "training_completed", "within_days": 30,
                            "match_attributes": ["product"]},
             "cap": {"points": 400, "period": "week"}}
    window = {"starts_at": iso(T0 - timedelta(days=1)), "ends_at": iso(T0 + timedelta(days=30))}
    simulated = (await client.post("/v1/earning-rules/simulate", json={"rule": draft, **window},
                                   headers=program.headers)).json()
    assert simulated["total_points"] > 0 and simulated["cost"]["currency"] == "USD"
    assert [await balance(client, program, r["id"]) for r in reps] == [0, 0, 0, 0]
    live = await rule(client, program, **draft)
    applied = await client.post(f"/v1/earning-rules/{live['id']}/apply", json=window,
                                headers={**program.headers, "Idempotency-Key": random_ref()})
    assert applied.status_code == 200, applied.text
    awarded = {(a["participant_id"], a["points"]) for a in applied.json()["awards"] if a["points"]}
    expected = {(a["participant_id"], a["points"]) for a in simulated["awards"]}
    assert sorted(awarded) == sorted(expected)
    assert applied.json()["points_awarded"] == simulated["total_points"]
    assert sum([await balance(client, program, r["id"]) for r in reps]) == simulated["total_points"]
    # Applying again pays nothing twice.
    again = await client.post(f"/v1/earning-rules/{live['id']}/apply", json=window,
                              headers={**program.headers, "Idempotency-Key": random_ref()})
    # ...and says so: the report counts only what this run paid, and marks the earlier awards.
    assert again.json()["points_awarded"] == 0
    earlier = [a for a in again.json()["awards"] if a["points"]]
    assert earlier and all(a["already_awarded"] for a in earlier)
    assert not any(a.get("already_awarded") for a in applied.json()["awards"])
    assert sum([await balance(client, program, r["id"]) for r in reps]) == simulated["total_points"]


async def test_with_overdraft_off_an_award_the_budget_cannot_cover_is_refused(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client, allow_overdraft=False)
    rep = await seller(client, program)
    await rule(client, program, activity_type="demo_placed", award={"type": "fixed", "points": 5})
    report = await send(client, program, event("demo_placed", rep["external_id"], T0))
    assert report["items"][0]["awards"][0]["outcome"] == "budget_exhausted"
    grant = await client.post("/v1/points/grants", headers={**program.headers, "Idempotency-Key": random_ref()},
                              json={"participant_id": rep["id"], "points": 1, "reason": "x"})
    assert grant.status_code == 409 and grant.json()["code"] == "budget_exhausted"
    budget = (await client.get("/v1/program/budget", headers=program.headers)).json()
    assert budget["issued"]["points"] == 0 and budget["overdrawn"] is False


async def test_the_budget_shows_issued_and_outstanding_with_their_money_value(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client, point_value_cents=2)
    rep = await seller(client, program)
    await client.post("/v1/points/grants", headers={**program.headers, "Idempotency-Key": random_ref()},
                      json={"participant_id": rep["id"], "points": 300, "reason": "x"})
    await client.post("/v1/points/deductions", headers={**program.headers, "Idempotency-Key": random_ref()},
                      json={"participant_id": rep["id"], "points": 50, "reason": "x"})
    budget = (await client.get("/v1/program/budget", headers=program.headers)).json()
    assert budget["issued"] == {"points": 250, "value": {"amount": 500, "currency": "USD"}}
    assert budget["outstanding"]["points"] == 250 and budget["overdrawn"] is True


async def test_claims_are_approved_into_sales_and_a_duplicate_invoice_is_never_paid_twice(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    await rule(client, program, name="Claimed sale", activity_type="sale",
               award={"type": "per_unit", "unit": 100, "points_per_unit": 1})
    alice, bob = await seller(client, program), await seller(client, program)
    alice_token = bearer((await tokens_for(client, program, alice["id"]))["access_token"])
    bob_token = bearer((await tokens_for(client, program, bob["id"]))["access_token"])
    claim_body = {"invoice_number": "INV-883", "invoice_date": "2026-06-01",
                  "amount": {"amount": 45_000, "currency": "USD"}, "product": "ThermoPro 200"}
    filed = await client.post("/v1/me/claims", json=claim_body, headers={**alice_token, "Idempotency-Key": "c1"})
    assert filed.status_code == 201 and filed.json()["status"] == "pending"
    replay = await client.post("/v1/me/claims", json=claim_body, headers={**alice_token, "Idempotency-Key": "c1"})
    assert replay.json() == filed.json() and replay.headers["idempotent-replayed"] == "true"
    dup = await client.post("/v1/me/claims", json={**claim_body, "invoice_number": "inv-883"},
                            headers={**bob_token, "Idempotency-Key": "c1"})
    assert dup.json()["status"] == "duplicate" and dup.json()["duplicate_of"] == filed.json()["id"]
    # Bob cannot read Alice's claim.
    assert (await client.get(f"/v1/me/claims/{filed.json()['id']}", headers=bob_token)).status_code == 404

    approved = await client.post(f"/v1/claims/{filed.json()['id']}/approve", headers=program.headers)
    assert approved.json()["status"] == "approved" and approved.json()["activity_id"]
    twice = await client.post(f"/v1/claims/{filed.json()['id']}/approve", headers=program.headers)
    assert twice.status_code == 409
    refused = await client.post(f"/v1/claims/{dup.json()['id']}/approve", headers=program.headers)
    assert refused.status_code == 409
    rejected = await client.post(f"/v1/claims/{dup.json()['id']}/reject", json={"reason": "Invoice already claimed"},
                                 headers=program.headers)
    assert rejected.json()["status"] == "rejected"
    assert [await balance(client, program, p["id"]) for p in (alice, bob)] == [450, 0]
    alice_feed = [i["text"] for i in (await client.get("/v1/me/feed", headers=alice_token)).json()["items"]]
    assert alice_feed == ["+450 points: Claimed sale", "Claim INV-883 approved"]
    bob_feed = [i["text"] for i in (await client.get("/v1/me/feed", headers=bob_token)).json()["items"]]
    assert bob_feed == ["Claim inv-883 rejected: Invoice already claimed"]
    pending = (await client.get("/v1/claims", params={"status": "approved"}, headers=program.headers)).json()
    assert [c["id"] for c in pending["items"]] == [filed.json()["id"]]


async def test_applying_a_rule_honours_its_idempotency_key(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    rep = await seller(client, program)
    await send(client, program, event("sale", rep["external_id"], T0, amount=500),
               event("sale", rep["external_id"], T0 + timedelta(days=10), amount=700))
    live = await rule(client, program, activity_type="sale", award={"type": "fixed", "points": 5})
    headers = {**program.headers, "Idempotency-Key": random_ref("apply")}
    first_week = {"starts_at": iso(T0 - timedelta(days=1)), "ends_at": iso(T0 + timedelta(days=2))}
    applied = await client.post(f"/v1/earning-rules/{live['id']}/apply", json=first_week, headers=headers)
    again = await client.post(f"/v1/earning-rules/{live['id']}/apply", json=first_week, headers=headers)
    assert applied.status_code == again.status_code == 200 and applied.json()["points_awarded"] == 5
    assert again.json() == applied.json() and again.headers["Idempotent-Replayed"] == "true"
    everything = {"starts_at": iso(T0 - timedelta(days=1)), "ends_at": iso(T0 + timedelta(days=30))}
    reused = await client.post(f"/v1/earning-rules/{live['id']}/apply", json=everything, headers=headers)
    assert (reused.status_code, reused.json()["code"]) == (422, "idempotency_key_reused")
    assert await balance(client, program, rep["id"]) == 5


async def test_a_claim_retried_after_a_crash_files_no_second_claim(client, redis) -> None:  # type: ignore[no-untyped-def]
    import json

    from api.auth import Principal
    from api.idempotency import idem_for

    program = await new_program(client)
    alice = await seller(client, program)
    token = bearer((await tokens_for(client, program, alice["id"]))["access_token"])
    body = {"invoice_number": random_ref("INV"), "invoice_date": "2026-06-01",
            "amount": {"amount": 9_000, "currency": "USD"}, "product": "ThermoPro 200"}
    key = random_ref("claim")
    filed = await client.post("/v1/me/claims", json=body, headers={**token, "Idempotency-Key": key})
    assert filed.status_code == 201, filed.text
    # The worker died after writing the claim and before recording the answer for the key.
    principal = Principal(kind="participant", program_id=program.id, subject_id=alice["id"])
    await redis.delete(idem_for(principal, key, "POST", "/v1/me/claims", json.dumps(body).encode()).key)

    retried = await client.post("/v1/me/claims", json=body, headers={**token, "Idempotency-Key": key})
    assert retried.status_code == 201, retried.text
    assert (retried.json()["id"], retried.json()["status"]) == (filed.json()["id"], "pending")
    mine = (await client.get("/v1/me/claims", headers=token)).json()["items"]
    assert [c["id"] for c in mine] == [filed.json()["id"]]


async def test_tenure_counts_from_the_enrolment_date_given_on_create_update_and_import(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    # Seasoned reps earn for results; a whole salesforce imported today is not "new".
    await rule(client, program, activity_type="deal_registered", award={"type": "fixed", "points": 100},
               participants={"min_tenure_days": 365})
    veteran = await seller(client, program, enrolled_at="2023-02-01T00:00:00Z")
    newcomer = await seller(client, program)
    promoted = await seller(client, program)
    changed = await client.patch(f"/v1/participants/{promoted['id']}", json={"enrolled_at": "2024-01-10T09:00:00Z"},
                                 headers=program.headers)
    assert changed.status_code == 200 and changed.json()["enrolled_at"] == "2024-01-10T09:00:00Z"
    imported = (await client.post("/v1/participants/import", headers=program.headers, json={
        "csv": "external_id,display_name,enrolled_at\nrep-imported,Ola Berg,2022-05-03\nrep-bad,Bo,someday\n"})).json()
    assert [(r["external_id"], r["status"]) for r in imported["participants"]] == [("rep-imported", "created")]
    assert [e["row"] for e in imported["errors"]] == [3]
    ola = imported["participants"][0]["id"]
    view = (await client.get(f"/v1/participants/{ola}", headers=program.headers)).json()
    assert view["enrolled_at"] == "2022-05-03T00:00:00Z"
    assert newcomer["enrolled_at"] == newcomer["created_at"]
    now = datetime.now(timezone.utc) - timedelta(hours=1)
    report = await send(client, program, *[event("deal_registered", who, now)
                                           for who in (veteran["external_id"], newcomer["external_id"],
                                                       promoted["external_id"], "rep-imported")])
    earned = [sum(a["points"] for a in item.get("awards", [])) for item in report["items"]]
    assert earned == [100, 0, 100, 100]


async def test_a_program_suspended_during_a_crm_batch_keeps_the_rows_of_what_it_paid_and_pays_the_rest_once(
        client, redis) -> None:  # type: ignore[no-untyped-def]
    from kernel.errors import ProgramSuspended
    from programs.activities import ActivityIn
    from programs.awards import run_activities
    from programs.tables import Activity, Award
    from wallet.store import CALL_BATCH, WalletStore

    class SuspendedAfterTheFirstCall(WalletStore):
        """The operator suspends the program while the batch's first awards are paid."""

        async def _award_batch(self, program_id, specs):  # type: ignore[no-untyped-def]
            answered = await super()._award_batch(program_id, specs)
            await self.set_program_config(program_id, suspended="1")
            return answered

    program = await new_program(client)
    jill = await seller(client, program)
    await rule(client, program, activity_type="sale",
               award={"type": "per_unit", "attribute": "amount", "unit": 100, "points_per_unit": 1})
    events = [event("sale", jill["external_id"], T0 + timedelta(minutes=i), ext=f"INV-{i}", amount=100)
              for i in range(CALL_BATCH * 2)]
    batch = [ActivityIn(external_id=e["external_id"], type="sale", participant_external_id=e["participant_external_id"],
                        occurred_at=T0 + timedelta(minutes=i), attributes=e["attributes"]) for i, e in enumerate(events)]
    with pytest.raises(ProgramSuspended):
        await run_activities(SuspendedAfterTheFirstCall(redis), program.id, batch)
    # The first call's awards were paid: their rows are there for a return to read.
    paid = await Award.select(Award.activity_id, Award.points).where(Award.program_id == program.id).run()
    assert len(paid) == CALL_BATCH and all(row["points"] == 1 for row in paid)
    assert await balance(client, program, jill["id"]) == CALL_BATCH
    assert await Activity.count().where((Activity.program_id == program.id) & Activity.evaluated_at.is_null()) \
        == CALL_BATCH * 2
    # Reactivated, the same batch sent again pays the rest, and nothing twice.
    await WalletStore(redis).set_program_config(program.id, suspended="0")
    again = await send(client, program, *events)
    assert again["duplicates"] == CALL_BATCH * 2
    assert await balance(client, program, jill["id"]) == CALL_BATCH * 2
    # The report says what the resend paid: the second half's awards, listed on their items;
    # the first half's awards listed as paid before.
    assert again["points_awarded"] == CALL_BATCH
    listed = [[(a["points"], a.get("already_awarded", False)) for a in item["awards"]] for item in again["items"]]
    assert listed == [[(1, True)]] * CALL_BATCH + [[(1, False)]] * CALL_BATCH
    assert await Award.count().where(Award.program_id == program.id) == CALL_BATCH * 2
