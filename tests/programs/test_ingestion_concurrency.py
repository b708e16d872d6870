"""A CRM that re-sends a batch, even three times at once, gets every award exactly once."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import httpx
import pytest

from programs.tables import Award
from tests.factories import OPERATOR, random_ref

pytestmark = pytest.mark.sql


async def test_the_same_1000_activity_batch_sent_3_times_at_once_awards_once(live_server) -> None:  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(base_url=live_server.url, timeout=120) as http:
        created = (await http.post("/v1/programs", json={"name": random_ref("crm")}, headers=OPERATOR)).json()
        admin = {"Authorization": f"Bearer {created['admin_key']}"}
        reps = []
        for i in range(20):
            reps.append((await http.post("/v1/participants", json={"external_id": f"rep-{i}", "display_name": f"R{i}"},
                                         headers=admin)).json())
        rule = await http.post("/v1/earning-rules", headers=admin, json={
            "name": "Sale", "activity_type": "sale", "award": {"type": "per_unit", "unit": 100, "points_per_unit": 1},
            "cap": {"points": 5_000, "period": "month"}})
        assert rule.status_code == 201
        start = datetime(2026, 3, 1, tzinfo=timezone.utc)
        batch = {"activities": [
            {"external_id": f"INV-{i}", "type": "sale", "participant_external_id": f"rep-{i % 20}",
             "occurred_at": (start + timedelta(minutes=i)).isoformat(), "attributes": {"amount": 100 * (1 + i % 9)}}
            for i in range(1000)
        ]}
        answers = await asyncio.gather(*[http.post("/v1/activities", json=batch, headers=admin) for _ in range(3)])
        assert [a.status_code for a in answers] == [200, 200, 200], [a.text[:300] for a in answers]
        reports = [a.json() for a in answers]
        # Each activity is new in exactly one of the three answers.
        assert sum(r["new"] for r in reports) == 1000
        assert all(r["new"] + r["duplicates"] == 1000 for r in reports)
        expected = sum(1 + i % 9 for i in range(1000))  # points per activity, no cap reached (<= 5,000 each)
        balances = []
        for rep in reps:
            wallet = (await http.get(f"/v1/participants/{rep['id']}/wallet", headers=admin)).json()
            balances.append(wallet["available"])
        assert sum(balances) == expected
        again = (await http.post("/v1/activities", json=batch, headers=admin)).json()
        assert again["new"] == 0 and again["points_awarded"] == 0
    rows = await Award.count().where(Award.program_id == created["program_id"]).run()
    assert rows == 1000
