"""The floor of a design of this shape: bench/bare_app.py's two endpoints, each making exactly
one Redis call and nothing else (no auth, no gate, no metrics, no log line), and a
redemption's floor.

- `POST /v1/points/deductions`: one FCALL of the least Lua making a grant's writes
  (`rwbench_least` of bench/wallet.py: check the idempotency key, HINCRBY, XADD, SET),
  keyed by the request's Idempotency-Key.
- `GET /v1/me/wallet`: one HMGET of a wallet hash.
- `POST /v1/me/campaigns/{id}/spins`: the same one FCALL (a spin's cost taken), keyed by the
  request's Idempotency-Key and the caller's bearer token, answering a spin-shaped body: the
  floor bench/games.py sets beside the spin (which the journal projector then writes to SQL
  in the worker; the floor writes nothing more).
- `POST /v1/me/redemptions` (with `FLOOR_SQLITE`, a SQLite file): the floor of a redemption
  that keeps one SQL write on its request path: the same one call, then one write
  transaction through the API's own SQLite engine (kernel/sqlite_pool.py `write_chain`, so
  concurrent requests share a COMMIT as the API's do) inserting an order-shaped row and a
  feed-shaped row. `FLOOR_SQL_READ=1` adds, before the call, one indexed SUM over the
  participant's orders of the year, as a redemption's tax total (fulfillment/taxes.py).

`FLOOR_REDIS_URL` names the server; `FLOOR_COALESCE=1` sends the calls of concurrent
requests as one pipeline per loop turn (kernel/coalesce.py), as the API does by default.
Issue #13 measured the plain floor at 0.37-0.46 x the bare POST and 0.40 x the bare GET.

    FLOOR_REDIS_URL=redis://... python -m uvicorn bench.floor_app:app_factory --factory --port 8002
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from datetime import datetime, timezone
from collections.abc import AsyncIterator
from typing import Any

import msgspec
import redis.asyncio as aioredis
from litestar import Litestar, Request, get, post
from piccolo.table import Table

from bench.bare_app import Accepted, Balance, Deduction, Wallet
from bench.wallet import LEAST_LUA
from kernel.coalesce import Coalescer
from kernel.sqlite_pool import PooledSQLiteEngine, write_chain

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


class Spun(msgspec.Struct, frozen=True):
    id: str
    campaign_id: str
    cost: int
    outcome: str
    points: int
    nonce: int


@post("/v1/me/campaigns/{campaign_id:str}/spins", status_code=201)
async def spin(request: Request[Any, Any, Any], campaign_id: str) -> Spun:
    key = request.headers.get("idempotency-key", "")
    participant = request.headers.get("authorization", "")[-12:]
    await state["execute"]("FCALL", "rwbench_least", 5, f"rw:{TAG}:idem:{key}", f"rw:{TAG}:journal",
                           f"rw:{TAG}:acct", f"rw:{TAG}:cfg", f"rw:{TAG}:w:{participant}",
                           "fp", 86400, "tx_floor", participant, -10, "spin", key, "{}", 0)
    return Spun(id="spn_" + key, campaign_id=campaign_id, cost=10, outcome="nothing", points=0, nonce=0)


class Redemption(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    item_id: str
    face_value: int | None = None


class Placed(msgspec.Struct, frozen=True):
    id: str
    item_id: str
    status: str
    points: int
    created_at: str


# As wide as the API's order and feed inserts (fulfillment/order_writes.py, programs/feed.py).
_SCHEMA = [
    "CREATE TABLE IF NOT EXISTS floor_orders (id TEXT PRIMARY KEY, program_id TEXT, participant_id TEXT, "
    "item_id TEXT, partner_id TEXT, source TEXT, status TEXT, face_value INTEGER, currency TEXT, points INTEGER, "
    "tax_flagged INTEGER, created_at TEXT, updated_at TEXT)",
    "CREATE INDEX IF NOT EXISTS floor_orders_year ON floor_orders "
    "(program_id, participant_id, created_at, status, face_value)",
    "CREATE TABLE IF NOT EXISTS floor_feed (id TEXT PRIMARY KEY, program_id TEXT, participant_id TEXT, kind TEXT, "
    "text TEXT, reference TEXT, created_at TEXT)",
]
_ORDER = ("INSERT INTO floor_orders VALUES ({}, 'prg_floor', {}, {}, 'ptn_floor', 'redemption', 'pending', 500, "
          "'USD', 500, 0, {}, {}) ON CONFLICT DO NOTHING RETURNING id")
_FEED = "INSERT INTO floor_feed VALUES ({}, 'prg_floor', {}, 'points_spent', {}, {}, {}) ON CONFLICT DO NOTHING"
_YEAR = ("SELECT SUM(face_value) AS total FROM floor_orders WHERE program_id = 'prg_floor' AND participant_id = {} "
         "AND status IN ('pending', 'claimed', 'fulfilled') AND created_at >= {} AND created_at < {}")


@post("/v1/me/redemptions")
async def redeem(request: Request[Any, Any, Any], data: Redemption) -> Placed:
    key = request.headers.get("idempotency-key", "")
    participant = request.headers.get("authorization", "")[-12:]
    now = datetime.now(timezone.utc).isoformat()
    table = state["table"]
    if state["read"]:
        await table.raw(_YEAR, participant, "2026-01-01", "2027-01-01").run()
    await state["execute"]("FCALL", "rwbench_least", 5, f"rw:{TAG}:idem:{key}", f"rw:{TAG}:journal",
                           f"rw:{TAG}:acct", f"rw:{TAG}:cfg", f"rw:{TAG}:w:{participant}",
                           "fp", 86400, "tx_floor", participant, -500, "hold", key, "{}", 0)
    order_id = "ord_" + key
    await write_chain(state["engine"], table.raw(_ORDER, order_id, participant, data.item_id, now, now),
                      [table.raw(_FEED, "fd_" + key, participant, "Redeemed 500 points", order_id, now)])
    return Placed(id=order_id, item_id=data.item_id, status="pending", points=500, created_at=now)


@contextlib.asynccontextmanager
async def lifespan(app: Litestar) -> AsyncIterator[None]:
    client = aioredis.Redis.from_url(os.environ["FLOOR_REDIS_URL"], max_connections=256)
    await client.function_load(LEAST_LUA, replace=True)
    await client.hset(f"rw:{TAG}:w:floor", mapping={"available": 1000, "held": 0})
    coalesce = os.environ.get("FLOOR_COALESCE") == "1"
    state["execute"] = Coalescer(client).execute if coalesce else client.execute_command
    path = os.environ.get("FLOOR_SQLITE")
    if path:
        with contextlib.closing(sqlite3.connect(path)) as db:
            db.execute("PRAGMA journal_mode=WAL")  # as `reward-wallet migrate` leaves the API's
            for statement in _SCHEMA:
                db.execute(statement)
        # The API's writer, unless the run asks for the other (FLOOR_SQLITE_WRITER=thread).
        engine = PooledSQLiteEngine(path=path, timeout=30, writer=os.environ.get("FLOOR_SQLITE_WRITER", "process"))
        state["engine"], state["read"] = engine, os.environ.get("FLOOR_SQL_READ") == "1"
        state["table"] = type("FloorRows", (Table,), {}, tablename="floor_orders", db=engine)
    try:
        yield
    finally:
        await client.aclose()


def app_factory() -> Litestar:
    return Litestar(route_handlers=[deduct, my_wallet, spin, redeem], lifespan=[lifespan], debug=False)


