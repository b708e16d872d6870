"""Piccolo's Postgres engine, with its connection pool kept per event loop.

Piccolo keeps one pool on the engine, and an asyncpg pool belongs to the loop that made
it. A process whose code runs on more than one loop (the tests' app on its client's
thread, the tests on theirs) would hand one loop's connections to another. Here the
`pool` Piccolo reads and writes is the running loop's own: the app's lifespan starts the
pool of its loop, and code on another loop without one gets a connection per query, as
Piccolo does without a pool. In one loop, the usual case, this is Piccolo's behaviour.
"""

from __future__ import annotations

import asyncio
from typing import Any

from piccolo.engine.postgres import PostgresEngine


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class LoopPooledPostgresEngine(PostgresEngine):
    @property  # type: ignore[override]
    def pool(self) -> Any:
        loop = _running_loop()
        pools: dict[Any, Any] = self.__dict__.setdefault("_loop_pools", {})
        return pools.get(loop) if loop is not None else None

    @pool.setter
    def pool(self, value: Any) -> None:
        pools: dict[Any, Any] = self.__dict__.setdefault("_loop_pools", {})
        loop = _running_loop()
        if value is None:
            pools.pop(loop, None)
        elif loop is not None:
            for old in [known for known in pools if known.is_closed()]:
                del pools[old]  # loops that ended (tests) take their pools with them
            pools[loop] = value
