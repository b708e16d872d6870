"""Many clients at once against a live server: no double spend, no double apply."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from tests.factories import OPERATOR, random_ref
from wallet.tables import LedgerEntry

pytestmark = pytest.mark.sql


async def setup_program(http: httpx.AsyncClient) -> tuple[dict[str, str], str]:
    created = (await http.post("/v1/programs", json={"name": random_ref("prg")}, headers=OPERATOR)).json()
    admin = {"Authorization": f"Bearer {created['admin_key']}"}
    person = (await http.post("/v1/participants", json={"external_id": random_ref(), "display_name": "Kai"},
                              headers=admin)).json()
    return admin, person["id"]


async def wait_for_ledger(participant_id: str, kind: str, count: int, timeout: float = 20.0) -> int:
    deadline = time.monotonic() + timeout
    seen = -1
    while time.monotonic() < deadline:
        seen = await LedgerEntry.count().where(
            (LedgerEntry.participant_id == participant_id) & (LedgerEntry.kind == kind)).run()
        if seen >= count:
            break
        await asyncio.sleep(0.1)
    return seen


async def test_200_concurrent_deductions_on_100_points_spend_exactly_100(live_server) -> None:  # type: ignore[no-untyped-def]
    limits = httpx.Limits(max_connections=200)
    async with httpx.AsyncClient(base_url=live_server.url, limits=limits, timeout=30) as http:
        admin, participant = await setup_program(http)
        granted = await http.post("/v1/points/grants", headers={**admin, "Idempotency-Key": random_ref()},
                                  json={"participant_id": participant, "points": 100, "reason": "seed"})
        assert granted.status_code == 201

        async def deduct_one(i: int) -> httpx.Response:
            return await http.post("/v1/points/deductions", headers={**admin, "Idempotency-Key": f"d-{i}"},
                                   json={"participant_id": participant, "points": 1, "reason": "race"})

        answers = await asyncio.gather(*[deduct_one(i) for i in range(200)])
        statuses = sorted(a.status_code for a in answers)
        assert statuses.count(201) == 100 and statuses.count(422) == 100, statuses
        assert {a.json()["code"] for a in answers if a.status_code == 422} == {"insufficient_points"}
        wallet = (await http.get(f"/v1/participants/{participant}/wallet", headers=admin)).json()
        assert wallet["available"] == 0
    assert await wait_for_ledger(participant, "deduction", 100) == 100
    await asyncio.sleep(0.3)
    assert await LedgerEntry.count().where(
        (LedgerEntry.participant_id == participant) & (LedgerEntry.kind == "deduction")).run() == 100


async def test_the_same_key_50_times_at_once_applies_once_with_identical_answers(live_server) -> None:  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(base_url=live_server.url, limits=httpx.Limits(max_connections=60),
                                 timeout=30) as http:
        admin, participant = await setup_program(http)
        headers = {**admin, "Idempotency-Key": random_ref("same")}
        body = {"participant_id": participant, "points": 7, "reason": "deal registered"}
        answers = await asyncio.gather(*[http.post("/v1/points/grants", headers=headers, json=body)
                                         for _ in range(50)])
        assert {a.status_code for a in answers} == {201}
        assert len({a.content for a in answers}) == 1
        assert sum(1 for a in answers if a.headers.get("idempotent-replayed") != "true") == 1
        wallet = (await http.get(f"/v1/participants/{participant}/wallet", headers=admin)).json()
        assert wallet["available"] == 7
    assert await wait_for_ledger(participant, "grant", 1) == 1
