"""SQLite's write chains of a process, run by a small process of their own (issue #13).

A chain written on the API's own writer thread (kernel/sqlite_pool.py) waited for the GIL
between its statements: `sqlite3` lets the GIL go around every step, and getting it back
waits for the event loop's thread, busy with the requests. Under 64 concurrent redemptions
the writer thread spent 5.2 s of wall time in its statements for 1.8 s of CPU, and its
batches followed each other with no pause: the writer, not the CPU (a quarter of the machine
sat idle), set the rate. Here the same batches (BEGIN IMMEDIATE, each chain in its
savepoint, COMMIT: kernel/sqlite_batch.py, as on the thread) run in a child process with a
GIL of its own; the API only pickles a chain into a pipe and, on a thread of its own that
wakes once per batch, hands back the answers. Jobs (callables: the journal projector's batch)
and transactions awaited statement by statement stay on the writer thread; SQLite's file
lock orders them with the child's batches.

The child reads its chains from a pipe and runs all that arrived while it wrote the last
batch as the next one. It ends when the pipe closes: when the API process exits or is
killed (`kill -9` leaves no writer behind; one mid-batch finishes it first). A child that
dies fails the chains it held (`WriterGone`: not known to be written or not; each caller's
write is idempotent, and a retry or the journal projector writes it) and the next chain
starts another.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import fcntl
import functools
import os
import pickle
import select
import signal
import sqlite3
import struct
import subprocess
import sys
import threading
import time
import weakref
from typing import Any

from kernel.sqlite_batch import WAL_PAGES, WRITER_CACHE_KIB, Steps, WholeBatch, answer_soon, run_batch

# A frame: the body's length (4 bytes), the chain's id (8), what the body is (1), the body (a
# pickle). Each chain crosses in a frame of its own both ways, so a body one side cannot read
# fails that chain alone.
_HEAD = struct.Struct("<IQB")
ROWS, ERROR, WHOLE = 0, 1, 2  # an answer's kind: the rows, the chain's own error, the batch's
# A chain's kind: ROWS, or JOURNALLED: rows the Redis journal holds until the journal
# projector has seen them in SQL (a redemption's order, its code's binding, its feed lines:
# fulfillment/order_writes.py), sent so only while Redis syncs every write before it answers
# (kernel/sqlite_pool.py trust_journal). A batch of journalled chains alone commits with
# `PRAGMA synchronous = NORMAL` (in WAL mode only): no fsync of its own. SQLite's WAL is one
# file written in commit order, so any later synced commit syncs them too: the projector's
# (its connection keeps FULL), made after it read these rows, or any other write's. Until
# then the journal still holds the entry, and the projector writes the rows itself if a power
# cut took them. Where the projector acknowledges the entry with no write of its own after
# them (a batch replayed whole, a follower that failed), the order sweep writes an order
# missing its row from the ledger (fulfillment `mend`). A process killed outright loses no
# committed row either way (the rows are in the operating system's cache). Any other chain in
# the batch makes it sync as every batch does (FULL).
JOURNALLED = 3
_SYNC = {True: "NORMAL", False: "FULL"}
# Room for about a thousand chains in the pipe; past that, a drain thread waits for room, so
# the event loop never blocks on the pipe.
_PIPE_SIZE = 1 << 20
# A child that ended without answering anything this soon after it started is not started again
# for this long: every write fails at once instead of spawning a process each.
_RESTART_AFTER = 1.0


class WriterGone(sqlite3.OperationalError):
    """The writer process ended before it answered: the chain may or may not be written."""


def _frame(chain_id: int, kind: int, value: Any) -> bytes:
    body = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEAD.pack(len(body), chain_id, kind) + body


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _frames(buffer: bytearray) -> list[tuple[int, int, Any]]:
    """The whole frames at the head of `buffer`, taken out of it: (id, kind, value), the value
    an OperationalError when its body cannot be read here."""
    taken: list[tuple[int, int, Any]] = []
    start = 0
    while len(buffer) - start >= _HEAD.size:
        size, chain_id, kind = _HEAD.unpack_from(buffer, start)
        if len(buffer) - start - _HEAD.size < size:
            break
        body = bytes(buffer[start + _HEAD.size:start + _HEAD.size + size])
        try:
            value = pickle.loads(body)
        except Exception as error:
            kind, value = ERROR, sqlite3.OperationalError(f"the SQL writer's message could not be read: {error!r}")
        taken.append((chain_id, kind, value))
        start += _HEAD.size + size
    del buffer[:start]
    return taken


def _portable(result: Any) -> Any:
    """A chain's answer as it can cross the pipe: an error that does not pickle (or unpickle)
    goes as SQLite's error with its message."""
    if isinstance(result, BaseException):
        try:
            pickle.loads(pickle.dumps(result))
        except Exception:
            return sqlite3.OperationalError(f"{type(result).__name__}: {result}")
    return result


class _Child:
    """One writer process, the pipe to it, the bytes waiting for room in that pipe and the
    chains it holds (by id)."""

    def __init__(self, process: subprocess.Popen[bytes], requests: int, started: float) -> None:
        self.process = process
        self.requests = requests
        self.started = started
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.backlog: collections.deque[bytes] = collections.deque()
        self.answered = False
        self.open = True


class WriterProcess:
    """The API side: `send` a chain, await its rows. One per engine, shared by every event
    loop of the process (each chain's future is answered on its own loop). One lock guards
    the child, its pending chains and the pipe's writes; nothing blocks while holding it (the
    pipe is non-blocking), so the answers' reader always gets it at once."""

    def __init__(self, connection_kwargs: dict[str, Any]) -> None:
        self._kwargs = dict(connection_kwargs)
        self._lock = threading.Lock()
        self._next = 0
        self._child: _Child | None = None
        self._failed_at = -_RESTART_AFTER
        os.register_at_fork(after_in_child=functools.partial(_forget_in_fork, weakref.ref(self)))

    def send(self, steps: Steps, journalled: bool = False) -> asyncio.Future[Any]:
        """Queues the chain (`journalled`: see JOURNALLED); the future answers its first step's
        rows, or raises its error (`WholeBatch` when the whole batch failed; `WriterGone` when
        the writer could not take it or ended before it answered)."""
        answer = asyncio.get_running_loop().create_future()
        with self._lock:
            self._next += 1
            chain_id = self._next
            # An argument that cannot cross raises here: nothing sent.
            frame = _frame(chain_id, JOURNALLED if journalled else ROWS, steps)
            for attempt in (1, 2):
                child = self._child if self._child is not None else self._start()
                child.pending[chain_id] = answer
                try:
                    self._push(child, frame)
                    break
                except OSError:  # the child is gone: it read nothing of this frame
                    del child.pending[chain_id]
                    self._drop(child)
                    if attempt == 2:
                        raise WriterGone("the SQL writer process is gone") from None
        return answer

    def _push(self, child: _Child, frame: bytes) -> None:
        """The frame into the pipe as far as it has room, the rest behind the bytes already
        waiting (under the lock). Raises OSError only when nothing of it was written."""
        if child.backlog:
            child.backlog.append(frame)
            return
        try:
            written = os.write(child.requests, frame)
        except BlockingIOError:
            written = 0
        if written < len(frame):
            child.backlog.append(frame[written:])
            threading.Thread(target=self._drain, args=(child,), name="sqlite-writer-drain", daemon=True).start()

    def _drain(self, child: _Child) -> None:
        """Writes the child's backlog as the pipe makes room, then ends."""
        while True:
            with contextlib.suppress(OSError, ValueError):
                room = select.poll()  # (select.select refuses a descriptor past 1023)
                room.register(child.requests, select.POLLOUT)
                room.poll(1000)
            with self._lock:
                if not child.open:
                    child.backlog.clear()
                    return
                try:
                    while child.backlog:
                        head = child.backlog[0]
                        written = os.write(child.requests, head)
                        if written < len(head):
                            child.backlog[0] = head[written:]
                            break
                        child.backlog.popleft()
                except BlockingIOError:
                    pass
                except OSError:  # the child is gone: its reader fails what it held
                    child.backlog.clear()
                    return
                if not child.backlog:
                    return

    def _start(self) -> _Child:
        """A new child on fresh pipes, and the thread that reads its answers (under the lock).
        Raises WriterGone when it cannot be started (or one just ended without a word)."""
        if time.monotonic() - self._failed_at < _RESTART_AFTER:
            raise WriterGone("the SQL writer process keeps ending; see its errors in this process's log")
        child_reads, requests = os.pipe()
        answers, child_writes = os.pipe()
        process = None
        try:
            with contextlib.suppress(OSError):  # a smaller pipe only makes a full one likelier
                fcntl.fcntl(requests, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
            process = subprocess.Popen(
                [sys.executable, "-m", "kernel.sqlite_writer", str(child_reads), str(child_writes)],
                pass_fds=(child_reads, child_writes), stdin=subprocess.DEVNULL, close_fds=True)
            _write_all(requests, _frame(0, ROWS, self._kwargs))
            os.set_blocking(requests, False)
            child = _Child(process, requests, time.monotonic())
            threading.Thread(target=self._read_answers, args=(child, answers), name="sqlite-writer-answers",
                             daemon=True).start()
        except Exception as error:
            for fd in (requests, answers):
                with contextlib.suppress(OSError):
                    os.close(fd)
            if process is not None:
                with contextlib.suppress(Exception):
                    process.kill()
                    process.wait(timeout=5)
            self._failed_at = time.monotonic()
            raise WriterGone(f"the SQL writer process could not be started: {error!r}") from error
        finally:
            os.close(child_reads)
            os.close(child_writes)
        self._child = child
        return child

    def _drop(self, child: _Child) -> None:
        """Closes the pipe to `child` (under the lock): it finishes what it holds and ends."""
        if child.open:
            child.open = False
            with contextlib.suppress(OSError):
                os.close(child.requests)
        if self._child is child:
            self._child = None

    def _read_answers(self, child: _Child, fd: int) -> None:
        buffer = bytearray()
        try:
            while data := os.read(fd, 1 << 20):
                buffer += data
                for chain_id, kind, result in _frames(buffer):
                    with self._lock:
                        answer = child.pending.pop(chain_id, None)
                        child.answered = True
                    if answer is not None:
                        answer_soon(answer, WholeBatch(result) if kind == WHOLE else result)
        finally:
            os.close(fd)
            with self._lock:
                self._drop(child)
                orphaned, child.pending = list(child.pending.values()), {}
                if not child.answered and time.monotonic() - child.started < _RESTART_AFTER:
                    self._failed_at = time.monotonic()
            for answer in orphaned:
                answer_soon(answer, WriterGone("the SQL writer process ended before it answered"))
            with contextlib.suppress(Exception):
                child.process.wait(timeout=5)

    def close(self) -> None:
        """Closes the pipe: the child finishes what it holds and ends."""
        with self._lock:
            child = self._child
            if child is not None:
                self._drop(child)
        if child is not None:
            with contextlib.suppress(Exception):
                child.process.wait(timeout=10)

    def _forget(self) -> None:
        """In a forked copy of the process: the pipe and the child are the parent's. Closing
        our copy of the pipe lets the child see its end when the parent exits."""
        self._lock = threading.Lock()
        child, self._child = self._child, None
        if child is not None:
            with contextlib.suppress(OSError):
                os.close(child.requests)


def _forget_in_fork(ref: Any) -> None:
    process = ref()
    if process is not None:
        process._forget()


def _answer_frame(chain_id: int, rows: Any) -> bytes:
    """A written chain's answer: its rows, or its own error (that chain alone was taken back)."""
    try:
        return _frame(chain_id, ERROR if isinstance(rows, BaseException) else ROWS, _portable(rows))
    except Exception as error:
        return _frame(chain_id, ERROR, WriterGone(f"the chain's answer could not be sent back ({error!r}); "
                                                  "it may have been written"))


def _serve(reads: int, writes: int) -> None:
    """The child: the connection's kwargs first, then chains until the pipe closes. Signals
    meant for the API (Ctrl-C, a stop) leave it be: it ends when the API is gone, after what
    it holds."""
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.SIG_IGN)
    from piccolo.engine.sqlite import dict_factory  # also registers Piccolo's adapters and converters

    buffer = bytearray()
    connection: sqlite3.Connection | None = None
    relaxed = False  # the connection's synchronous setting: NORMAL (True) or FULL
    wal = False  # NORMAL is safe in WAL mode only
    while data := os.read(reads, 1 << 20):
        buffer += data
        frames = _frames(buffer)
        if connection is None and frames:
            _, _, kwargs = frames.pop(0)
            connection = sqlite3.connect(**kwargs)
            connection.row_factory = dict_factory
            connection.execute("PRAGMA foreign_keys = 1")
            connection.execute("PRAGMA synchronous = FULL")
            connection.execute(f"PRAGMA wal_autocheckpoint = {WAL_PAGES}")
            connection.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")
            wal = str(connection.execute("PRAGMA journal_mode").fetchone()["journal_mode"]).lower() == "wal"
        replies = [_frame(chain_id, kind, value) for chain_id, kind, value in frames if kind not in (ROWS, JOURNALLED)]
        chains = [(steps, chain_id) for chain_id, kind, steps in frames if kind in (ROWS, JOURNALLED)]
        if chains and connection is not None:
            # Set between transactions (SQLite refuses it inside one, and a writer left in one
            # ends below), for the batch's chains all together: they are read before its BEGIN.
            journalled = wal and not any(kind == ROWS for _, kind, _ in frames)
            if journalled != relaxed:
                connection.execute(f"PRAGMA synchronous = {_SYNC[journalled]}")
                relaxed = journalled
            # After the COMMIT each answer is framed alone: one that cannot cross fails that
            # chain's answer, not the batch it was written in.
            replies += [_frame(chain_id, WHOLE, _portable(rows.cause)) if isinstance(rows, WholeBatch)
                        else _answer_frame(chain_id, rows)
                        for chain_id, rows in run_batch(connection, lambda: chains)]
        if replies:
            _write_all(writes, b"".join(replies))
        if connection is not None and connection.in_transaction:
            return  # stuck inside a transaction it cannot end: the next chain starts a new writer


if __name__ == "__main__":
    _serve(int(sys.argv[1]), int(sys.argv[2]))
