"""Programs never see each other: another program's ids answer 404, as if they did not exist."""

from __future__ import annotations

import pytest

from tests.factories import bearer, grant, new_participant, new_program, random_ref, tokens_for

pytestmark = pytest.mark.sql


async def two_programs(client):  # type: ignore[no-untyped-def]
    ours, theirs = await new_program(client), await new_program(client)
    their_person = await new_participant(client, theirs)
    team = (await client.post("/v1/teams", json={"name": random_ref("team")}, headers=theirs.headers)).json()
    key = (await client.post("/v1/admin-keys", json={"name": "ops"}, headers=theirs.headers)).json()
    return ours, theirs, their_person, team, key


async def test_every_id_of_another_program_answers_404(client) -> None:  # type: ignore[no-untyped-def]
    ours, _, person, team, key = await two_programs(client)
    pid = person["id"]
    attempts = [
        ("GET", f"/v1/participants/{pid}", None),
        ("PATCH", f"/v1/participants/{pid}", {"segment": "gold"}),
        ("POST", f"/v1/participants/{pid}/deactivate", None),
        ("POST", f"/v1/participants/{pid}/tokens", None),
        ("GET", f"/v1/participants/{pid}/wallet", None),
        ("GET", f"/v1/participants/{pid}/transactions", None),
        ("GET", f"/v1/teams/{team['id']}", None),
        ("GET", f"/v1/teams/{team['id']}/members", None),
        ("DELETE", f"/v1/admin-keys/{key['id']}", None),
    ]
    for method, path, body in attempts:
        response = await client.request(method, path, json=body, headers=ours.headers)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["code"] == "not_found"
    for path in ("/v1/points/grants", "/v1/points/deductions"):
        response = await client.post(path, json={"participant_id": pid, "points": 1, "reason": "x"},
                                     headers={**ours.headers, "Idempotency-Key": random_ref()})
        assert response.status_code == 404, response.text
    batch = await client.post("/v1/points/grants/batch", headers={**ours.headers, "Idempotency-Key": random_ref()},
                              json={"grants": [{"idempotency_id": "a", "participant_id": pid, "points": 1,
                                                "reason": "x"}]})
    assert batch.json()["items"][0]["status"] == 404


async def test_lists_show_only_the_callers_program(client) -> None:  # type: ignore[no-untyped-def]
    ours, theirs, person, _, _ = await two_programs(client)
    mine = await new_participant(client, ours)
    listed = (await client.get("/v1/participants", headers=ours.headers)).json()["items"]
    assert [p["id"] for p in listed] == [mine["id"]]
    assert (await client.get("/v1/teams", headers=ours.headers)).json()["items"] == []


async def test_a_participant_token_reaches_only_its_own_data(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    alice, bob = await new_participant(client, program), await new_participant(client, program)
    await grant(client, program, bob["id"], 70)
    alice_token = bearer((await tokens_for(client, program, alice["id"]))["access_token"])
    wallet = (await client.get("/v1/me/wallet", headers=alice_token)).json()
    assert wallet["available"] == 0
    me = (await client.get("/v1/me", headers=alice_token)).json()
    assert me["id"] == alice["id"]
    for path in (f"/v1/participants/{bob['id']}", f"/v1/participants/{bob['id']}/wallet", "/v1/participants"):
        response = await client.get(path, headers=alice_token)
        assert response.status_code == 403, path
    response = await client.post("/v1/points/grants", headers={**alice_token, "Idempotency-Key": "k"},
                                 json={"participant_id": alice["id"], "points": 5, "reason": "self-service"})
    assert response.status_code == 403


async def test_a_revoked_admin_key_fails_at_once(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    created = (await client.post("/v1/admin-keys", json={"name": "ci"}, headers=program.headers)).json()
    second = bearer(created["api_key"])
    assert (await client.get("/v1/program", headers=second)).status_code == 200
    revoked = await client.delete(f"/v1/admin-keys/{created['id']}", headers=program.headers)
    assert revoked.status_code == 204
    response = await client.get("/v1/program", headers=second)
    assert response.status_code == 401
    assert response.json()["code"] == "unauthenticated"
    assert (await client.get("/v1/program", headers=program.headers)).status_code == 200
    listed = (await client.get("/v1/admin-keys", headers=program.headers)).json()["items"]
    assert [k["revoked_at"] is not None for k in listed if k["id"] == created["id"]] == [True]
    assert all("api_key" not in k and "key_hash" not in k for k in listed)


async def test_a_wrong_secret_for_a_real_key_id_is_refused(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    key_id = program.admin_key.split(".")[1]
    response = await client.get("/v1/program", headers=bearer(f"rwk.{key_id}.not-the-secret"))
    assert response.status_code == 401


async def test_a_deactivated_participants_tokens_fail_at_once(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    person = await new_participant(client, program)
    tokens = await tokens_for(client, program, person["id"])
    access = bearer(tokens["access_token"])
    assert (await client.get("/v1/me/wallet", headers=access)).status_code == 200
    deactivated = await client.post(f"/v1/participants/{person['id']}/deactivate", headers=program.headers)
    assert deactivated.json()["status"] == "deactivated"
    assert (await client.get("/v1/me/wallet", headers=access)).status_code == 401
    refresh = await client.post("/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert refresh.status_code == 401
    # Reactivated, the old access token works again only until it expires; new logins work.
    await client.patch(f"/v1/participants/{person['id']}", json={"status": "active"}, headers=program.headers)
    fresh = await tokens_for(client, program, person["id"])
    assert (await client.get("/v1/me/wallet", headers=bearer(fresh["access_token"]))).status_code == 200


async def test_operator_key_creates_programs_and_others_cannot(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client, point_value_cents=2, currency="EUR", point_name="Stars")
    own = (await client.get("/v1/program", headers=program.headers)).json()
    assert own["point_value"] == {"amount": 2, "currency": "EUR"}
    assert own["point_name"] == "Stars"
    response = await client.post("/v1/programs", json={"name": "x"}, headers=program.headers)
    assert response.status_code == 403
    assert (await client.post("/v1/programs", json={"name": "x"}, headers=bearer("rwo_wrong"))).status_code == 401
    assert (await client.post("/v1/programs", json={"name": "x"})).status_code == 401
