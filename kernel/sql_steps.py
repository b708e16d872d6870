"""A write transaction written once for both databases, as a generator of SQL steps.

Work that reads and writes in one transaction (the journal projector's batch, the ledger's
links) is written as a generator that yields `Fetch`, `Execute` or `ExecuteMany` and is sent
each step's answer (a fetch's rows as dicts, None otherwise); what it returns is the
transaction's answer. `run_steps` drives it:

- on the pooled SQLite engine, outside a transaction, in one hop on its writer connection's
  thread (kernel/sqlite_pool.py, `write_job`): SQLite's one write lock is held for SQLite's
  own work only, not across turns of an event loop busy with other work;
- elsewhere (Postgres, or inside a transaction already open) step by step in
  `writing(engine)`.

Placeholders are the driver's: `marks(engine, n)`.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable, Generator
from typing import Any

import msgspec

from kernel.sqlite_pool import on_writer_thread, postgres, write_job, writing


class Fetch(msgspec.Struct, frozen=True):
    sql: str
    args: tuple[Any, ...] = ()


class Execute(msgspec.Struct, frozen=True):
    sql: str
    args: tuple[Any, ...] = ()


class ExecuteMany(msgspec.Struct, frozen=True):
    sql: str
    rows: list[tuple[Any, ...]]


Step = Fetch | Execute | ExecuteMany
Steps = Generator[Step, Any, Any]


def marks(engine: Any, count: int) -> list[str]:
    """`count` placeholders: `$1, ...` on Postgres, `?` on SQLite."""
    return [f"${i}" for i in range(1, count + 1)] if postgres(engine) else ["?"] * count


async def run_steps(engine: Any, steps: Callable[[], Steps]) -> Any:
    """The transaction `steps()` yields, committed; answers what it returned. A step's error
    is raised here, not sent into the generator; in a transaction of its own nothing it wrote
    stays, and inside one already open (`writing`) that transaction's owner decides."""
    if on_writer_thread(engine):
        return await write_job(engine, functools.partial(_on_thread, steps))
    async with writing(engine) as transaction:
        return await _awaited(steps(), transaction.connection)


def _on_thread(steps: Callable[[], Steps], connection: sqlite3.Connection) -> Any:
    work, answer = steps(), None
    try:
        while True:
            answer = _done_on(connection, work.send(answer))
    except StopIteration as done:
        return done.value


def _done_on(connection: sqlite3.Connection, step: Step) -> Any:
    if isinstance(step, Fetch):
        return [dict(row) for row in connection.execute(step.sql, step.args).fetchall()]
    if isinstance(step, ExecuteMany):
        connection.executemany(step.sql, step.rows)
    else:
        connection.execute(step.sql, step.args)
    return None


async def _awaited(work: Steps, connection: Any) -> Any:
    answer = None
    try:
        while True:
            answer = await _done_by(connection, work.send(answer))
    except StopIteration as done:
        return done.value


async def _done_by(connection: Any, step: Step) -> Any:
    """On asyncpg (which takes arguments spread) or aiosqlite (as a sequence)."""
    asyncpg = hasattr(connection, "fetch")
    if isinstance(step, Fetch):
        if asyncpg:
            return [dict(row) for row in await connection.fetch(step.sql, *step.args)]
        async with connection.execute(step.sql, step.args) as cursor:
            return [dict(row) for row in await cursor.fetchall()]
    if isinstance(step, ExecuteMany):
        await connection.executemany(step.sql, step.rows)
    elif asyncpg:
        await connection.execute(step.sql, *step.args)
    else:
        await connection.execute(step.sql, step.args)
    return None
