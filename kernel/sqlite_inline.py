"""A short SQL read on the event loop's own thread, with a time budget (issue #13).

A read on a pooled connection's thread (kernel/sqlite_pool.py `_read`) costs the process
about ten times SQLite's own work: the hop there and back wakes that thread and then the
loop, and every row it steps hands the GIL to the thread and waits to get it back from a
busy loop (bench/sql_reads.py: 174-234 us of CPU against 17-20 us inline, one indexed read,
64 at a time). Under the load mix the history page and a partner's claim, the requests
that read SQL, waited there: their p99 was the mix's worst.

Here a read runs first on a connection of the loop's own thread, with `budget` seconds of
this thread's CPU to finish, and `wall` seconds in all: SQLite's progress handler interrupts
it past either, and a database it cannot read at once refuses it (no busy wait: the
connection's timeout is 0). Either way the caller runs it on a pooled thread instead, as
before; a read has no effects, so running it again is safe. A statement that ran out of CPU
is remembered as slow for `SLOW_FOR` seconds, its runs meanwhile going to the thread at once
(a report's scan does not cost the loop its budget each time; a statement slow for one
participant's rows is tried inline again later). One that ran out of wall time only (the
machine's other processes preempted it, or SQLite handed the GIL to another thread between
its steps and waited to get it back) is not slow, and is tried here again next time. The
connection is `query_only`: a write that slipped past the caller's test is refused here, and
goes the usual way. One that fails for the file's sake (an I/O error, a damaged or replaced
file) is `broken`: the caller opens another.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections import OrderedDict
from typing import Any

from piccolo.engine.sqlite import dict_factory

BUDGET = 0.002  # seconds of CPU a read may hold the event loop
WALL = 0.010  # seconds in all (its waits for the GIL, the machine's other processes)
SLOW_FOR = 30.0  # seconds an interrupted statement goes to a pooled thread at once
SLOW_KEPT = 512  # statements remembered as slow at most, the first remembered forgotten first
_STEPS = 1000  # SQLite's virtual machine steps between looks at the clock
# SQLite's primary result codes that say the file, not the statement, failed.
_BROKEN = frozenset({10, 11, 14, 26})  # SQLITE_IOERR, SQLITE_CORRUPT, SQLITE_CANTOPEN, SQLITE_NOTADB


class InlineReader:
    """One event loop's read connection. Not thread-safe: used on its loop's thread only."""

    def __init__(self, connection_kwargs: dict[str, Any], budget: float = BUDGET, wall: float = WALL) -> None:
        # Used on its loop's thread only; closed from another once that loop has ended.
        self.connection = sqlite3.connect(**{**connection_kwargs, "timeout": 0, "check_same_thread": False})
        try:
            self.connection.row_factory = dict_factory
            self.connection.execute("PRAGMA query_only = 1")
            self.connection.set_progress_handler(self._past_deadline, _STEPS)
        except BaseException:
            self.connection.close()
            raise
        self.budget, self.wall = budget, wall
        self.deadline = self.wall_deadline = 0.0
        self.out_of_cpu = False
        self.broken = False
        self.slow: OrderedDict[str, float] = OrderedDict()  # statement -> when to try it here again

    def _past_deadline(self) -> bool:
        if time.thread_time() > self.deadline:
            self.out_of_cpu = True
            return True
        return time.perf_counter() > self.wall_deadline

    def read(self, query: str, args: list[Any]) -> list[Any] | None:
        """`query`'s rows, or None when it is for a pooled thread: known slow, past its
        budget now, or refused here (a locked database, a write, SQLite's own error, which
        the thread raises as it would have; the file's, and this connection is `broken`)."""
        if self.slow:
            until = self.slow.get(query)
            if until is not None:
                if time.monotonic() < until:
                    return None
                del self.slow[query]
        self.deadline = time.thread_time() + self.budget
        self.wall_deadline = time.perf_counter() + self.wall
        self.out_of_cpu = False
        try:
            cursor = self.connection.execute(query, args)
            try:
                return cursor.fetchall()
            finally:
                cursor.close()
        except sqlite3.Error as error:
            if self.out_of_cpu and str(error) == "interrupted":
                self.slow[query] = time.monotonic() + SLOW_FOR
                if len(self.slow) > SLOW_KEPT:
                    self.slow.popitem(last=False)
            elif (getattr(error, "sqlite_errorcode", 0) or 0) & 0xFF in _BROKEN:
                self.broken = True
            return None
        finally:
            with contextlib.suppress(sqlite3.Error):
                if self.connection.in_transaction:  # autocommit: a statement that began one (none should)
                    self.connection.rollback()

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.connection.close()
