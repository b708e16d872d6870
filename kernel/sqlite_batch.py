"""A write batch's steps on a SQLite connection's own thread, plain `sqlite3`: shared by the
API's writer thread (kernel/sqlite_pool.py) and the writer process (kernel/sqlite_writer.py)."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import Callable
from typing import Any, TypeVar

Steps = list[tuple[str, list[Any]]]
# The WAL pages past which a commit copies the WAL into the database itself (SQLite's
# automatic checkpoint), on every connection that writes. At SQLite's default of 1,000, under
# the spin benchmark every second or third commit of the journal projector copied the WAL,
# each time again the index pages the commits between had written anew. The worker copies the
# WAL every half second instead (kernel/sqlite_pool.py `copy_wal`, off every writer's commit);
# this bound (about 40 MB of WAL) holds where nothing does.
WAL_PAGES = 10_000
# A writer connection's page cache, in KiB (SQLite's default is 2 MB). The projector's batches
# write into every index keyed by participant, a page of each for each participant in the
# batch: at the spin benchmark's 256 participants about 4 MB of pages written again at every
# pass, re-read from the operating system whenever the cache had let them go. 64 MB: the
# worker's CPU a spin fell by about 6% (README, stop 51). Only the writers': readers keep
# SQLite's default, and a cache only grows as far as it is used.
WRITER_CACHE_KIB = 65_536
# How long a writer sleeps between its tries for SQLite's write lock while another process
# holds it: from the first, doubling to the most.
LOCK_POLL_FIRST = 0.0002
LOCK_POLL_MOST = 0.002
Job = Callable[[sqlite3.Connection], Any]
Tag = TypeVar("Tag")


class WholeBatch(Exception):
    """The batch's transaction failed as a whole (its BEGIN, its COMMIT, or SQLite ended it):
    `cause` is every chain's error, and the writer may be left inside a transaction."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def begin(connection: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE on the writer's thread. A transaction still open there was left by an
    earlier write whose ROLLBACK failed: writes start one at a time (the lock queues them, and
    a chain's whole transaction is one job of the thread), so it is nobody's now. Ending it
    keeps the writes queued behind that failure from failing with it."""
    if connection.in_transaction:
        connection.execute("ROLLBACK")
    take_write_lock(connection)


def take_write_lock(connection: sqlite3.Connection) -> None:
    """BEGIN IMMEDIATE, waiting for another process's write lock in short steps. SQLite's own
    busy handler sleeps 1, 2, 5, 10, 15, 20, 25 ms between its tries, so a writer whose lock
    is let go after 9 ms wakes at 18: the API's writer process and the worker's projector take
    turns at the lock all the time. Under the mix at 1,000 req/s (`bench/load.py --scale 1.0`,
    two alternated pairs) the API writer's wait for the lock went from p99 19-26 ms, most
    55-113, to p99 13-17, most 22-32; the projector's from p99 21-83, most 36-180, to p99
    15-19, most 24-35. The connection's busy timeout is still the most it waits, and is put
    back for the statements that follow."""
    row = connection.execute("PRAGMA busy_timeout").fetchone()
    patience_ms = int(row["timeout"] if isinstance(row, dict) else row[0])
    connection.execute("PRAGMA busy_timeout = 0")
    try:
        deadline = time.monotonic() + patience_ms / 1000
        pause = LOCK_POLL_FIRST
        while True:
            try:
                connection.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError as error:
                # SQLITE_BUSY (extended codes too) only: another writer holds the lock.
                if error.sqlite_errorcode & 0xFF != sqlite3.SQLITE_BUSY or time.monotonic() >= deadline:
                    raise
            time.sleep(pause)
            pause = min(pause * 2, LOCK_POLL_MOST)
    finally:
        try:
            connection.execute(f"PRAGMA busy_timeout = {patience_ms}")
        except BaseException:
            if connection.in_transaction:
                connection.execute("ROLLBACK")  # no transaction left holding the lock with the wrong timeout
            raise


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


def run_batch(connection: sqlite3.Connection,
              take: Callable[[], list[tuple[Steps | Job, Tag]]]) -> list[tuple[Tag, Any]]:
    """One write batch: BEGIN IMMEDIATE, the chains `take` hands over (called after BEGIN, so
    those that arrived while it waited for SQLite's lock come too), each in its savepoint, then
    COMMIT. Each chain's tag with its answer: its first step's rows or its own error, or, when
    the transaction failed as a whole, a `WholeBatch` of its own (none was written)."""
    taken: list[tuple[Steps | Job, Tag]] | None = None
    try:
        begin(connection)
        taken = take()
        answers: list[Any] = [savepointed(connection, steps) for steps, _ in taken]
        connection.execute("COMMIT")
    except BaseException as error:
        taken = take() if taken is None else taken
        answers = [WholeBatch(error) for _ in taken]  # each raised in its own task
        with contextlib.suppress(sqlite3.Error):
            if connection.in_transaction:
                connection.execute("ROLLBACK")
    return [(tag, answer) for (_, tag), answer in zip(taken, answers)]


def answer_soon(answer: asyncio.Future[Any], result: Any) -> None:
    """From a writer's thread: `answer` gets `result` on its own loop."""
    with contextlib.suppress(RuntimeError):  # its loop closed: nobody waits for it
        answer.get_loop().call_soon_threadsafe(settle, answer, result)


def settle(answer: asyncio.Future[Any], result: Any) -> None:
    """Answers a waiting chain on its own loop (called there with call_soon_threadsafe)."""
    if answer.done():  # its caller was cancelled; the chain ran (or not) all the same
        return
    if isinstance(result, BaseException):
        answer.set_exception(result)
    else:
        answer.set_result(result)
