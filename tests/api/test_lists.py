"""Every collection answers `{items, next_cursor}`, honours `limit` (1..200) and `cursor`, and
walking its pages yields each item exactly once, in the list's order."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from tests.factories import bearer, new_participant, new_program, tokens_for

pytestmark = pytest.mark.sql


async def walk(client: Any, path: str, headers: dict[str, str], limit: int) -> list[list[Any]]:
    """Every page of the collection at `limit`, following next_cursor to the end."""
    pages: list[list[Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": limit, **({"cursor": cursor} if cursor else {})}
        response = await client.get(path, params=params, headers=headers)
        assert response.status_code == 200, (path, response.text)
        body = response.json()
        assert set(body) >= {"items", "next_cursor"}, (path, body)
        assert len(body["items"]) <= limit
        pages.append(body["items"])
        cursor = body["next_cursor"]
        if cursor is None:
            return pages
        assert len(pages) < 50, path


async def check_collection(client: Any, path: str, headers: dict[str, str], key: str, at_least: int) -> list[Any]:
    whole = await client.get(path, params={"limit": 200}, headers=headers)
    assert whole.status_code == 200, (path, whole.text)
    everything = [item[key] for item in whole.json()["items"]]
    assert len(everything) >= at_least, (path, everything)
    pages = await walk(client, path, headers, 2)
    assert len(pages) >= 2, path  # `limit` is honoured
    assert [item[key] for page in pages for item in page] == everything, path
    assert len((await client.get(path, headers=headers)).json()["items"]) == min(len(everything), 50)
    for bad in ({"limit": 0}, {"limit": 201}, {"cursor": "not a cursor!"}):
        refused = await client.get(path, params=bad, headers=headers)
        assert refused.status_code in (400, 422) and refused.json()["code"] == "validation_error", (path, bad)
    return everything


async def made(create: Callable[[int], Awaitable[Any]], count: int = 3) -> list[str]:
    ids = []
    for n in range(count):
        response = await create(n)
        assert response.status_code in (200, 201), response.text
        ids.append(response.json()["id"])
    return ids


WHEEL = {"cost_points": 1, "segments": [{"label": "Nothing", "weight": 1, "prize": {"type": "nothing"}}]}


async def test_every_admin_collection_pages_newest_first(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    h = program.headers

    boards = await made(lambda n: client.post("/v1/leaderboards", json={"name": f"Board {n}"}, headers=h))
    assert await check_collection(client, "/v1/leaderboards", h, "id", 3) == boards[::-1]

    partners = await made(lambda n: client.post("/v1/fulfillment/partners", json={"name": f"Partner {n}"}, headers=h))
    assert await check_collection(client, "/v1/fulfillment/partners", h, "id", 3) == partners[::-1]

    brands = await made(lambda n: client.post("/v1/catalog/brands", json={"name": f"Brand {n}"}, headers=h))
    assert await check_collection(client, "/v1/catalog/brands", h, "id", 3) == brands[::-1]

    items = await made(lambda n: client.post("/v1/catalog/items", headers=h, json={
        "brand": "Brand 0", "name": f"Card {n}", "face_value": {"amount": 500, "currency": "USD"}}))
    for item_id in items:
        upload = await client.post(f"/v1/catalog/items/{item_id}/codes", json={"csv": f"code\nGC-{item_id}\n"},
                                   headers=h)
        assert upload.status_code in (200, 201), upload.text
    assert await check_collection(client, "/v1/catalog/stock", h, "item_id", 3) == items[::-1]

    rules = await made(lambda n: client.post("/v1/earning-rules", headers=h, json={
        "name": f"Rule {n}", "activity_type": "sale", "award": {"type": "fixed", "points": 1}}))
    assert await check_collection(client, "/v1/earning-rules", h, "id", 3) == rules[::-1]

    keys = await made(lambda n: client.post("/v1/admin-keys", json={"name": f"key {n}"}, headers=h))
    assert (await check_collection(client, "/v1/admin-keys", h, "id", 4))[:3] == keys[::-1]

    for n in range(3):
        assert (await client.post("/v1/activity-types", json={"name": f"own_type_{n}"}, headers=h)).status_code == 201
    types = await check_collection(client, "/v1/activity-types", h, "name", 4)
    assert types[-3:] == ["own_type_0", "own_type_1", "own_type_2"]  # built-ins first, as stated


async def test_my_campaigns_page_newest_first(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    launched = []
    for n in range(3):
        created = await client.post("/v1/campaigns/spin", json={"name": f"Wheel {n}", **WHEEL},
                                    headers=program.headers)
        assert created.status_code == 201, created.text
        assert (await client.post(f"/v1/campaigns/{created.json()['id']}/launch",
                                  headers=program.headers)).status_code == 200
        launched.append(created.json()["id"])
    person = await new_participant(client, program)
    me = bearer((await tokens_for(client, program, person["id"]))["access_token"])
    assert await check_collection(client, "/v1/me/campaigns", me, "id", 3) == launched[::-1]
    assert "free_spins" in (await client.get("/v1/me/campaigns", headers=me)).json()
