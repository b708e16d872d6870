"""Piccolo's SQLite engine, with a few persistent connections instead of one per query.

Piccolo opens a new aiosqlite connection (a new thread) for every query outside a
transaction; at a dozen queries per request that was most of a request's time. This
engine keeps up to `pool_size` connections per event loop (aiosqlite connections belong
to the loop that made them) and hands them out one read at a time. Every write, a write
transaction, a chain or a single INSERT/UPDATE/DELETE (a chain of one statement), runs one
at a time per event loop, in arrival order, on one connection kept for writing (see
`write_transaction`), so no write waits in SQLite's busy handler while holding a connection
the reads need (with `writer="process"` the chains and single writes run one batch at a time
in the writer process instead, and meet this process's transactions and jobs in SQLite's
busy handler: see kernel/sqlite_writer.py). Piccolo's own `transaction()` still gets a
connection of its own; write through `writing(engine)`. Once queued, a chain or single write
is committed even if its caller is cancelled meanwhile.

A transaction of several statements awaited one by one holds SQLite's write lock across
turns of the event loop, and on a busy loop every turn is other requests' work: under 64
concurrent redemptions each of their two write transactions held the lock about 7 ms,
which capped a process at about 65 redemptions a second. `write_chain` runs such a
transaction in one hop on the writer connection's thread: the statements are compiled
first, then BEGIN, the statements and COMMIT run back to back, holding the lock only for
SQLite's own work. Chains that arrive while one waits share its transaction, each in a
savepoint of its own (`_run_batch`): one BEGIN and one COMMIT, SQLite's fsync, for all of
them: under load each took 1.2-1.5 ms on the writer's thread, against 1.7-2 ms for a
redemption's four statements (measured there, 64 concurrent redemptions).

With `writer="process"` (the app's default: piccolo_conf.py, `RW_SQLITE_WRITER`) the chains
and single writes run in a writer process instead (kernel/sqlite_writer.py): on the thread,
each statement handed the GIL back to a busy event loop and waited to get it again.

A query outside a transaction runs first on the event loop's own thread, within a budget of
2 ms of CPU (kernel/sqlite_inline.py): 49-64 us of CPU a read, 64 readers at once on an
indexed SUM. Past its budget, or refused there, it goes to a pooled connection's thread in
one hop (`_read`): the statement, its rows and the cursor's close together, 196-228 us (and,
under load, a wait for the GIL at every row it steps). aiosqlite's own calls made four hops
of it, and each hop wakes the connection's thread and then the event loop (a queue, a futex,
the loop's self-pipe, the GIL handed back and forth): 611 us of CPU a read against 40 us for
SQLite's own work, and 313 us in one hop (bench/sql_reads.py measures each way).
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import functools
import sqlite3
import threading
from collections.abc import AsyncIterator, Sequence
from typing import Any, NamedTuple

import aiosqlite
from piccolo.engine.postgres import PostgresEngine
from piccolo.engine.sqlite import SQLiteEngine, SQLiteTransaction, TransactionType, dict_factory
from piccolo.querystring import QueryString

from kernel import sqlite_batch
from kernel.sqlite_batch import WAL_PAGES, WRITER_CACHE_KIB, Job, Steps, WholeBatch
from kernel.sqlite_inline import InlineReader
from kernel.sqlite_writer import WriterProcess


_WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")

# Whether this process's Redis syncs every write before it answers (kernel/redis_functions.py
# journal_synced, told at start by `trust_journal`): only then may a journalled chain skip
# SQLite's fsync, since only then does the journal outlive a power cut that takes the chain.
_journal_synced = False


def journal_trusted() -> bool:
    """Whether Redis syncs every write before it answers (`trust_journal`): then rows the
    journal carries may wait for its projector."""
    return _journal_synced


def trust_journal(synced: bool) -> None:
    global _journal_synced
    _journal_synced = synced


def _writes(query: str) -> bool:
    """A data change (not a read, nor a PRAGMA or DDL, which may not run inside BEGIN)."""
    return query.lstrip()[:7].upper().startswith(_WRITES)


def _selects(query: str) -> bool:
    """A query (SELECT, or WITH ... SELECT): not a PRAGMA, which may set what it names."""
    return query.lstrip()[:6].upper().startswith(("SELECT", "WITH"))


def writing(engine: Any) -> Any:
    """The transaction to write in with `engine`: on the pooled SQLite engine, queued in the
    process, first come first served, on its writer connection; on plain SQLite, IMMEDIATE
    (the write lock taken at BEGIN, waiting out the busy timeout, instead of failing when a
    read snapshot has to be upgraded under another writer); elsewhere the engine's own."""
    if isinstance(engine, PooledSQLiteEngine):
        return engine.write_transaction()
    if isinstance(engine, SQLiteEngine):
        return engine.transaction(transaction_type=TransactionType.immediate)
    return engine.transaction()


async def copy_wal(engine: Any) -> list[dict[str, Any]] | None:
    """A passive checkpoint of the pooled SQLite engine's WAL, on a pooled connection's thread
    (no writer's): copies into the database what no reader still needs and never waits for
    a lock. Answers SQLite's figures (busy, log, checkpointed), or None elsewhere (Postgres).
    The worker runs it every half second (api/background.py), so commits seldom find the WAL
    past `WAL_PAGES` and copy it themselves."""
    if not isinstance(engine, PooledSQLiteEngine):
        return None
    return await engine._run_in_new_connection("PRAGMA wal_checkpoint(PASSIVE)")


def postgres(engine: Any) -> bool:
    return isinstance(engine, PostgresEngine)


def on_writer_thread(engine: Any) -> bool:
    """Whether a write on `engine` can run in one hop on its writer's thread (`write_job`):
    the pooled SQLite engine, outside a transaction."""
    return isinstance(engine, PooledSQLiteEngine) and engine.current_transaction.get() is None


async def write_job(engine: Any, job: Job) -> Any:
    """`job(connection)` as one write transaction on the pooled SQLite engine's writer
    thread (`on_writer_thread` says when that is possible): it shares a batch with the chains
    waiting then, in its own savepoint, and answers what `job` answered, or raises what it
    raised (then nothing it wrote stays). For work whose statements are known before it
    starts or read on the spot (the journal projector's batch: kernel/sql_steps.py). A job
    neither commits nor catches SQLite's errors: the connection is in autocommit mode, so
    what it wrote after SQLite ended the transaction would stay."""
    return await engine._written(job)


class Statement(NamedTuple):
    """One SQL statement as plain text with `{}` where its arguments go (Piccolo's raw
    convention), for the hot path: building and compiling the same statement with Piccolo
    cost about 50 us of CPU each, 14% of a redemption's main thread."""

    sql: str
    args: tuple[Any, ...]


def placeholders(count: int) -> str:
    """`count` argument places of a `Statement` (or Piccolo's raw SQL), comma separated: the
    values of an `IN (...)` or a row."""
    return ", ".join(["{}"] * count)


def inserts(table: str, columns: tuple[str, ...], rows: Sequence[tuple[Any, ...]], conflict: str,
            per_statement: int) -> list[Statement]:
    """Multi-row INSERT statements writing `rows` (tuples in `columns`' order) into `table`,
    `per_statement` rows each, each ending with `conflict` (its ON CONFLICT clause): plain SQL
    for many rows, where Piccolo's builder cost 0.1-0.5 ms of the event loop's time a row."""
    return [Statement(_insert_sql(table, columns, len(chunk), conflict), tuple(value for row in chunk for value in row))
            for chunk in (rows[start:start + per_statement] for start in range(0, len(rows), per_statement))]


@functools.lru_cache(maxsize=64)
def _insert_sql(table: str, columns: tuple[str, ...], count: int, conflict: str) -> str:
    line = f"({placeholders(len(columns))})"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([line] * count)} {conflict}"


@functools.lru_cache(maxsize=256)
def _qmarks(sql: str) -> str:
    return sql.replace("{}", "?")


async def run_statement(engine: Any, statement: Statement) -> Any:
    """`statement` on `engine`, in its current transaction if there is one. Outside one, the
    pooled SQLite engine takes it as it is, as `write_chain` sends it (a write to the writer,
    a read to the pool: `_run_in_new_connection`): through Piccolo's QueryString every
    argument was checked and converted one by one, and a CRM batch's multi-row inserts (its
    activities, awards and feed lines, about 3,000 arguments) spent a quarter of the batch's
    time on the event loop there (py-spy, the load mix at 700 requests/s)."""
    if on_writer_thread(engine):
        return await engine._run_in_new_connection(*engine._compiled(statement))
    return await engine.run_querystring(QueryString(statement.sql, *statement.args))


def _run(engine: Any, query: Any) -> Any:
    return run_statement(engine, query) if isinstance(query, Statement) else query.run()


async def write_chain(engine: Any, first: Any, then: Sequence[Any] = (), journalled: bool = False) -> list[Any]:
    """One write transaction: the query `first` (Piccolo's, or a `Statement`), then the
    queries `then` only when `first` answered rows (an UPDATE ... RETURNING that found its row,
    a code taken); answers `first`'s rows. On the pooled SQLite engine, in one hop on its
    writer; elsewhere (or inside another transaction) awaited statement by statement in
    `writing(engine)`. `journalled`: rows the Redis journal holds until its projector has seen
    them in SQL, which the writer process may commit without an fsync of their own
    (kernel/sqlite_writer.py, JOURNALLED) when Redis syncs every write (`trust_journal`),
    and Postgres likewise (`synchronous_commit = off` for that transaction alone: its WAL too
    is flushed in order, so the projector's own synced commit after it read the rows flushes
    them, the argument JOURNALLED gives); inside another transaction they are written as any
    chain."""
    relaxed = journalled and _journal_synced
    if on_writer_thread(engine):
        return await engine.write_chain(first, then, relaxed)
    outer = engine.current_transaction.get() is not None
    async with writing(engine) as transaction:
        if relaxed and not outer and postgres(engine):
            # A simple query on the transaction's connection: one round trip, not asyncpg's
            # prepare and execute.
            await transaction.connection.execute("SET LOCAL synchronous_commit = off")
        rows = await _run(engine, first)
        if rows:
            for query in then:
                await _run(engine, query)
    return rows


class _Batch:
    """The chains waiting for one writer connection's thread. The first to arrive queues the
    job (`_run_batch`) that runs all those waiting when it starts: one BEGIN and one COMMIT
    (one fsync) for as many chains as arrived meanwhile."""

    def __init__(self, writer: aiosqlite.Connection) -> None:
        self.writer = writer
        self.lock = threading.Lock()  # the event loop adds, the writer's thread takes
        self.waiting: list[tuple[Steps | Job, asyncio.Future[Any]]] = []

    def add(self, steps: Steps | Job, answer: asyncio.Future[Any]) -> bool:
        """True when no job is queued for the chains waiting (the caller queues one)."""
        with self.lock:
            self.waiting.append((steps, answer))
            return len(self.waiting) == 1

    def take(self) -> list[tuple[Steps | Job, asyncio.Future[Any]]]:
        with self.lock:
            taken, self.waiting = self.waiting, []
        return taken


def _run_batch(connection: sqlite3.Connection, batch: _Batch) -> None:
    """On the connection's own thread: the chains waiting in `batch` as one write batch
    (kernel/sqlite_batch.py); the answers go out after the COMMIT."""
    if not batch.waiting:
        # The job before this one took its chains too (they arrived while it waited for
        # SQLite's lock): no transaction to open. One that arrives now queues its own job.
        return
    for answer, result in sqlite_batch.run_batch(connection, batch.take):
        sqlite_batch.answer_soon(answer, result)


def _own_copy(cause: BaseException) -> BaseException:
    """A batch's error for one of its waiting tasks: the same object raised in every one
    would gather all their tracebacks, each log naming the others' frames. The copy keeps the
    writer thread's frames (which statement failed) and SQLite's error code; an exception
    that cannot be copied is raised as it is."""
    try:
        return copy.copy(cause).with_traceback(cause.__traceback__)
    except Exception:
        return cause


def _queue_on(connection: aiosqlite.Connection, fn: Any, *args: Any) -> None:
    """`fn(*args)` queued to run on the connection's thread, as aiosqlite's own `_execute`
    queues it, without a future of its own: `fn` answers through the futures it holds. (An
    answer aiosqlite sends after `fn` returns can reach a loop that closed meanwhile, and the
    connection's thread dies of that.)"""
    if not connection._running or not connection._connection:
        raise ValueError("Connection closed")
    connection._tx.put_nowait((None, functools.partial(fn, *args)))


def _read(connection: sqlite3.Connection, query: str, args: list[Any]) -> list[Any]:
    """A read on its connection's thread, whole: one hop there and back. Through aiosqlite's
    own calls (execute, fetchall, the cursor's close, a commit) it was four, each waking that
    thread and then the event loop: about 600 us of CPU a read under 64 concurrent readers,
    against 40 us for SQLite's own work (measured; see the module's docstring)."""
    cursor = connection.execute(query, args)
    try:
        return cursor.fetchall()
    finally:
        cursor.close()
        if connection.in_transaction:  # autocommit: only a statement that began one (raw SQL)
            connection.commit()


class _LoopPool:
    def __init__(self, size: int) -> None:
        self.idle: asyncio.Queue[aiosqlite.Connection] = asyncio.Queue()
        self.size = size
        self.opened = 0
        self.writer: aiosqlite.Connection | None = None
        self.writer_lock = asyncio.Lock()
        self.batch: _Batch | None = None
        self.inline: InlineReader | None = None
        self.inline_failed = False

    def inline_reader(self, connection_kwargs: dict[str, Any]) -> InlineReader | None:
        """The loop's own read connection (kernel/sqlite_inline.py), opened at its first use;
        None when it could not be opened (every read then goes to a pooled thread)."""
        if self.inline is None and not self.inline_failed:
            try:
                self.inline = InlineReader(connection_kwargs)
            except Exception:
                self.inline_failed = True
        return self.inline

    def close_inline(self) -> None:
        if self.inline is not None:
            self.inline.close()
            self.inline = None


class _WriterTransaction(SQLiteTransaction):
    """A BEGIN IMMEDIATE transaction on the loop's writer connection, which outlives it."""

    __slots__ = ("pool",)

    def __init__(self, engine: SQLiteEngine, pool: _LoopPool) -> None:
        super().__init__(engine, transaction_type=TransactionType.immediate)
        self.pool = pool

    async def get_connection(self) -> aiosqlite.Connection:
        assert self.pool.writer is not None
        return self.pool.writer

    async def begin(self) -> None:
        await self.connection._execute(sqlite_batch.begin, self.connection._conn)

    async def __aexit__(self, exception_type: Any, exception: Any, traceback: Any) -> bool:
        try:
            if exception is not None:
                if not self._rolled_back:
                    await self.rollback()
            elif not self._committed and not self._rolled_back:
                try:
                    await self.commit()
                except BaseException:
                    await self.rollback()
                    raise
        except BaseException:
            # A connection that could not end its transaction is not used again.
            self.pool.writer = None
            with contextlib.suppress(Exception):
                await self.connection.close()
            raise
        finally:
            self.engine.current_transaction.reset(self.context)
        return exception is None


class PooledSQLiteEngine(SQLiteEngine):
    def __init__(self, *args: Any, pool_size: int = 4, writer: str = "thread", inline_reads: bool = True,
                 **kwargs: Any) -> None:
        """`writer`: where the chains and single writes run, "thread" (a connection's thread in
        this process) or "process" (kernel/sqlite_writer.py: a child with a GIL of its own).
        `inline_reads`: a query outside a transaction is tried on the event loop's own thread
        first, within a budget (kernel/sqlite_inline.py); off, every read goes to a pooled
        connection's thread."""
        super().__init__(*args, **kwargs)
        if writer not in ("thread", "process"):
            raise ValueError(f"the SQLite writer is 'thread' or 'process', not {writer!r}")
        self.inline_reads = inline_reads
        self.pool_size = pool_size
        self._pools: dict[asyncio.AbstractEventLoop, _LoopPool] = {}
        self.writer_process = WriterProcess(self.connection_kwargs) if writer == "process" else None

    def _pool(self) -> _LoopPool:
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            # Loops that ended (tests) take their connections with them. Another thread's loop
            # may be here at once: the keys are copied whole (under the GIL) and popped softly.
            for old in [lp for lp in list(self._pools) if lp.is_closed()]:
                ended = self._pools.pop(old, None)
                if ended is not None:
                    ended.close_inline()
            pool = self._pools[loop] = _LoopPool(self.pool_size)
        return pool

    async def _connect(self, writer: bool = False) -> aiosqlite.Connection:
        pending = aiosqlite.connect(**self.connection_kwargs)
        # A pooled connection's thread must not keep the process alive at exit (every
        # query has committed before it returns, so nothing is lost with it).
        pending._thread.daemon = True
        connection = await pending
        connection.row_factory = dict_factory  # type: ignore[assignment]
        await connection.execute("PRAGMA foreign_keys = 1")
        # Every commit synced (the journal projector's among them: kernel/sqlite_writer.py
        # JOURNALLED counts on it), whatever the SQLite build's default for WAL.
        async with connection.execute("PRAGMA synchronous") as cursor:
            level = await cursor.fetchone()
        if level is not None and int(level["synchronous"]) < 2:
            await connection.execute("PRAGMA synchronous = FULL")
        await connection.execute(f"PRAGMA wal_autocheckpoint = {WAL_PAGES}")
        if writer:
            await connection.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")
        return connection

    async def _acquire(self) -> tuple[_LoopPool, aiosqlite.Connection]:
        pool = self._pool()
        if pool.idle.empty() and pool.opened < pool.size:
            pool.opened += 1
            try:
                return pool, await self._connect()
            except BaseException:
                pool.opened -= 1
                raise
        return pool, await pool.idle.get()

    @contextlib.asynccontextmanager
    async def write_transaction(self) -> AsyncIterator[SQLiteTransaction]:
        """A write transaction, queued in this process behind the ones before it.

        SQLite has one writer; its busy handler lets waiting writers retry after sleeps of
        up to 100 ms, in no order, so with dozens of transactions waiting on their own
        connections a few waited tens of seconds. Here they wait in an asyncio lock (first
        come, first served) and only the head of the queue asks SQLite, on a connection kept
        for it (no connection opened per transaction). Inside another transaction: that one."""
        current = self.current_transaction.get()
        if current is not None:
            yield current
            return
        pool = self._pool()
        async with pool.writer_lock:
            if pool.writer is None:
                pool.writer = await self._connect(writer=True)
            async with _WriterTransaction(self, pool) as transaction:
                yield transaction

    def _compiled(self, query: Any) -> tuple[str, list[Any]]:
        if isinstance(query, Statement):
            return _qmarks(query.sql), list(query.args)
        [querystring] = query.querystrings  # one statement each (an INSERT, UPDATE, raw SQL)
        sql, args = querystring.compile_string(engine_type=self.engine_type)
        return sql, list(args)

    async def write_chain(self, first: Any, then: Sequence[Any], journalled: bool = False) -> list[dict[str, Any]]:
        """See the module's `write_chain`: queued with the other writes of this loop, then one
        hop (aiosqlite's queue to the connection's thread) for the whole transaction."""
        # Compiled before the lock.
        return await self._written([self._compiled(query) for query in (first, *then)], journalled)

    async def _written(self, steps: Steps | Job, journalled: bool = False) -> Any:
        """`steps` as one chain of this loop's next write batch: its first step's rows (a
        job's answer)."""
        if self.writer_process is not None and not callable(steps):
            try:
                return await self.writer_process.send(steps, journalled)
            except WholeBatch as failed:
                raise _own_copy(failed.cause) from None
        pool = self._pool()
        async with pool.writer_lock:
            if pool.writer is None:
                pool.writer = await self._connect(writer=True)
            writer = pool.writer
            # Only the queueing happens under the lock: the connection's thread runs its queue
            # in order, so a transaction that takes the lock after this one runs after it, and
            # the next chain need not wait for this one's answer to travel back through the
            # event loop (under load that wait, a turn or two of a busy loop, was most of the
            # time the lock was held: the writer's thread sat idle between chains).
            if pool.batch is None or pool.batch.writer is not writer:
                pool.batch = _Batch(writer)
            done = asyncio.get_running_loop().create_future()
            if pool.batch.add(steps, done):
                try:
                    _queue_on(writer, _run_batch, writer._conn, pool.batch)
                except ValueError:  # closed under us: the next write opens a new one
                    pool.writer = pool.batch = None
                    raise
        try:
            return await done
        except WholeBatch as failed:  # (a chain's own error took back only its savepoint)
            async with pool.writer_lock:  # no transaction of this loop is open meanwhile
                await self._drop_if_stuck(pool, writer)
            raise _own_copy(failed.cause) from None

    async def _drop_if_stuck(self, pool: _LoopPool, writer: aiosqlite.Connection) -> None:
        """A writer left inside a transaction (its ROLLBACK failed too) would refuse every later
        BEGIN of this loop: it is closed, and the next write opens a new one."""
        try:
            stuck = await writer._execute(lambda: writer._conn.in_transaction)
        except Exception:
            stuck = True
        if stuck and pool.writer is writer:
            pool.writer = None
            with contextlib.suppress(Exception):
                await writer.close()

    async def _run_in_new_connection(self, query: str, args: list[Any] | None = None,
                                     query_type: str = "generic", table: Any = None) -> Any:
        if _writes(query):
            # A write outside a transaction joins the writer connection's next batch, a chain
            # of one step. On a pooled connection it waited for SQLite's lock in the busy
            # handler (sleeps of up to 100 ms), holding that connection: the reads queued
            # behind it for a connection (read p99 223 ms in the load mix at 40 requests/s).
            # As a transaction of its own it took three hops through the event loop (BEGIN,
            # the statement, COMMIT) holding the write lock across them: 17 ms a statement
            # in the load mix at 250 requests/s, where a partner's fulfil writes three.
            return await self._written([(query, list(args or []))])
        if self.inline_reads and _selects(query):
            pool = self._pool()
            inline = pool.inline_reader(self.connection_kwargs)
            rows = inline.read(query, list(args or [])) if inline is not None else None
            if rows is not None:
                return rows
            if inline is not None and inline.broken:
                pool.close_inline()  # the next read opens another
        pool, connection = await self._acquire()
        healthy = True
        try:
            return await connection._execute(_read, connection._conn, query, list(args or []))
        except BaseException:
            try:
                await connection.rollback()
            except Exception:
                healthy = False
            raise
        finally:
            if healthy:
                pool.idle.put_nowait(connection)
            else:
                pool.opened -= 1
                await connection.close()

    async def close_pool(self) -> None:
        """Closes this loop's pooled connections (at shutdown)."""
        pool = self._pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            pool.close_inline()
        while pool is not None and not pool.idle.empty():
            await pool.idle.get_nowait().close()
        if pool is not None and pool.writer is not None:
            await pool.writer.close()
