"""A short SQL read on the event loop's own thread, with a time budget (issue #13).

A read on a pooled connection's thread (kernel/sqlite_pool.py `_read`) costs the process
about ten times SQLite's own work: the hop there and back wakes that thread and then the
loop, and every row it steps hands the GIL to the thread and waits to get it back from a
busy loop (bench/sql_reads.py: 174-234 us of CPU against 17-20 us inline, one indexed read,
64 at a time). Under the load mix the history page and a partner's claim, the requests
that read SQL, waited there: their p99 was the mix's worst.

Here a read runs first on a connection of the loop's own thread, with `budget` seconds of
this thread's CPU to finish: SQLite's progress handler interrupts it past that, and a
database it cannot read at once refuses it (no busy wait: the connection's timeout is 0).
Either way the caller runs it on a pooled thread instead, as before; a read has no effects,
so running it again is safe. An interrupted statement's text is remembered as slow for
`SLOW_FOR` seconds, its runs meanwhile going to the thread at once (a report's scan does not
cost the loop its budget each time; a statement slow for one participant's rows is tried
inline again later). CPU time, not wall time: a read preempted by the machine's other
processes, or waiting for the GIL between its steps, is not slow. The connection is
`query_only`: a write that slipped past the caller's test is refused here, and goes the
usual way.
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections import OrderedDict
from typing import Any

from piccolo.engine.sqlite import dict_factory

BUDGET = 0.002  # seconds of CPU a read may hold the event loop
SLOW_FOR = 30.0  # seconds an interrupted statement goes to a pooled thread at once
SLOW_KEPT = 512  # statements remembered as slow at most, the first remembered forgotten first
_STEPS = 1000  # SQLite's virtual machine steps between looks at the clock


class InlineReader:
    """One event loop's read connection. Not thread-safe: used on its loop's thread only."""

    def __init__(self, connection_kwargs: dict[str, Any], budget: float = BUDGET) -> None:
        # Used on its loop's thread only; closed from another once that loop has ended.
        self.connection = sqlite3.connect(**{**connection_kwargs, "timeout": 0, "check_same_thread": False})
        self.connection.row_factory = dict_factory
        self.connection.execute("PRAGMA query_only = 1")
        self.budget = budget
        self.deadline = 0.0
        self.slow: OrderedDict[str, float] = OrderedDict()  # statement -> when to try it here again
        self.connection.set_progress_handler(self._past_deadline, _STEPS)

    def _past_deadline(self) -> bool:
        return time.thread_time() > self.deadline

    def read(self, query: str, args: list[Any]) -> list[Any] | None:
        """`query`'s rows, or None when it is for a pooled thread: known slow, past its
        budget now, or refused here (a locked database, a write, SQLite's own error, which
        the thread raises as it would have)."""
        if self.slow:
            until = self.slow.get(query)
            if until is not None:
                if time.monotonic() < until:
                    return None
                del self.slow[query]
        self.deadline = time.thread_time() + self.budget
        try:
            cursor = self.connection.execute(query, args)
            try:
                return cursor.fetchall()
            finally:
                cursor.close()
        except sqlite3.OperationalError as error:
            if str(error) == "interrupted":
                self.slow[query] = time.monotonic() + SLOW_FOR
                if len(self.slow) > SLOW_KEPT:
                    self.slow.popitem(last=False)
            return None
        except sqlite3.Error:
            return None
        finally:
            with contextlib.suppress(sqlite3.Error):
                if self.connection.in_transaction:  # autocommit: a statement that began one (none should)
                    self.connection.rollback()

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self.connection.close()
