"""Builders for fulfillment tests: a program with a partner, an item, and funded participants."""

from __future__ import annotations

from typing import Any

from tests.factories import ProgramHandle, bearer, grant, new_participant, new_program, random_ref, tokens_for


async def shop(client: Any, face_value: int = 2500, **program_fields: Any) -> tuple[ProgramHandle, dict, dict]:
    """A program, its default partner (with key), and one fixed-value item."""
    program = await new_program(client, **program_fields)
    partner = (await client.post("/v1/fulfillment/partners", json={"name": random_ref("partner")},
                                 headers=program.headers)).json()
    item = (await client.post("/v1/catalog/items", headers=program.headers, json={
        "brand": "Amazon", "name": f"Amazon ${face_value // 100} gift card",
        "face_value": {"amount": face_value, "currency": "USD"}, "sku": random_ref("sku")})).json()
    return program, partner, item


async def shopper(client: Any, program: ProgramHandle, points: int) -> tuple[dict, dict[str, str]]:
    person = await new_participant(client, program)
    if points:
        assert (await grant(client, program, person["id"], points)).status_code == 201
    token = (await tokens_for(client, program, person["id"]))["access_token"]
    return person, bearer(token)


async def redeem(client: Any, headers: dict[str, str], item_id: str, key: str | None = None, **extra: Any) -> Any:
    return await client.post("/v1/me/redemptions", json={"item_id": item_id, **extra},
                             headers={**headers, "Idempotency-Key": key or random_ref("redeem")})
