"""The SQL pool a process opens: the API's lifespan and the CLI's offline commands. Kept out
of api/app.py so that a command (audit, reconcile) does not import the whole app to open it:
that was a second of every CLI run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from api.settings import Settings


async def open_sql(settings: Settings) -> Callable[[], Awaitable[None]]:
    """Starts the SQL pool this app owns; answers what closes it."""
    from piccolo.engine import engine_finder
    from piccolo.engine.postgres import PostgresEngine

    from kernel.sqlite_pool import PooledSQLiteEngine

    engine = engine_finder()
    # An app owns the pool it starts, and only that one: another app on the same loop uses
    # the running pool and leaves it open when it stops (kernel/postgres_pool.py: a pool
    # per event loop).
    pooled = isinstance(engine, PostgresEngine) and settings.sql_pool_size > 0 and engine.pool is None
    if pooled:
        await engine.start_connection_pool(min_size=min(2, settings.sql_pool_size), max_size=settings.sql_pool_size)

    async def close() -> None:
        if pooled:
            await engine.close_connection_pool()
        if isinstance(engine, PooledSQLiteEngine):
            await engine.close_pool()

    return close


def close_sqlite_writer(for_good: bool = False) -> None:
    """Ends this process's SQLite writer process, if it started one (kernel/sqlite_writer.py):
    `serve` with several workers writes only while it migrates; the workers have their own.
    `for_good`: this process writes on its writer thread from now on (the worker)."""
    from piccolo.engine import engine_finder

    from kernel.sqlite_pool import PooledSQLiteEngine

    engine = engine_finder()
    if isinstance(engine, PooledSQLiteEngine) and engine.writer_process is not None:
        engine.writer_process.close()
        if for_good:
            engine.writer_process = None
