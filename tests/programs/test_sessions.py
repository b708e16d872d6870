"""Refresh tokens rotate on every use; a replayed one revokes the whole login."""

from __future__ import annotations

import asyncio

import pytest

from tests.factories import bearer, new_participant, new_program, tokens_for

pytestmark = pytest.mark.sql


async def test_refresh_rotates_and_the_new_access_token_works(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    person = await new_participant(client, program)
    first = await tokens_for(client, program, person["id"])
    assert first["token_type"] == "Bearer" and 0 < first["expires_in"] <= 900
    response = await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert response.status_code == 200, response.text
    second = response.json()
    assert second["refresh_token"] != first["refresh_token"]
    me = await client.get("/v1/me", headers=bearer(second["access_token"]))
    assert me.json()["id"] == person["id"]


async def test_reusing_a_spent_refresh_token_revokes_the_family(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    person = await new_participant(client, program)
    first = await tokens_for(client, program, person["id"])
    second = (await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})).json()
    replay = await client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]})
    assert replay.status_code == 401
    # The thief's replay also kills the legitimate holder's newer token.
    after = await client.post("/v1/auth/refresh", json={"refresh_token": second["refresh_token"]})
    assert after.status_code == 401
    # Another login of the same participant is a different family and keeps working.
    other = await tokens_for(client, program, person["id"])
    assert (await client.post("/v1/auth/refresh", json={"refresh_token": other["refresh_token"]})).status_code == 200


async def test_two_concurrent_uses_of_one_refresh_token_let_at_most_one_through(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    person = await new_participant(client, program)
    first = await tokens_for(client, program, person["id"])
    answers = await asyncio.gather(*[
        client.post("/v1/auth/refresh", json={"refresh_token": first["refresh_token"]}) for _ in range(5)
    ])
    assert sum(1 for a in answers if a.status_code == 200) <= 1
    assert all(a.status_code in (200, 401) for a in answers)


async def test_garbage_and_access_tokens_are_not_refresh_tokens(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    person = await new_participant(client, program)
    pair = await tokens_for(client, program, person["id"])
    for token in ("nope", pair["access_token"][:200]):
        response = await client.post("/v1/auth/refresh", json={"refresh_token": token})
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")
