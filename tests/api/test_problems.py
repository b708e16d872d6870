"""Bad input gets a clear problem document, changes nothing, and never a 500."""

from __future__ import annotations

import pytest

from tests.factories import grant, new_participant, new_program, random_ref

pytestmark = pytest.mark.sql


def assert_problem(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["code"] == code
    assert {"type", "title", "detail"} <= set(body)
    assert "Traceback" not in response.text
    return body


async def test_malformed_bodies_name_the_offending_field(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    person = await new_participant(client, program)
    headers = {**program.headers, "Idempotency-Key": random_ref()}
    body = assert_problem(await client.post("/v1/points/grants", headers=headers,
                                            json={"participant_id": person["id"], "points": "ten", "reason": "x"}),
                          400, "validation_error")
    assert body["invalid_params"][0]["name"] == "points"
    assert_problem(await client.post("/v1/points/grants", headers=headers, content=b"{not json"), 400,
                   "validation_error")
    assert_problem(await client.post("/v1/points/grants", headers=headers,
                                     json={"participant_id": person["id"], "points": 1, "reason": "x", "extra": 1}),
                   400, "validation_error")
    assert_problem(await client.post("/v1/participants", headers=program.headers, json={"display_name": "x"}),
                   400, "validation_error")
    wallet = (await client.get(f"/v1/participants/{person['id']}/wallet", headers=program.headers)).json()
    assert wallet["available"] == 0


async def test_bad_query_values_and_unknown_routes(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    assert_problem(await client.get("/v1/participants", params={"limit": 0}, headers=program.headers), 400,
                   "validation_error")
    assert_problem(await client.get("/v1/participants", params={"limit": "many"}, headers=program.headers), 400,
                   "validation_error")
    assert_problem(await client.get("/v1/participants", params={"cursor": "%%%"}, headers=program.headers), 422,
                   "validation_error")
    assert_problem(await client.get("/v1/nowhere", headers=program.headers), 404, "not_found")


async def test_idempotency_key_rules(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    person = await new_participant(client, program)
    body = {"participant_id": person["id"], "points": 3, "reason": "x"}
    assert_problem(await client.post("/v1/points/grants", headers=program.headers, json=body), 400,
                   "validation_error")
    assert_problem(await client.post("/v1/points/grants", headers={**program.headers, "Idempotency-Key": "x" * 256},
                                     json=body), 400, "validation_error")
    first = await grant(client, program, person["id"], 3, key="same")
    # Same body in another key order is the same request.
    replay = await client.post("/v1/points/grants", headers={**program.headers, "Idempotency-Key": "same"},
                               json={"reason": "test grant", "points": 3, "participant_id": person["id"]})
    assert replay.status_code == 201 and replay.json() == first.json()
    assert replay.headers["idempotent-replayed"] == "true"
    assert_problem(await grant(client, program, person["id"], 4, key="same"), 422, "idempotency_key_reused")
    # Keys belong to the caller: another program may use the same key for its own request.
    other = await new_program(client)
    someone = await new_participant(client, other)
    assert (await grant(client, other, someone["id"], 3, key="same")).status_code == 201


async def test_a_failed_deduction_is_replayed_as_the_same_failure(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    person = await new_participant(client, program)
    headers = {**program.headers, "Idempotency-Key": "ded-1"}
    body = {"participant_id": person["id"], "points": 10, "reason": "chargeback"}
    first = await client.post("/v1/points/deductions", headers=headers, json=body)
    assert_problem(first, 422, "insufficient_points")
    await grant(client, program, person["id"], 50)
    again = await client.post("/v1/points/deductions", headers=headers, json=body)
    assert_problem(again, 422, "insufficient_points")
    assert again.headers["idempotent-replayed"] == "true"


async def test_lone_surrogates_are_refused_not_stored(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    response = await client.post("/v1/participants", headers={**program.headers, "Content-Type": "application/json"},
                                 content=b'{"external_id": "x1", "display_name": "\\ud800"}')
    assert_problem(response, 400, "validation_error")
    listed = (await client.get("/v1/participants", headers=program.headers)).json()["items"]
    assert listed == []


async def test_a_csv_the_reader_cannot_parse_is_reported_not_a_500(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    csv = "external_id,display_name\nok-1,Ann\n" + "x" * 200_000 + ",Bob\n"
    response = await client.post("/v1/participants/import", json={"csv": csv}, headers=program.headers)
    assert response.status_code == 200
    report = response.json()
    assert report["created"] == 1 and report["errors"][0]["row"] == 3


async def test_values_a_database_cannot_hold_answer_400_not_500(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client, point_value_cents=1_000_000)
    nul = await client.post("/v1/activity-types", json={"name": "webinar", "description": "a\u0000b"},
                            headers=program.headers)
    assert nul.status_code in (201, 400) and nul.status_code != 500
    huge = await client.get("/v1/catalog/items", params={"max_points": 10**12, "min_points": 10**12, "q": "a\x00"},
                            headers=program.headers)
    assert huge.status_code == 200
