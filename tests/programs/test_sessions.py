"""Refresh tokens rotate on every use; a replayed one revokes the whole login."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app

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


@pytest.fixture
async def short_grace(settings, migrated) -> AsyncIterator[AsyncTestClient]:  # type: ignore[no-untyped-def]
    """The app with a one-second window for retried refreshes, to see what happens after it."""
    tuned = msgspec.structs.replace(settings, refresh_reuse_grace_seconds=1, journal_consumer=False,
                                    background_tasks=False)
    async with AsyncTestClient(app=create_app(tuned), base_url="http://rw.test") as other:
        yield other


async def refresh(client: Any, token: str) -> Any:
    return await client.post("/v1/auth/refresh", json={"refresh_token": token})


async def test_reusing_a_spent_refresh_token_after_the_grace_window_revokes_the_family(short_grace) -> None:  # type: ignore[no-untyped-def]
    client = short_grace
    program = await new_program(client)
    person = await new_participant(client, program)
    first = await tokens_for(client, program, person["id"])
    second = (await refresh(client, first["refresh_token"])).json()
    await asyncio.sleep(1.3)
    replay = await refresh(client, first["refresh_token"])
    assert replay.status_code == 401
    # The thief's replay also kills the legitimate holder's newer token.
    after = await refresh(client, second["refresh_token"])
    assert after.status_code == 401
    # Another login of the same participant is a different family and keeps working.
    other = await tokens_for(client, program, person["id"])
    assert (await refresh(client, other["refresh_token"])).status_code == 200


async def test_a_refresh_retried_within_the_grace_window_answers_the_same_new_token(client, redis) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    person = await new_participant(client, program)
    first = await tokens_for(client, program, person["id"])
    answered = await refresh(client, first["refresh_token"])
    assert answered.status_code == 200
    # The answer was lost (a timeout): the client retries with the same token.
    retried = await refresh(client, first["refresh_token"])
    assert retried.status_code == 200, retried.text
    assert retried.json()["refresh_token"] == answered.json()["refresh_token"]
    me = await client.get("/v1/me", headers=bearer(retried.json()["access_token"]))
    assert me.json()["id"] == person["id"]
    # The next token is kept sealed, never in clear, and only for the window.
    stored = [(k, await redis.get(k)) async for k in redis.scan_iter(match=f"rw:{{p:{program.id}}}:rt-next:*")]
    assert len(stored) == 1 and answered.json()["refresh_token"].encode() not in stored[0][1]
    assert 0 < await redis.ttl(stored[0][0]) <= 10
    # The login lives on: the new token rotates as usual.
    assert (await refresh(client, retried.json()["refresh_token"])).status_code == 200


async def test_concurrent_uses_of_one_refresh_token_issue_at_most_one_new_token(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    person = await new_participant(client, program)
    first = await tokens_for(client, program, person["id"])
    answers = await asyncio.gather(*[refresh(client, first["refresh_token"]) for _ in range(5)])
    assert all(a.status_code in (200, 401) for a in answers)
    issued = {a.json()["refresh_token"] for a in answers if a.status_code == 200}
    assert len(issued) <= 1


async def test_garbage_and_access_tokens_are_not_refresh_tokens(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    person = await new_participant(client, program)
    pair = await tokens_for(client, program, person["id"])
    for token in ("nope", pair["access_token"][:200]):
        response = await client.post("/v1/auth/refresh", json={"refresh_token": token})
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")


async def test_reactivating_a_participant_does_not_revive_their_earlier_tokens(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    person = await new_participant(client, program)
    old = await tokens_for(client, program, person["id"])
    assert (await client.get("/v1/me", headers=bearer(old["access_token"]))).status_code == 200
    deactivated = await client.post(f"/v1/participants/{person['id']}/deactivate", headers=program.headers)
    assert deactivated.json()["status"] == "deactivated"
    reactivated = await client.patch(f"/v1/participants/{person['id']}", json={"status": "active"},
                                     headers=program.headers)
    assert reactivated.status_code == 200 and reactivated.json()["status"] == "active"
    assert (await client.get("/v1/me", headers=bearer(old["access_token"]))).status_code == 401
    assert (await refresh(client, old["refresh_token"])).status_code == 401
    # Tokens issued after the reactivation work, and keep working across a profile edit.
    fresh = await tokens_for(client, program, person["id"])
    renamed = await client.patch(f"/v1/participants/{person['id']}", json={"display_name": "Pat Renamed"},
                                 headers=program.headers)
    assert renamed.status_code == 200
    assert (await client.get("/v1/me", headers=bearer(fresh["access_token"]))).status_code == 200
    rotated = await refresh(client, fresh["refresh_token"])
    assert rotated.status_code == 200
    assert (await client.get("/v1/me", headers=bearer(rotated.json()["access_token"]))).status_code == 200
