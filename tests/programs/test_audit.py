"""The audit log: every manual money move names its actor (written by the projector from the
journal), other changes write their own line, and the log filters and exports."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from tests.factories import bearer, new_participant, new_program, random_ref, wait_until

pytestmark = pytest.mark.sql


async def log(client: Any, program: Any, **filters: str) -> list[dict[str, Any]]:
    return (await client.get("/v1/audit-events", params=filters, headers=program.headers)).json()["items"]


async def test_money_moves_and_changes_are_logged_with_who_did_them(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client, approval_threshold_points=1000)
    person = await new_participant(client, program)
    other = bearer((await client.post("/v1/admin-keys", json={"name": "b"}, headers=program.headers)).json()["api_key"])
    granted = await client.post("/v1/points/grants", headers={**program.headers, "Idempotency-Key": random_ref()},
                                json={"participant_id": person["id"], "points": 300, "reason": "spiff"})
    assert granted.status_code == 201
    asked = await client.post("/v1/points/grants", headers={**program.headers, "Idempotency-Key": random_ref()},
                              json={"participant_id": person["id"], "points": 5000, "reason": "dealer of the year"})
    assert (await client.post(f"/v1/approvals/{asked.json()['id']}/approve", headers=other)).status_code == 200
    assert (await client.patch("/v1/program", json={"point_name": "stars"}, headers=program.headers)).status_code == 200

    async def grants() -> int:
        return len(await log(client, program, kind="points.grant"))

    assert await wait_until(grants, 2) == 2  # the projector writes them a moment later
    moves = await log(client, program, kind="points.grant")
    by_points = {m["detail"]["points"]: m for m in moves}
    me = by_points[300]["actor"]
    assert me.startswith("key:") and by_points[300]["subject"] == person["id"]
    assert by_points[300]["detail"]["reason"] == "spiff"
    assert by_points[5000]["actor"] == me and by_points[5000]["detail"]["approved_by"].startswith("key:")
    assert by_points[5000]["detail"]["approved_by"] != me
    kinds = {e["kind"] for e in await log(client, program)}
    assert {"points.grant", "approval.approved", "program.settings_changed"} <= kinds
    assert [e["kind"] for e in await log(client, program, actor=me, kind="program.settings_changed")] == [
        "program.settings_changed"]
    assert await log(client, program, since="2099-01-01T00:00:00Z") == []

    exported = await client.get("/v1/audit-events/export.csv", headers=program.headers)
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert {r["kind"] for r in rows} == kinds and all(r["actor"] for r in rows)
    # Another program sees none of it.
    stranger = await new_program(client)
    assert await log(client, stranger) == []
    assert (await client.get("/v1/audit-events", params={"cursor": "nonsense"},
                             headers=program.headers)).status_code in (400, 422)
