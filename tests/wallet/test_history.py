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
    from kernel.pages import encode_cursor

    forged_values = ("u:1", "u:1.2.3", "s:", "s:1.2", "x:5", "u:\u00b2.1", "s:" + "9" * 30, "9" * 30, "u:-1.0")
    for forged in ("bm90LWEtbnVtYmVy", "%%%", *map(encode_cursor, forged_values)):  # "not-a-number"; not base64
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


# --- pages while the chain links what they show (wallet/ledger.py) ------------------------


def _awards(program_id: str, participant_id: str, first: int, count: int) -> list[journal.JournalEntry]:
    """`count` awards of 1 point each, numbered from `first` (their points say which),
    as the projector writes them: stream ids in their order."""
    at = datetime.now(timezone.utc)
    return [journal.JournalEntry(stream_id=f"{1_780_000_000_000 + n}-0", transaction_id=random_ref("tx"),
                                 kind="award", participant_id=participant_id, points=n, earned=n, spent=0,
                                 reference=None, metadata="{}", legs=[("budget", f"participant:{participant_id}:available", n)],
                                 created_at=at)
            for n in range(first, first + count)]


async def _pages(redis: Any, program_id: str, participant_id: str, limit: int,
                 between: Any = None) -> list[list[int]]:
    pages: list[list[int]] = []
    cursor = None
    while True:
        page = await ledger.transactions(redis, program_id, participant_id, limit, cursor)
        pages.append([item.points for item in page.items])
        if page.next_cursor is None:
            return pages
        cursor = page.next_cursor
        if between is not None:
            await between(len(pages))


async def _link_all(program_id: str) -> None:
    from wallet.chain import link_below
    await link_below(program_id, (2**63, 0), True)


@pytest.mark.parametrize("linked_first", [5, 0])
async def test_an_entry_linked_between_two_pages_is_shown_once(migrated, redis, linked_first: int) -> None:  # type: ignore[no-untyped-def]
    """The newest entries wait a moment for the chain (unlinked), and a page lists them first;
    when the chain links them before the next page, that page goes on where the last one
    ended: nothing twice, nothing left out."""
    program_id, rep = random_ref("prg"), random_ref("par")
    if linked_first:
        await journal.write_batch(program_id, _awards(program_id, rep, 1, linked_first))
        await _link_all(program_id)
    await journal.write_batch(program_id, _awards(program_id, rep, linked_first + 1, 5))
    newest = linked_first + 5

    async def link_after_the_first(pages: int) -> None:
        if pages == 1:
            await _link_all(program_id)

    pages = await _pages(redis, program_id, rep, 3, link_after_the_first)
    assert pages[0] == [newest, newest - 1, newest - 2]
    assert [n for page in pages for n in page] == list(range(newest, 0, -1)), pages
    # Linked now, every entry in its place in the chain: the same list, page by page.
    assert [n for page in await _pages(redis, program_id, rep, 3) for n in page] == list(range(newest, 0, -1))
    assert [n for page in await _pages(redis, program_id, random_ref("par"), 3) for n in page] == []


async def test_a_cursor_of_an_earlier_build_still_goes_on_from_its_entry(migrated, redis) -> None:  # type: ignore[no-untyped-def]
    """Earlier builds' cursors named the page's last entry by its row id; a phone holding one
    across an upgrade gets the entries after it."""
    from kernel.pages import encode_cursor
    from wallet.tables import LedgerEntry

    program_id, rep = random_ref("prg"), random_ref("par")
    await journal.write_batch(program_id, _awards(program_id, rep, 1, 4))
    await _link_all(program_id)
    await journal.write_batch(program_id, _awards(program_id, rep, 5, 3))
    ids = {row["points"]: row["id"] for row in await LedgerEntry.select(LedgerEntry.id, LedgerEntry.points).where(
        LedgerEntry.participant_id == rep).run()}
    for last, rest in ((6, [5, 4, 3, 2, 1]), (3, [2, 1])):  # unlinked, then linked
        page = await ledger.transactions(redis, program_id, rep, 10, encode_cursor(str(ids[last])))
        assert [item.points for item in page.items] == rest
