"""A program's claim window: a sale older than the window cannot be claimed, and the refusal
says until when it could have been."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from tests.factories import bearer, new_participant, new_program, random_ref, tokens_for

pytestmark = pytest.mark.sql


def claim(days_ago: int, zone: str) -> dict:  # type: ignore[type-arg]
    sold = dt.datetime.now(ZoneInfo(zone)).date() - dt.timedelta(days=days_ago)
    return {"invoice_number": random_ref("INV"), "invoice_date": sold.isoformat(),
            "amount": {"amount": 45_000, "currency": "USD"}, "product": "ThermoPro 200"}


async def test_a_sale_older_than_the_window_is_refused_with_its_last_day(client) -> None:  # type: ignore[no-untyped-def]
    # Far east of UTC: "today" is the program's date, not the server's.
    zone = "Pacific/Kiritimati"
    program = await new_program(client, claim_window_days=30, timezone=zone)
    rep = await new_participant(client, program)
    me = bearer((await tokens_for(client, program, rep["id"]))["access_token"])

    async def file(body: dict) -> object:  # type: ignore[type-arg]
        return await client.post("/v1/me/claims", json=body, headers={**me, "Idempotency-Key": random_ref()})

    on_the_last_day = await file(claim(30, zone))
    assert on_the_last_day.status_code == 201, on_the_last_day.text
    too_late_body = claim(31, zone)
    too_late = await file(too_late_body)
    assert too_late.status_code == 422
    problem = too_late.json()
    assert problem["code"] == "validation_error"
    last_day = (dt.date.fromisoformat(too_late_body["invoice_date"]) + dt.timedelta(days=30)).isoformat()
    assert "within 30 days" in problem["detail"] and last_day in problem["detail"]
    mine = (await client.get("/v1/me/claims", headers=me)).json()["items"]
    assert [c["invoice_number"] for c in mine] == [on_the_last_day.json()["invoice_number"]]

    # 0 turns the window off.
    changed = await client.patch("/v1/program", json={"claim_window_days": 0}, headers=program.headers)
    assert changed.status_code == 200 and changed.json().get("claim_window_days") is None
    assert (await file(claim(400, zone))).status_code == 201
