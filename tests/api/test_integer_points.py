"""Points are JSON integers everywhere a body takes them (CONTRACT.md, v1 additions).

Litestar converts bodies with msgspec's lax rules, under which `"1e3"` granted 1,000
points; api/strict_body.py checks every JSON body strictly first."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import grant, new_participant, new_program, random_ref

pytestmark = pytest.mark.sql

NOT_INTEGERS = ["100", "1e3", 1.0, 100.5, True, None]


async def _balance(client: Any, program: Any, participant_id: str) -> int:
    response = await client.get(f"/v1/participants/{participant_id}/wallet", headers=program.headers)
    assert response.status_code == 200, response.text
    return int(response.json()["available"])


@pytest.mark.parametrize("points", NOT_INTEGERS)
async def test_grant_refuses_points_that_are_not_json_integers(client: Any, points: Any) -> None:
    program = await new_program(client)
    person = await new_participant(client, program)
    response = await client.post(
        "/v1/points/grants", json={"participant_id": person["id"], "points": points, "reason": "r"},
        headers={**program.headers, "Idempotency-Key": random_ref()})
    assert response.status_code in (400, 422), response.text
    problem = response.json()
    assert problem["code"] == "validation_error"
    assert [p["name"] for p in problem["invalid_params"]] == ["points"]
    assert await _balance(client, program, person["id"]) == 0


async def test_batch_item_points_are_strict_too(client: Any) -> None:
    program = await new_program(client)
    person = await new_participant(client, program)
    body = {"grants": [{"idempotency_id": "a", "participant_id": person["id"], "points": 5, "reason": "r"},
                       {"idempotency_id": "b", "participant_id": person["id"], "points": "1e3", "reason": "r"}]}
    response = await client.post("/v1/points/grants/batch", json=body,
                                 headers={**program.headers, "Idempotency-Key": random_ref()})
    assert response.status_code in (400, 422), response.text
    assert response.json()["invalid_params"][0]["name"] == "grants[1].points"
    assert await _balance(client, program, person["id"]) == 0


async def test_integer_points_still_work(client: Any) -> None:
    program = await new_program(client)
    person = await new_participant(client, program)
    assert (await grant(client, program, person["id"], 1000)).status_code == 201
    assert await _balance(client, program, person["id"]) == 1000
