"""Counts the SQL write transactions a block of code commits, on SQLite.

The engine runs SQLite in autocommit mode (`isolation_level=None`): a write outside
`BEGIN ... COMMIT` is a transaction of its own, and a `BEGIN ... COMMIT` holding any write
is one. Those are what queue behind SQLite's one writer, so they are what the hot path
counts. Only statements of the task (and the tasks it awaits) that opened the block are
counted: the in-process journal projector's batches run in a task of their own. The reads
(SELECTs) it sends are listed too.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

import aiosqlite
import msgspec

from kernel.sqlite_pool import PooledSQLiteEngine

WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


class WriteCount(msgspec.Struct):
    transactions: int = 0
    journalled: int = 0  # of those, the chains sent to commit with no fsync of their own
    statements: list[str] = msgspec.field(default_factory=list)
    reads: list[str] = msgspec.field(default_factory=list)  # each SELECT, as sent


_counting: contextvars.ContextVar[WriteCount | None] = contextvars.ContextVar("sql_write_count", default=None)
_open: dict[int, bool] = {}  # connection id -> a write happened since its BEGIN


def _observe(connection: Any, sql: str) -> None:
    count = _counting.get()
    words = sql.split(None, 2)
    verb = words[0].upper() if words else ""
    key = id(connection)
    if verb == "SELECT":
        if count is not None:
            count.reads.append(" ".join(sql.split()))
    elif verb == "BEGIN":
        _open[key] = False
    elif verb in ("COMMIT", "END"):
        if _open.pop(key, False) and count is not None:
            count.transactions += 1
    elif verb == "ROLLBACK":
        _open.pop(key, None)
    elif verb in WRITES:
        if count is not None:
            count.statements.append(" ".join(words[:2]))
        if key in _open:
            _open[key] = True
        elif count is not None:
            count.transactions += 1


@contextlib.contextmanager
def sql_write_transactions() -> Iterator[WriteCount]:
    count = WriteCount()
    token = _counting.set(count)
    execute, executemany = aiosqlite.Connection.execute, aiosqlite.Connection.executemany

    def counted_execute(self: Any, sql: str, parameters: Any = None) -> Any:
        _observe(self, sql)
        return execute(self, sql, parameters)

    def counted_executemany(self: Any, sql: str, parameters: Any) -> Any:
        _observe(self, sql)
        return executemany(self, sql, parameters)

    async def counted_written(self: PooledSQLiteEngine, steps: Any, journalled: bool = False) -> Any:
        # Chains, single writes and jobs run on the writer (its process or its thread), past
        # aiosqlite's execute: observed from here. A chain whose first step found nothing
        # wrote nothing; a single write always counts; a job is one transaction.
        rows = await written(self, steps, journalled)
        count = _counting.get()
        if journalled and rows and count is not None:
            count.journalled += 1
        transaction = object()
        _observe(transaction, "BEGIN")
        if callable(steps):
            _observe(transaction, "INSERT (a write job)")
        else:
            for sql, _ in (steps if rows or len(steps) == 1 else steps[:1]):
                _observe(transaction, sql)
        _observe(transaction, "COMMIT" if rows or callable(steps) or len(steps) == 1 else "ROLLBACK")
        return rows

    async def counted_run(self: PooledSQLiteEngine, query: str, args: Any = None, *more: Any, **named: Any) -> Any:
        # A pooled read runs whole on its connection's thread (kernel/sqlite_pool.py `_read`),
        # past aiosqlite's execute and this task's context: observed from here.
        if query.lstrip()[:6].upper() == "SELECT":
            _observe(None, query)
        return await run(self, query, args, *more, **named)

    written, run = PooledSQLiteEngine._written, PooledSQLiteEngine._run_in_new_connection
    aiosqlite.Connection.execute = counted_execute  # type: ignore[method-assign]
    aiosqlite.Connection.executemany = counted_executemany  # type: ignore[method-assign]
    PooledSQLiteEngine._written = counted_written  # type: ignore[method-assign]
    PooledSQLiteEngine._run_in_new_connection = counted_run  # type: ignore[method-assign]
    try:
        yield count
    finally:
        aiosqlite.Connection.execute, aiosqlite.Connection.executemany = execute, executemany  # type: ignore[method-assign]
        PooledSQLiteEngine._written, PooledSQLiteEngine._run_in_new_connection = written, run  # type: ignore[method-assign]
        _counting.reset(token)
