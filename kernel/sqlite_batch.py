"""A write batch's steps on a SQLite connection's own thread, plain `sqlite3`: shared by the
API's writer thread (kernel/sqlite_pool.py) and the writer process (kernel/sqlite_writer.py)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable
from typing import Any

Steps = list[tuple[str, list[Any]]]
Job = Callable[[sqlite3.Connection], Any]


def begin(connection: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE on the writer's thread. A transaction still open there was left by an
    earlier write whose ROLLBACK failed: writes start one at a time (the lock queues them, and
    a chain's whole transaction is one job of the thread), so it is nobody's now. Ending it
    keeps the writes queued behind that failure from failing with it."""
    if connection.in_transaction:
        connection.execute("ROLLBACK")
    connection.execute("BEGIN IMMEDIATE")


def savepointed(connection: sqlite3.Connection, steps: Steps | Job) -> Any:
    """One chain (or job) in a savepoint: its first step's rows (what the job answered), or
    the error that took it back."""
    connection.execute("SAVEPOINT chain")
    try:
        if callable(steps):
            rows = steps(connection)
            if not connection.in_transaction:  # it caught SQLite ending the batch, or committed
                raise sqlite3.OperationalError("a write job ended its batch's transaction")
        # No rows: a single write without RETURNING, or a first step that found nothing.
        elif rows := connection.execute(*steps[0]).fetchall():
            for sql, args in steps[1:]:
                connection.execute(sql, args).fetchall()
    except Exception as error:  # SQLite's refusal, or a value the driver cannot bind
        if not connection.in_transaction:
            raise  # SQLite ended the whole transaction (a full disk): the batch fails with this
        connection.execute("ROLLBACK TO chain")  # when this fails too, the whole batch does
        rows = error
    connection.execute("RELEASE chain")
    return rows


def settle(answer: asyncio.Future[Any], result: Any) -> None:
    """Answers a waiting chain on its own loop (called there with call_soon_threadsafe)."""
    if answer.done():  # its caller was cancelled; the chain ran (or not) all the same
        return
    if isinstance(result, BaseException):
        answer.set_exception(result)
    else:
        answer.set_result(result)
