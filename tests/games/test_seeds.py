"""A participant's seed pair: committed first, revealed on rotation, verifiable after."""

from __future__ import annotations

import asyncio
import hashlib

import pytest

from tests.factories import bearer, new_participant, new_program, tokens_for

pytestmark = pytest.mark.sql


async def participant(client):  # type: ignore[no-untyped-def]
    program = await new_program(client)
    person = await new_participant(client, program)
    return program, bearer((await tokens_for(client, program, person["id"]))["access_token"])


async def test_the_pair_is_committed_once_and_the_rotation_reveals_what_was_committed(client) -> None:  # type: ignore[no-untyped-def]
    _, me = await participant(client)
    views = await asyncio.gather(*[client.get("/v1/me/fairness", headers=me) for _ in range(5)])
    assert len({v.json()["server_seed_hash"] for v in views}) == 1  # concurrent first looks agree
    first = views[0].json()
    assert first["nonce"] == 0 and 1 <= len(first["client_seed"]) <= 64
    rotated = (await client.post("/v1/me/fairness/rotate", headers=me)).json()
    revealed = rotated["revealed"]
    assert revealed["server_seed_hash"] == first["server_seed_hash"]
    assert hashlib.sha256(revealed["server_seed"].encode()).hexdigest() == first["server_seed_hash"]
    assert rotated["current"]["server_seed_hash"] != first["server_seed_hash"]
    assert rotated["current"]["client_seed"] == first["client_seed"]
    assert (await client.get("/v1/me/fairness", headers=me)).json() == rotated["current"]


async def test_changing_the_client_seed_rotates_the_pair(client) -> None:  # type: ignore[no-untyped-def]
    _, me = await participant(client)
    before = (await client.get("/v1/me/fairness", headers=me)).json()
    changed = await client.put("/v1/me/fairness/client-seed", json={"client_seed": "my lucky dealer 42"}, headers=me)
    assert changed.status_code == 200
    body = changed.json()
    assert body["current"]["client_seed"] == "my lucky dealer 42" and body["current"]["nonce"] == 0
    assert body["revealed"]["server_seed_hash"] == before["server_seed_hash"]
    for bad in ("", "x" * 65, "caf\u00e9"):
        response = await client.put("/v1/me/fairness/client-seed", json={"client_seed": bad}, headers=me)
        assert response.status_code == 400, bad


async def test_seeds_are_the_participants_own(client) -> None:  # type: ignore[no-untyped-def]
    program, me = await participant(client)
    _, other = await participant(client)
    mine = (await client.get("/v1/me/fairness", headers=me)).json()
    theirs = (await client.get("/v1/me/fairness", headers=other)).json()
    assert mine["server_seed_hash"] != theirs["server_seed_hash"]
    assert (await client.get("/v1/me/fairness", headers=program.headers)).status_code == 403


async def test_a_creator_that_died_half_way_does_not_leave_the_participant_without_a_pair(client, redis) -> None:  # type: ignore[no-untyped-def]
    from wallet import keys

    program = await new_program(client)
    person = await new_participant(client, program)
    me = bearer((await tokens_for(client, program, person["id"]))["access_token"])
    # What a process killed between claiming the creation and writing the pair leaves behind,
    # once its claim has expired: a hash with no pair in it.
    await redis.hset(keys.seed_pair(program.id, person["id"]), "creating", "1")
    views = await asyncio.gather(*[client.get("/v1/me/fairness", headers=me) for _ in range(5)])
    assert all(v.status_code == 200 for v in views)
    assert len({v.json()["server_seed_hash"] for v in views}) == 1
