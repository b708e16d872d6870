"""Counts the SQL write transactions a block of code commits, on SQLite.

The engine runs SQLite in autocommit mode (`isolation_level=None`): a write outside
`BEGIN ... COMMIT` is a transaction of its own, and a `BEGIN ... COMMIT` holding any write
is one. Those are what queue behind SQLite's one writer, so they are what the hot path
counts. Only statements of the task (and the tasks it awaits) that opened the block are
counted: the in-process journal projector's batches run in a task of their own.
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
    statements: list[str] = msgspec.field(default_factory=list)


_counting: contextvars.ContextVar[WriteCount | None] = contextvars.ContextVar("sql_write_count", default=None)
_open: dict[int, bool] = {}  # connection id -> a write happened since its BEGIN


def _observe(connection: Any, sql: str) -> None:
    count = _counting.get()
    words = sql.split(None, 2)
    verb = words[0].upper() if words else ""
    key = id(connection)
    if verb == "BEGIN":
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

    async def counted_chain(self: PooledSQLiteEngine, first: Any, then: Any) -> Any:
        # A chain runs on the connection's thread, past aiosqlite's execute: observed from here.
        rows = await chain(self, first, then)
        transaction = object()
        _observe(transaction, "BEGIN")
        for query in ([first, *then] if rows else [first]):
            _observe(transaction, self._compiled(query)[0])
        _observe(transaction, "COMMIT" if rows else "ROLLBACK")
        return rows

    chain = PooledSQLiteEngine.write_chain
    aiosqlite.Connection.execute = counted_execute  # type: ignore[method-assign]
    aiosqlite.Connection.executemany = counted_executemany  # type: ignore[method-assign]
    PooledSQLiteEngine.write_chain = counted_chain  # type: ignore[method-assign]
    try:
        yield count
    finally:
        aiosqlite.Connection.execute, aiosqlite.Connection.executemany = execute, executemany  # type: ignore[method-assign]
        PooledSQLiteEngine.write_chain = chain  # type: ignore[method-assign]
        _counting.reset(token)
