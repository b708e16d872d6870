"""Small builders the tests share: programs, participants, tokens and point moves over HTTP.

Every builder uses random names, so tests never depend on each other.
"""

from __future__ import annotations

import secrets
from typing import Any

import msgspec

from tests.conftest import OPERATOR_KEY

OPERATOR = {"Authorization": f"Bearer {OPERATOR_KEY}"}


class ProgramHandle(msgspec.Struct):
    id: str
    admin_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def random_ref(prefix: str = "ref") -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


async def new_program(client: Any, **fields: Any) -> ProgramHandle:
    body = {"name": random_ref("program"), **fields}
    response = await client.post("/v1/programs", json=body, headers=OPERATOR)
    assert response.status_code == 201, response.text
    data = response.json()
    return ProgramHandle(id=data["program_id"], admin_key=data["admin_key"])


async def new_participant(client: Any, program: ProgramHandle, **fields: Any) -> dict[str, Any]:
    body = {"external_id": random_ref("ext"), "display_name": "Pat Seller", **fields}
    response = await client.post("/v1/participants", json=body, headers=program.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def tokens_for(client: Any, program: ProgramHandle, participant_id: str) -> dict[str, Any]:
    response = await client.post(f"/v1/participants/{participant_id}/tokens", headers=program.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def grant(client: Any, program: ProgramHandle, participant_id: str, points: int,
                key: str | None = None) -> Any:
    return await client.post(
        "/v1/points/grants",
        json={"participant_id": participant_id, "points": points, "reason": "test grant"},
        headers={**program.headers, "Idempotency-Key": key or random_ref("grant")},
    )


async def fill_wallet(redis: Any, program_id: str, participant_id: str, points: int) -> None:
    """Funds the program from `world` and grants `points` to one wallet, through the real
    wallet function, in legs of at most 10^12 points: the way to reach balances near 2^53
    without thousands of requests. Journalled like any transaction, so the ledger agrees."""
    from wallet.bounds import MAX_MOVE
    from wallet.ids import new_id
    from wallet.store import Leg, WalletStore

    sizes = [MAX_MOVE] * (points // MAX_MOVE) + ([points % MAX_MOVE] if points % MAX_MOVE else [])
    legs = [Leg("acct:world", "acct:budget", size, "-") for size in sizes]
    legs += [Leg("acct:budget", "w1:available", size, "0") for size in sizes]
    outcome = await WalletStore(redis).transfer(program_id, new_id("tx"), "grant", legs, wallets=[participant_id],
                                                participant_id=participant_id, lifetime="earn")
    assert outcome.ok, outcome
    assert outcome.available is not None and outcome.available >= points
