"""A participant's history (`GET /v1/me/transactions`, `GET /v1/participants/{id}/transactions`):
newest first, page by page, from the SQL ledger."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest

from tests.factories import grant, new_participant, new_program, projected, random_ref, tokens_for
from wallet import journal, keys, ledger

pytestmark = pytest.mark.sql


async def phone(client: Any, program: Any, participant_id: str) -> dict[str, str]:
    tokens = await tokens_for(client, program, participant_id)
    return {"Authorization": f"Bearer {tokens['access_token']}"}


async def test_history_pages_newest_first_and_the_cursor_goes_on_where_a_page_ended(client, redis) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    rep, other = await new_participant(client, program), await new_participant(client, program)
    for points in range(1, 8):
        assert (await grant(client, program, rep["id"], points)).status_code == 201
    assert (await grant(client, program, other["id"], 100)).status_code == 201
    await projected(redis, program.id, "history")
    me = await phone(client, program, rep["id"])

    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        query: dict[str, Any] = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = await client.get("/v1/me/transactions", params=query, headers=me)
        assert page.status_code == 200, page.text
        body = page.json()
        seen += [item["points"] for item in body["items"]]
        pages += 1
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert seen == [7, 6, 5, 4, 3, 2, 1] and pages == 3  # none of the other participant's
    admin_view = await client.get(f"/v1/participants/{rep['id']}/transactions", params={"limit": 50},
                                  headers=program.headers)
    assert [item["points"] for item in admin_view.json()["items"]] == seen
    assert admin_view.json()["items"][0]["reason"] == "test grant"


async def test_a_cursor_this_api_did_not_issue_is_a_problem_document(client, redis) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    rep = await new_participant(client, program)
    me = await phone(client, program, rep["id"])
    for forged in ("bm90LWEtbnVtYmVy", "%%%"):  # base64 of "not-a-number"; not base64 at all
        page = await client.get("/v1/me/transactions", params={"cursor": forged}, headers=me)
        assert page.status_code == 422, page.text
        assert page.headers["content-type"].startswith("application/problem+json")
        assert page.json()["invalid_params"][0]["name"] == "cursor"


async def test_a_page_is_complete_up_to_just_before_the_oldest_entry_still_waiting(redis) -> None:  # type: ignore[no-untyped-def]
    program_id = random_ref("prg")  # a program no projector knows: its journal stays as written
    assert abs((await ledger.as_of(redis, program_id) - datetime.now(timezone.utc)).total_seconds()) < 5
    for ms in (1_780_000_000_123, 1_780_000_000_500):
        await redis.xadd(keys.journal(program_id), {"tx": "tx_waiting"}, id=f"{ms}-0")
    assert await ledger.as_of(redis, program_id) == datetime.fromtimestamp(1_780_000_000.122, tz=timezone.utc)
    assert await journal.lag(redis, program_id) == (2, 1_780_000_000_123)
    await redis.delete(keys.journal(program_id))
