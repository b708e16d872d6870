"""Idempotency-Key semantics that span requests: a crashed request's marker, a slow one's."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from api.auth import Principal
from api.idempotency import idem_for
from tests.factories import OPERATOR, available, new_participant, new_program, random_ref
from kernel import keys as kernel_keys
from kernel.errors import IdempotencyKeyInFlight
from kernel.idempotency import IN_FLIGHT_TTL_MS, Idem, in_flight, once, pinned_id

pytestmark = pytest.mark.sql


@pytest.mark.redis_bound  # the in-flight marker in Redis
async def test_a_retry_after_a_crash_is_told_when_to_come_back_and_runs_within_seconds(client, redis) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    path = f"/v1/programs/{program.id}/fundings/offline"
    body = {"amount": {"amount": 5_000, "currency": "USD"}, "reference": "Wire #9"}
    key = random_ref("wire")
    # The first attempt claimed the key and its worker died before answering.
    crashed = idem_for(Principal(kind="operator"), key, "POST", path, json.dumps(body).encode())
    assert await in_flight(redis, crashed) is None

    busy = await client.post(path, json=body, headers={**OPERATOR, "Idempotency-Key": key})
    assert (busy.status_code, busy.json()["code"]) == (409, "idempotency_key_in_flight")
    wait = int(busy.headers["Retry-After"])
    assert 1 <= wait <= 10

    await asyncio.sleep(wait + 0.5)
    retried = await client.post(path, json=body, headers={**OPERATOR, "Idempotency-Key": key})
    assert retried.status_code == 201, retried.text


@pytest.mark.redis_bound  # the in-flight marker in Redis
async def test_a_slow_request_keeps_its_key_past_the_marker_lifetime(redis) -> None:  # type: ignore[no-untyped-def]
    idem = idem_for(Principal(kind="operator"), random_ref("slow"), "POST", "/v1/slow", b"{}")
    runs = 0

    async def slow() -> dict[str, int]:
        nonlocal runs
        runs += 1
        await asyncio.sleep(IN_FLIGHT_TTL_MS / 1000 * 1.6)
        return {"n": runs}

    first = asyncio.create_task(once(redis, idem, 60, slow, dict[str, int]))
    await asyncio.sleep(IN_FLIGHT_TTL_MS / 1000 * 1.3)  # past the marker's own lifetime
    with pytest.raises(IdempotencyKeyInFlight):
        await once(redis, idem, 60, slow, dict[str, int])
    assert await first == ({"n": 1}, False)
    assert await once(redis, idem, 60, slow, dict[str, int]) == ({"n": 1}, True)
    assert runs == 1


async def test_a_batch_of_grants_honours_its_request_key(client, redis) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    person = await new_participant(client, program)
    key = random_ref("batch")
    headers = {**program.headers, "Idempotency-Key": key}

    def batch(item_id: str) -> dict[str, Any]:
        return {"grants": [{"idempotency_id": item_id, "participant_id": person["id"], "points": 10, "reason": "x"}]}

    first = await client.post("/v1/points/grants/batch", json=batch("a"), headers=headers)
    again = await client.post("/v1/points/grants/batch", json=batch("a"), headers=headers)
    assert first.status_code == again.status_code == 200 and first.json()["applied"] == 1
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"

    other = await client.post("/v1/points/grants/batch", json=batch("b"), headers=headers)
    assert (other.status_code, other.json()["code"]) == (422, "idempotency_key_reused")
    assert await available(client, program, person["id"]) == 10

    # While a first attempt still holds a key, its duplicate is told to come back.
    held = random_ref("batch")
    principal = Principal(kind="admin", program_id=program.id)
    assert await in_flight(redis, idem_for(principal, held, "POST", "/v1/points/grants/batch",
                                           json.dumps(batch("c")).encode())) is None
    busy = await client.post("/v1/points/grants/batch", json=batch("c"),
                             headers={**program.headers, "Idempotency-Key": held})
    assert (busy.status_code, busy.json()["code"]) == (409, "idempotency_key_in_flight")
    assert int(busy.headers["Retry-After"]) >= 1
    assert await available(client, program, person["id"]) == 10


async def test_an_answer_recorded_before_the_domain_module_still_replays(redis) -> None:  # type: ignore[no-untyped-def]
    """Records made when the API layer kept the HTTP status beside the body replay their body."""
    idem = Idem(key=kernel_keys.idempotency(random_ref("prg"), "admin", "old"), fingerprint="f")
    await redis.set(idem.key, json.dumps({"fp": "f", "r": {"status": 201, "body": {"n": 7}}}))

    async def never() -> dict[str, int]:
        raise AssertionError("a recorded answer must not run again")

    assert await once(redis, idem, 60, never, dict[str, int]) == ({"n": 7}, True)


async def test_concurrent_first_attempts_pin_one_id_for_their_key_and_it_lapses_with_the_record(redis) -> None:  # type: ignore[no-untyped-def]
    idem = idem_for(Principal(kind="operator"), random_ref("pin"), "POST", "/v1/me/redemptions", b"{}")
    other = idem_for(Principal(kind="operator"), random_ref("pin"), "POST", "/v1/me/redemptions", b"{}")
    ids = await asyncio.gather(*(pinned_id(redis, idem, "ord", 60, suffix="order") for _ in range(20)))
    assert len(set(ids)) == 1 and ids[0].startswith("ord")
    assert await pinned_id(redis, other, "ord", 60, suffix="order") != ids[0]
    assert 0 < await redis.ttl(f"{idem.key}:order") <= 60
