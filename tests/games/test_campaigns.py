"""Managers design, launch, pause and end spin campaigns, seeing the cost before launch."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import fund, new_program

pytestmark = pytest.mark.sql


def design(item_id: str, **overrides: Any) -> dict[str, Any]:
    return {"name": "Q4 wheel", "cost_points": 50, "max_spins_per_participant_per_day": 3, "budget_points": 10_000,
            "segments": [
                {"label": "200 points", "weight": 10, "prize": {"type": "points", "points": 200}, "color": "#ff8800"},
                {"label": "Amazon $25", "weight": 1, "prize": {"type": "item", "item_id": item_id, "stock": 5}},
                {"label": "Try again", "weight": 89, "prize": {"type": "nothing"}},
            ], **overrides}


async def program_with_item(client):  # type: ignore[no-untyped-def]
    program = await new_program(client, allow_overdraft=False)
    item = (await client.post("/v1/catalog/items", headers=program.headers, json={
        "brand": "Amazon", "name": "Amazon $25", "face_value": {"amount": 2500, "currency": "USD"}})).json()
    return program, item


async def test_a_campaign_shows_its_odds_and_cost_before_launch(client) -> None:  # type: ignore[no-untyped-def]
    program, item = await program_with_item(client)
    created = await client.post("/v1/campaigns/spin", json=design(item["id"]), headers=program.headers)
    assert created.status_code == 201, created.text
    body = created.json()
    assert body["status"] == "draft"
    # (10*200 + 1*2500 + 89*0) / 100 = 45 points per spin of 50: RTP 0.9
    assert body["economics"]["expected_payout_points"] == 45.0
    assert body["economics"]["return_to_player"] == pytest.approx(0.9)
    changed = await client.put(f"/v1/campaigns/{body['id']}", headers=program.headers,
                               json=design(item["id"], cost_points=45))
    assert changed.json()["economics"]["return_to_player"] == pytest.approx(1.0)


async def test_bad_designs_are_refused(client) -> None:  # type: ignore[no-untyped-def]
    program, item = await program_with_item(client)
    unknown = await client.post("/v1/campaigns/spin", json=design("item_nope"), headers=program.headers)
    assert unknown.status_code == 422 and "item_nope" in unknown.json()["detail"]
    heavy = design(item["id"])
    heavy["segments"][2]["weight"] = 2**32
    assert (await client.post("/v1/campaigns/spin", json=heavy, headers=program.headers)).status_code == 422
    zero = design(item["id"])
    zero["segments"][0]["weight"] = 0
    assert (await client.post("/v1/campaigns/spin", json=zero, headers=program.headers)).status_code == 400


async def test_launch_funds_the_prize_pool_and_end_returns_what_is_left(client, redis) -> None:  # type: ignore[no-untyped-def]
    program, item = await program_with_item(client)
    campaign = (await client.post("/v1/campaigns/spin", json=design(item["id"]), headers=program.headers)).json()
    refused = await client.post(f"/v1/campaigns/{campaign['id']}/launch", headers=program.headers)
    assert refused.status_code == 409 and refused.json()["code"] == "budget_exhausted"  # cannot fund 10,000
    await fund(redis, program, 25_000)
    launched = await client.post(f"/v1/campaigns/{campaign['id']}/launch", headers=program.headers)
    assert launched.json()["status"] == "active"
    budget = (await client.get("/v1/program/budget", headers=program.headers)).json()
    assert (budget["available"]["points"], budget["in_prize_pools"]["points"]) == (15_000, 10_000)
    locked = await client.put(f"/v1/campaigns/{campaign['id']}", json=design(item["id"]), headers=program.headers)
    assert locked.status_code == 409
    assert (await client.post(f"/v1/campaigns/{campaign['id']}/pause", headers=program.headers)).json()["status"] == "paused"
    resumed = await client.post(f"/v1/campaigns/{campaign['id']}/launch", headers=program.headers)
    assert resumed.json()["status"] == "active"
    budget = (await client.get("/v1/program/budget", headers=program.headers)).json()
    assert budget["available"]["points"] == 15_000  # resuming does not fund twice
    ended = await client.post(f"/v1/campaigns/{campaign['id']}/end", headers=program.headers)
    assert ended.json()["status"] == "ended"
    budget = (await client.get("/v1/program/budget", headers=program.headers)).json()
    assert (budget["available"]["points"], budget["in_prize_pools"]["points"]) == (25_000, 0)
    assert (await client.post(f"/v1/campaigns/{campaign['id']}/launch", headers=program.headers)).status_code == 409


async def test_another_programs_campaign_is_not_found(client) -> None:  # type: ignore[no-untyped-def]
    program, item = await program_with_item(client)
    campaign = (await client.post("/v1/campaigns/spin", json=design(item["id"]), headers=program.headers)).json()
    other, _ = await program_with_item(client)
    for method, path in (("GET", ""), ("POST", "/launch"), ("POST", "/pause"), ("POST", "/end")):
        response = await client.request(method, f"/v1/campaigns/{campaign['id']}{path}", headers=other.headers)
        assert response.status_code == 404, (method, path)
