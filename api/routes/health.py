"""Liveness and readiness."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Response, get, head
from piccolo.engine import engine_finder


class Health(msgspec.Struct, frozen=True):
    status: str


class Readiness(msgspec.Struct, frozen=True):
    status: str
    redis: str
    sql: str


@get("/health", operation_id="health", summary="Liveness", description="Answers 200 while the process runs.",
     opt={"exclude_from_auth": True}, tags=["operations"], security=[])
async def health() -> Health:
    return Health(status="ok")


@head("/health", operation_id="healthHead", summary="Liveness (HEAD)",
      description="Answers 200 with no body while the process runs, for monitors that probe with HEAD.",
      opt={"exclude_from_auth": True}, tags=["operations"], security=[])
async def health_head() -> None:
    return None


@get("/ready", operation_id="ready", summary="Readiness",
     description="Answers 200 when Redis and the SQL store both answer, 503 otherwise.",
     opt={"exclude_from_auth": True}, tags=["operations"], security=[])
async def ready(redis: Any) -> Response[Readiness]:
    redis_state = sql_state = "ok"
    try:
        await redis.ping()
    except Exception:
        redis_state = "unreachable"
    try:
        await engine_finder().run_ddl("SELECT 1")
    except Exception:
        sql_state = "unreachable"
    ok = redis_state == sql_state == "ok"
    return Response(Readiness(status="ok" if ok else "unavailable", redis=redis_state, sql=sql_state),
                    status_code=200 if ok else 503)
ROUTES = [health, health_head, ready]
