"""Piccolo's SQLite engine, with a few persistent connections instead of one per query.

Piccolo opens a new aiosqlite connection (a new thread) for every query outside a
transaction; at a dozen queries per request that was most of a request's time. This
engine keeps up to `pool_size` connections per event loop (aiosqlite connections belong
to the loop that made them) and hands them out one query at a time. Transactions still
get a connection of their own, as in Piccolo.
"""

from __future__ import annotations

import asyncio
from typing import Any

import aiosqlite
from piccolo.engine.sqlite import SQLiteEngine, dict_factory


class _LoopPool:
    def __init__(self, size: int) -> None:
        self.idle: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self.size = size
        self.opened = 0


class PooledSQLiteEngine(SQLiteEngine):
    def __init__(self, *args: Any, pool_size: int = 4, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.pool_size = pool_size
        self._pools: dict[asyncio.AbstractEventLoop, _LoopPool] = {}

    async def _acquire(self) -> tuple[_LoopPool, aiosqlite.Connection]:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            for old in [lp for lp in self._pools if lp.is_closed()]:
                del self._pools[old]  # loops that ended (tests) take their connections with them
            pool = self._pools[loop] = _LoopPool(self.pool_size)
        if pool.idle.empty() and pool.opened < pool.size:
            pool.opened += 1
            try:
                pending = aiosqlite.connect(**self.connection_kwargs)
                # A pooled connection's thread must not keep the process alive at exit (every
                # query has committed before it returns, so nothing is lost with it).
                pending._thread.daemon = True
                connection = await pending
            except BaseException:
                pool.opened -= 1
                raise
            connection.row_factory = dict_factory  # type: ignore[assignment]
            await connection.execute("PRAGMA foreign_keys = 1")
            return pool, connection
        return pool, await pool.idle.get()

    async def _run_in_new_connection(self, query: str, args: list[Any] | None = None,
                                     query_type: str = "generic", table: Any = None) -> Any:
        pool, connection = await self._acquire()
        healthy = True
        try:
            async with connection.execute(query, args or []) as cursor:
                rows = await cursor.fetchall()  # RETURNING rows come before the commit
            await connection.commit()
            return rows
        except BaseException:
            try:
                await connection.rollback()
            except Exception:
                healthy = False
            raise
        finally:
            if healthy:
                pool.idle.put_nowait(connection)
            else:
                pool.opened -= 1
                await connection.close()

    async def close_pool(self) -> None:
        """Closes this loop's pooled connections (at shutdown)."""
        pool = self._pools.pop(asyncio.get_running_loop(), None)
        while pool is not None and not pool.idle.empty():
            await pool.idle.get_nowait().close()
