"""The floor of a design of this shape: bench/bare_app.py's two endpoints, each making exactly
one Redis call and nothing else (no auth, no gate, no metrics, no log line).

- `POST /v1/points/deductions`: one FCALL of the least Lua making a grant's writes
  (`rwbench_least` of bench/wallet.py: check the idempotency key, HINCRBY, XADD, SET),
  keyed by the request's Idempotency-Key.
- `GET /v1/me/wallet`: one HMGET of a wallet hash.

`FLOOR_REDIS_URL` names the server; `FLOOR_COALESCE=1` sends the calls of concurrent
requests as one pipeline per loop turn (kernel/coalesce.py), as the API does by default.
Issue #13 measured the plain floor at 0.37-0.46 x the bare POST and 0.40 x the bare GET.

    FLOOR_REDIS_URL=redis://... python -m uvicorn bench.floor_app:app_factory --factory --port 8002
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import redis.asyncio as aioredis
from litestar import Litestar, Request, get, post

from bench.bare_app import Accepted, Balance, Deduction, Wallet
from bench.wallet import LEAST_LUA
from kernel.coalesce import Coalescer

TAG = "{p:floor}"
state: dict[str, Any] = {}


@post("/v1/points/deductions")
async def deduct(request: Request[Any, Any, Any], data: Deduction) -> Accepted:
    key = request.headers.get("idempotency-key", "")
    await state["execute"]("FCALL", "rwbench_least", 5, f"rw:{TAG}:idem:{key}", f"rw:{TAG}:journal",
                           f"rw:{TAG}:acct", f"rw:{TAG}:cfg", f"rw:{TAG}:w:{data.participant_id}",
                           "fp", 86400, "tx_floor", data.participant_id, data.points, "deduct", "", "{}", 0)
    return Accepted(transaction_id="tx_floor", participant_id=data.participant_id, points=data.points,
                    balance=Balance(available=0, held=0))


@get("/v1/me/wallet")
async def my_wallet() -> Wallet:
    available, held = await state["execute"]("HMGET", f"rw:{TAG}:w:floor", "available", "held")
    return Wallet(available=int(available or 0), held=int(held or 0), lifetime_earned=0, lifetime_spent=0,
                  expiring=[])


@contextlib.asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    client = aioredis.Redis.from_url(os.environ["FLOOR_REDIS_URL"], max_connections=256)
    await client.function_load(LEAST_LUA, replace=True)
    await client.hset(f"rw:{TAG}:w:floor", mapping={"available": 1000, "held": 0})
    coalesce = os.environ.get("FLOOR_COALESCE") == "1"
    state["execute"] = Coalescer(client).execute if coalesce else client.execute_command
    try:
        yield
    finally:
        await client.aclose()


def app_factory() -> Litestar:
    return Litestar(route_handlers=[deduct, my_wallet], lifespan=[lifespan], debug=False)


