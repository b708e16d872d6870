"""Four eyes: a manual move above the program's threshold waits for a second person, is
applied once when approved, never when rejected, and nobody decides their own."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import available, bearer, new_participant, new_program, random_ref

pytestmark = pytest.mark.sql


async def second_admin(client: Any, program: Any) -> dict[str, str]:
    made = await client.post("/v1/admin-keys", json={"name": "second pair of eyes"}, headers=program.headers)
    assert made.status_code == 201, made.text
    return bearer(made.json()["api_key"])


async def move(client: Any, headers: dict[str, str], kind: str, participant_id: str, points: int,
               key: str | None = None) -> Any:
    return await client.post(f"/v1/points/{kind}", headers={**headers, "Idempotency-Key": key or random_ref()},
                             json={"participant_id": participant_id, "points": points, "reason": "dealer bonus"})


async def test_a_grant_above_the_threshold_waits_and_is_applied_once_by_another_person(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client, approval_threshold_points=1000)
    person = await new_participant(client, program)
    other = await second_admin(client, program)
    assert (await move(client, program.headers, "grants", person["id"], 1000)).status_code == 201  # at the threshold
    asked = await move(client, program.headers, "grants", person["id"], 5000, key="big-bonus")
    assert asked.status_code == 202, asked.text
    request = asked.json()
    assert (request["status"], request["points"], request["kind"]) == ("pending", 5000, "grant")
    assert await available(client, program, person["id"]) == 1000
    again = await move(client, program.headers, "grants", person["id"], 5000, key="big-bonus")
    assert again.status_code == 202 and again.json()["id"] == request["id"]  # a retry files nothing twice

    own = await client.post(f"/v1/approvals/{request['id']}/approve", headers=program.headers)
    assert own.status_code == 403 and own.json()["code"] == "forbidden"
    assert await available(client, program, person["id"]) == 1000
    waiting = (await client.get("/v1/approvals", params={"status": "pending"}, headers=other)).json()["items"]
    assert [r["id"] for r in waiting] == [request["id"]]

    approved = await client.post(f"/v1/approvals/{request['id']}/approve", headers=other)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved" and approved.json()["transaction_id"]
    assert await available(client, program, person["id"]) == 6000
    twice = await client.post(f"/v1/approvals/{request['id']}/approve", headers=other)
    assert twice.status_code == 200 and twice.json()["transaction_id"] == approved.json()["transaction_id"]
    assert await available(client, program, person["id"]) == 6000
    late = await client.post(f"/v1/approvals/{request['id']}/reject", headers=other, json={"reason": "too late"})
    assert late.status_code == 409


async def test_a_rejected_deduction_moves_nothing_and_a_stale_one_fails_with_the_reason(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client, approval_threshold_points=100)
    person = await new_participant(client, program)
    other = await second_admin(client, program)
    assert (await move(client, program.headers, "grants", person["id"], 100)).status_code == 201
    at_threshold = await move(client, program.headers, "deductions", person["id"], 100)
    assert at_threshold.status_code == 201  # at the threshold: applied at once
    assert await available(client, program, person["id"]) == 0

    changed = await client.patch("/v1/program", json={"approval_threshold_points": 10}, headers=program.headers)
    assert changed.status_code == 200 and changed.json()["approval_threshold_points"] == 10
    assert (await move(client, program.headers, "grants", person["id"], 10)).status_code == 201
    big = (await move(client, program.headers, "deductions", person["id"], 50)).json()
    rejected = await client.post(f"/v1/approvals/{big['id']}/reject", headers=other, json={"reason": "not agreed"})
    assert rejected.json()["status"] == "rejected" and rejected.json()["decision_reason"] == "not agreed"
    assert (await client.post(f"/v1/approvals/{big['id']}/approve", headers=other)).status_code == 409
    assert await available(client, program, person["id"]) == 10

    stale = (await move(client, program.headers, "deductions", person["id"], 50)).json()
    failed = await client.post(f"/v1/approvals/{stale['id']}/approve", headers=other)
    assert failed.status_code == 200 and failed.json()["status"] == "failed"
    assert "available balance is 10" in failed.json()["decision_reason"]
    assert await available(client, program, person["id"]) == 10

    off = await client.patch("/v1/program", json={"approval_threshold_points": 0}, headers=program.headers)
    assert off.json().get("approval_threshold_points") is None
    assert (await move(client, program.headers, "grants", person["id"], 10_000)).status_code == 201
