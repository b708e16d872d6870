"""A participant's seed pair: committed first, revealed on rotation, verifiable after."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections import Counter, defaultdict
from typing import Any

import httpx
import pytest

from games.fairness import verify_spin_proof
from games.tables import SeedPair
from games import keys as game_keys
from tests.factories import (bearer, launched_wheel, new_participant, new_program, random_ref, spinning_participant,
                             tokens_for)

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
    program = await new_program(client)
    person = await new_participant(client, program)
    me = bearer((await tokens_for(client, program, person["id"]))["access_token"])
    # What a process killed between claiming the creation and writing the pair leaves behind,
    # once its claim has expired: a hash with no pair in it.
    await redis.hset(game_keys.seed_pair(program.id, person["id"]), "creating", "1")
    views = await asyncio.gather(*[client.get("/v1/me/fairness", headers=me) for _ in range(5)])
    assert all(v.status_code == 200 for v in views)
    assert len({v.json()["server_seed_hash"] for v in views}) == 1


async def test_an_unrevealed_server_seed_is_sealed_in_redis_and_sql_and_spins_verify_after_rotation(client, redis) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    campaign_id = await launched_wheel(client, program)
    person, me = await spinning_participant(client, program, 100)
    for n in range(3):
        spun = await client.post(f"/v1/me/campaigns/{campaign_id}/spins", headers={**me, "Idempotency-Key": f"s{n}"})
        assert spun.status_code == 201, spun.text
    committed = (await client.get("/v1/me/fairness", headers=me)).json()

    # What a local process reading the stores sees while the pair is in use.
    def texts(values: Any) -> list[str]:
        return [v.decode() if isinstance(v, bytes) else str(v) for v in values]

    in_redis = texts((await redis.hgetall(game_keys.seed_pair(program.id, person))).values())
    in_sql = [r["server_seed"] for r in await SeedPair.select(SeedPair.server_seed).where(
        SeedPair.participant_id == person).run()]
    assert committed["server_seed_hash"] in in_redis and len(in_sql) == 1

    rotated = (await client.post("/v1/me/fairness/rotate", headers=me)).json()
    seed = rotated["revealed"]["server_seed"]
    assert hashlib.sha256(seed.encode()).hexdigest() == committed["server_seed_hash"]
    assert not [v for v in in_redis + in_sql if seed in v], "the unrevealed seed was readable at rest"
    # The new pair is sealed too: nothing in Redis or SQL hashes to its commitment.
    new_hash = rotated["current"]["server_seed_hash"]
    now_redis = texts((await redis.hgetall(game_keys.seed_pair(program.id, person))).values())
    now_sql = [r["server_seed"] for r in await SeedPair.select(SeedPair.server_seed).where(
        (SeedPair.participant_id == person) & (SeedPair.status == "active")).run()]
    assert len(now_sql) == 1
    assert all(hashlib.sha256(v.encode()).hexdigest() != new_hash for v in now_redis + now_sql)

    history = (await client.get("/v1/me/spins", headers=me)).json()["items"]
    assert len(history) == 3
    assert all(r["proof"]["server_seed"] == seed and verify_spin_proof(r["proof"]).ok for r in history)


async def test_concurrent_rotations_client_seeds_and_spins_leave_every_spin_verifiable(client, live_server) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    campaign_id = await launched_wheel(client, program)
    person, me = await spinning_participant(client, program, 10_000)
    spins: list[dict[str, Any]] = []
    rotations: list[dict[str, Any]] = []

    async def worker(http: httpx.AsyncClient, number: int) -> None:
        for step in range(8):
            what = (number + step) % 3
            if what == 0:
                answer = await http.post("/v1/me/fairness/rotate", headers=me)
            elif what == 1:
                answer = await http.put("/v1/me/fairness/client-seed", json={"client_seed": random_ref("mine")},
                                        headers=me)
            else:
                answer = await http.post(f"/v1/me/campaigns/{campaign_id}/spins",
                                         headers={**me, "Idempotency-Key": f"w{number}-{step}"})
            assert answer.status_code in (200, 201), answer.text
            (spins if what == 2 else rotations).append(answer.json())
            await asyncio.sleep(random.uniform(0, 0.005))

    async with httpx.AsyncClient(base_url=live_server.url, timeout=120) as http:
        await asyncio.gather(*(worker(http, n) for n in range(24)))
        rotations.append((await http.post("/v1/me/fairness/rotate", headers=me)).json())  # reveal the last pair
    assert len(spins) == 64 and len(rotations) == 129

    # Each retired pair was revealed once, and at the nonce its spins left.
    revealed = [r["revealed"] for r in rotations]
    by_hash = {r["server_seed_hash"]: r for r in revealed}
    assert len(by_hash) == len(revealed), "a pair was revealed twice"
    nonces: dict[str, list[int]] = defaultdict(list)
    for body in spins:
        nonces[body["proof"]["server_seed_hash"]].append(body["proof"]["nonce"])
    for digest, used in nonces.items():
        assert digest in by_hash, "a spin's pair was never revealed"
        assert sorted(used) == list(range(by_hash[digest]["nonce"])), (used, by_hash[digest]["nonce"])
    # Every spin verifies against its revealed seed.
    history = (await client.get("/v1/me/spins?limit=100", headers=me)).json()["items"]
    assert len(history) == 64
    for record in history:
        assert record["proof"]["server_seed"] == by_hash[record["proof"]["server_seed_hash"]]["server_seed"]
        assert verify_spin_proof(record["proof"]).ok, record["proof"]
    # SQL agrees: one pair in use, every other one revealed once.
    rows = await SeedPair.select(SeedPair.status, SeedPair.server_seed_hash, SeedPair.client_seed).where(
        SeedPair.participant_id == person).run()
    assert Counter(r["status"] for r in rows) == {"active": 1, "revealed": len(revealed)}
    # ...and each revealed row holds the client seed its spins used.
    for row in rows:
        if row["status"] == "revealed":
            assert row["client_seed"] == by_hash[row["server_seed_hash"]]["client_seed"]


async def test_a_pair_an_earlier_version_kept_in_clear_is_sealed_at_its_next_spin(client, redis) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    campaign_id = await launched_wheel(client, program)
    person, me = await spinning_participant(client, program, 100)
    await client.get("/v1/me/fairness", headers=me)
    # What the earlier version kept in Redis: the same pair, its seed in clear.
    seed = "5" * 64
    key = game_keys.seed_pair(program.id, person)
    await redis.hdel(key, "sealed")
    await redis.hset(key, mapping={"server_seed": seed, "hash": hashlib.sha256(seed.encode()).hexdigest()})
    spun = await client.post(f"/v1/me/campaigns/{campaign_id}/spins", headers={**me, "Idempotency-Key": "old"})
    assert spun.status_code == 201, spun.text
    fields = {k.decode() if isinstance(k, bytes) else k for k in await redis.hkeys(key)}
    assert "server_seed" not in fields and "sealed" in fields
    rotated = (await client.post("/v1/me/fairness/rotate", headers=me)).json()
    assert rotated["revealed"]["server_seed"] == seed and rotated["revealed"]["nonce"] == 1
    record = (await client.get("/v1/me/spins", headers=me)).json()["items"][0]
    assert record["proof"]["server_seed"] == seed and verify_spin_proof(record["proof"]).ok
