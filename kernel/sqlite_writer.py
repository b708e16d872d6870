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
import contextlib
import fcntl
import os
import pickle
import signal
import sqlite3
import subprocess
import sys
import threading
from typing import Any

from kernel.sqlite_batch import Steps, begin, savepointed, settle

_HEADER = 4
# Room for about a thousand chains in the pipe before a write would wait for the child.
_PIPE_SIZE = 1 << 20


class WriterGone(sqlite3.OperationalError):
    """The writer process ended before it answered: the chain may or may not be written."""


def _frame(value: Any) -> bytes:
    body = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    return len(body).to_bytes(_HEADER, "little") + body


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]


def _frames(buffer: bytearray) -> list[Any]:
    """The whole frames at the head of `buffer`, taken out of it."""
    taken: list[Any] = []
    start = 0
    while len(buffer) - start >= _HEADER:
        size = int.from_bytes(buffer[start:start + _HEADER], "little")
        if len(buffer) - start - _HEADER < size:
            break
        taken.append(pickle.loads(buffer[start + _HEADER:start + _HEADER + size]))
        start += _HEADER + size
    del buffer[:start]
    return taken


def _portable(result: Any) -> Any:
    """A chain's answer as it can cross the pipe: an error that does not pickle goes as
    SQLite's error with its message."""
    if isinstance(result, BaseException):
        try:
            pickle.dumps(result)
        except Exception:
            return sqlite3.OperationalError(f"{type(result).__name__}: {result}")
    return result


class _Child:
    """One writer process, the pipe to it and the chains it holds (by id)."""

    def __init__(self, process: subprocess.Popen[bytes], requests: int) -> None:
        self.process = process
        self.requests = requests
        self.pending: dict[int, asyncio.Future[Any]] = {}
        self.open = True


class WriterProcess:
    """The API side: `send` a chain, await its rows. One per engine, shared by every event
    loop of the process (each chain's future is answered on its own loop)."""

    def __init__(self, connection_kwargs: dict[str, Any]) -> None:
        self._kwargs = dict(connection_kwargs)
        self._lock = threading.Lock()  # the pipe's writes and the pending chains
        self._next = 0
        self._child: _Child | None = None
        self._pid = os.getpid()

    def send(self, steps: Steps) -> asyncio.Future[Any]:
        """Queues the chain; the future answers its first step's rows, or raises its error
        (`WholeBatch` when the whole batch failed)."""
        answer = asyncio.get_running_loop().create_future()
        if self._pid != os.getpid():  # a forked copy: the pipe and its reader are the parent's
            self._lock, self._child, self._pid = threading.Lock(), None, os.getpid()
        with self._lock:
            self._next += 1
            chain_id = self._next
            frame = _frame((chain_id, steps))  # an argument that cannot cross raises here: nothing sent
            for attempt in (1, 2):
                child = self._child if self._child is not None else self._start()
                child.pending[chain_id] = answer
                try:
                    _write_all(child.requests, frame)
                    break
                except OSError:  # the child is gone: it read nothing of this frame
                    del child.pending[chain_id]
                    self._drop(child)
                    if attempt == 2:
                        raise WriterGone("the SQL writer process could not be started") from None
        return answer

    def _start(self) -> _Child:
        """A new child on fresh pipes, and the thread that reads its answers (under the lock)."""
        child_reads, requests = os.pipe()
        answers, child_writes = os.pipe()
        with contextlib.suppress(OSError):  # a smaller pipe only makes a full one likelier
            fcntl.fcntl(requests, fcntl.F_SETPIPE_SZ, _PIPE_SIZE)
        try:
            process = subprocess.Popen(
                [sys.executable, "-m", "kernel.sqlite_writer", str(child_reads), str(child_writes)],
                pass_fds=(child_reads, child_writes), stdin=subprocess.DEVNULL, close_fds=True)
        except BaseException:
            for fd in (requests, answers):
                os.close(fd)
            raise
        finally:
            os.close(child_reads)
            os.close(child_writes)
        child = self._child = _Child(process, requests)
        _write_all(requests, _frame(self._kwargs))
        threading.Thread(target=self._read_answers, args=(child, answers), name="sqlite-writer-answers",
                         daemon=True).start()
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
                for replies in _frames(buffer):
                    with self._lock:
                        settled = [(child.pending.pop(chain_id, None), whole, result)
                                   for chain_id, whole, result in replies]
                    for answer, whole, result in settled:
                        if answer is not None:
                            _answer(answer, WholeBatch(result) if whole else result)
        finally:
            os.close(fd)
            with self._lock:
                self._drop(child)
                orphaned, child.pending = list(child.pending.values()), {}
            for answer in orphaned:
                _answer(answer, WriterGone("the SQL writer process ended before it answered"))
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


class WholeBatch(Exception):
    """The batch's transaction failed as a whole (its BEGIN or COMMIT): `cause` is every
    chain's error."""

    def __init__(self, cause: BaseException) -> None:
        super().__init__(str(cause))
        self.cause = cause


def _answer(answer: asyncio.Future[Any], result: Any) -> None:
    with contextlib.suppress(RuntimeError):  # its loop closed: nobody waits for it
        answer.get_loop().call_soon_threadsafe(settle, answer, result)


def _serve(reads: int, writes: int) -> None:
    """The child: the connection's kwargs first, then chains until the pipe closes. Signals
    meant for the API (Ctrl-C, a stop) leave it be: it ends when the API is gone, after what
    it holds."""
    for stop in (signal.SIGINT, signal.SIGTERM):
        signal.signal(stop, signal.SIG_IGN)
    from piccolo.engine.sqlite import dict_factory  # also registers Piccolo's adapters and converters

    buffer = bytearray()
    kwargs: dict[str, Any] | None = None
    connection: sqlite3.Connection | None = None
    while data := os.read(reads, 1 << 20):
        buffer += data
        chains = _frames(buffer)
        if kwargs is None and chains:
            kwargs, chains = chains[0], chains[1:]
            connection = sqlite3.connect(**kwargs)
            connection.row_factory = dict_factory
            connection.execute("PRAGMA foreign_keys = 1")
        if not chains or connection is None:
            continue
        try:
            begin(connection)
            replies = [(chain_id, False, _portable(savepointed(connection, steps))) for chain_id, steps in chains]
            connection.execute("COMMIT")
        except BaseException as error:
            replies = [(chain_id, True, _portable(error)) for chain_id, _ in chains]
            with contextlib.suppress(sqlite3.Error):
                if connection.in_transaction:
                    connection.execute("ROLLBACK")
        _write_all(writes, _frame(replies))
        if connection.in_transaction:
            return  # stuck inside a transaction it cannot end: the next chain starts a new writer


if __name__ == "__main__":
    _serve(int(sys.argv[1]), int(sys.argv[2]))
