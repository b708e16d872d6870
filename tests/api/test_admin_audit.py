"""Every change an admin key makes through the API lands on the audit log, once: the key,
the operation and the ids it touched; refusals, reads, simulations and participants' own
actions write nothing, and a manual grant keeps its one row from the journal."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import grant, new_participant, new_program, wait_until

pytestmark = pytest.mark.sql


async def audit_kinds(client: Any, program: Any) -> list[str]:
    return [e["kind"] for e in (await client.get("/v1/audit-events", headers=program.headers)).json()["items"]]


async def test_an_admin_change_is_audited_and_a_refusal_a_read_or_a_simulation_is_not(client: Any) -> None:
    program = await new_program(client)
    person = await new_participant(client, program)
    board = await client.post("/v1/leaderboards", headers=program.headers,
                              json={"name": "November", "period": "month"})
    assert board.status_code == 201, board.text
    refused = await client.post("/v1/leaderboards", headers=program.headers, json={"name": ""})
    assert refused.status_code in (400, 422)
    await client.get("/v1/leaderboards", headers=program.headers)
    retired = await client.post(f"/v1/leaderboards/{board.json()['id']}/retire", headers=program.headers)
    assert retired.status_code == 200
    assert (await grant(client, program, person["id"], 50)).status_code == 201

    async def grant_row() -> bool:
        return "points.grant" in await audit_kinds(client, program)

    assert await wait_until(grant_row, True)
    events = (await client.get("/v1/audit-events", headers=program.headers)).json()["items"]
    api_rows = [e for e in events if e["kind"].startswith("api.")]
    kinds = sorted(e["kind"] for e in api_rows)
    assert kinds == ["api.createLeaderboard", "api.retireLeaderboard", "api.upsertParticipant"]
    retire_row = next(e for e in api_rows if e["kind"] == "api.retireLeaderboard")
    assert retire_row["subject"] == board.json()["id"] and retire_row["actor"].startswith("key:")
    assert [e["kind"] for e in events].count("points.grant") == 1, "the grant's row comes from the journal, once"
