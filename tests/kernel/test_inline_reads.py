"""Short reads on the event loop's own thread (kernel/sqlite_inline.py): the same rows as on a
pooled thread, a read past its budget answered from a thread all the same, nothing that
writes or changes a setting run there, and a write seen by the next read."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from piccolo.table import Table

from kernel import sqlite_inline, sqlite_pool
from kernel.sqlite_pool import PooledSQLiteEngine, Statement, run_statement, write_chain

# A query whose work grows with n (a recursive count): far past any budget at a million.
COUNT_TO = "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < {}) SELECT COUNT(*) AS n FROM c"


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[PooledSQLiteEngine]:
    path = tmp_path / "reads.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE o (id TEXT PRIMARY KEY, p TEXT, v INTEGER)")
        db.executemany("INSERT INTO o VALUES (?, ?, ?)", [(f"o{i}", f"p{i % 4}", i) for i in range(40)])
    engine = PooledSQLiteEngine(path=str(path), timeout=30, writer="process")
    yield engine
    await engine.close_pool()
    if engine.writer_process is not None:
        engine.writer_process.close()


def _pool(engine: PooledSQLiteEngine):  # type: ignore[no-untyped-def]
    return engine._pools[asyncio.get_running_loop()]


def _unhurried(engine: PooledSQLiteEngine) -> None:
    """Only the CPU budget may interrupt this loop's reads: on a loaded machine (CI's two test
    processes, their browsers, the session app's worker tasks) the loop's thread can be
    preempted past the 10 ms wall budget, and a read interrupted so goes to a pooled thread,
    as it should, but not as a test of the budget or of the loop's own reads expects."""
    engine._pool().inline_reader(engine.connection_kwargs).wall = 60.0  # type: ignore[union-attr]


async def _rows(engine: PooledSQLiteEngine, sql: str, *args: object) -> list[dict[str, object]]:
    return await run_statement(engine, Statement(sql, args))


async def test_a_short_read_answers_its_rows_without_a_pooled_connection(engine: PooledSQLiteEngine) -> None:
    threaded = PooledSQLiteEngine(path=engine.path, timeout=30, inline_reads=False)
    query = "SELECT id, v FROM o WHERE p = {} ORDER BY v DESC LIMIT 5"
    _unhurried(engine)
    try:
        on_the_loop = await asyncio.gather(*(_rows(engine, query, f"p{i % 4}") for i in range(64)))
        on_threads = await asyncio.gather(*(_rows(threaded, query, f"p{i % 4}") for i in range(64)))
    finally:
        await threaded.close_pool()
    assert on_the_loop == on_threads
    assert on_the_loop[1] == [{"id": f"o{v}", "v": v} for v in (37, 33, 29, 25, 21)]
    assert _pool(engine).opened == 0  # no pooled connection (no thread) was needed


async def test_a_read_past_its_budget_is_answered_from_a_thread_and_goes_there_next_time(
        engine: PooledSQLiteEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    on_threads: list[str] = []
    read = sqlite_pool._read

    def counted(connection: sqlite3.Connection, query: str, args: list[object]) -> object:
        # This test's statement only: the session's app (another loop, another thread) reads
        # on pooled threads meanwhile too, its worker tasks' WAL copy every half second.
        if query == COUNT_TO.replace("{}", "?"):
            on_threads.append(query)
        return read(connection, query, args)

    monkeypatch.setattr(sqlite_pool, "_read", counted)
    _unhurried(engine)  # a read interrupted for wall time alone is not remembered slow
    assert await _rows(engine, COUNT_TO, 10) == [{"n": 10}]
    assert on_threads == []
    assert await _rows(engine, COUNT_TO, 1_000_000) == [{"n": 1_000_000}]
    assert len(on_threads) == 1  # interrupted on the loop, run again on a pooled thread
    assert COUNT_TO.replace("{}", "?") in _pool(engine).inline.slow  # the text as SQLite got it
    # The same statement, however short now, goes to the thread while it is remembered slow.
    assert await _rows(engine, COUNT_TO, 3) == [{"n": 3}]
    assert len(on_threads) == 2


async def test_a_slow_statement_is_tried_on_the_loop_again_after_a_while(
        engine: PooledSQLiteEngine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_inline, "SLOW_FOR", 0.0)
    assert await _rows(engine, COUNT_TO, 1_000_000) == [{"n": 1_000_000}]
    assert await _rows(engine, COUNT_TO, 5) == [{"n": 5}]
    assert not _pool(engine).inline.slow  # tried here again, and fast this time


async def test_a_read_does_not_wait_for_a_writer_and_sees_only_what_is_committed(
        engine: PooledSQLiteEngine) -> None:
    writer = sqlite3.connect(engine.path, isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")
        writer.execute("INSERT INTO o VALUES ('uncommitted', 'p0', 1000)")
        assert await _rows(engine, "SELECT COUNT(*) AS n FROM o") == [{"n": 40}]
        writer.execute("COMMIT")
    finally:
        writer.close()
    assert await _rows(engine, "SELECT COUNT(*) AS n FROM o") == [{"n": 41}]


async def test_each_write_is_seen_by_the_read_after_it(engine: PooledSQLiteEngine) -> None:
    async def write_then_read(i: int) -> list[dict[str, object]]:
        await write_chain(engine, Statement("INSERT INTO o VALUES ({}, 'new', {})", (f"n{i}", i)))
        return await _rows(engine, "SELECT v FROM o WHERE id = {}", f"n{i}")

    seen = await asyncio.gather(*(write_then_read(i) for i in range(100)))
    assert seen == [[{"v": i}] for i in range(100)]


async def test_writes_and_settings_never_run_on_the_loops_read_connection(engine: PooledSQLiteEngine) -> None:
    # A write that does not start with INSERT is refused there (query_only) and runs as before.
    await run_statement(engine, Statement("WITH x AS (SELECT 7 AS v) INSERT INTO o SELECT 'w', 'p9', v FROM x", ()))
    assert await _rows(engine, "SELECT v FROM o WHERE id = 'w'") == [{"v": 7}]
    # A PRAGMA is not sent there at all: it could turn query_only off.
    await run_statement(engine, Statement("PRAGMA query_only = 0", ()))
    assert _pool(engine).inline.connection.execute("PRAGMA query_only").fetchone()["query_only"] == 1


async def test_a_reads_own_error_is_raised_as_sqlite_raises_it(engine: PooledSQLiteEngine) -> None:
    with pytest.raises(sqlite3.OperationalError, match="no such table"):
        await _rows(engine, "SELECT * FROM no_such_table")


async def test_a_piccolo_select_reads_on_the_loop_too(engine: PooledSQLiteEngine) -> None:
    class O(Table, tablename="o", db=engine):  # type: ignore[call-arg]
        pass

    _unhurried(engine)
    assert await O.raw("SELECT COUNT(*) AS n FROM o WHERE p = {}", "p1").run() == [{"n": 10}]
    assert _pool(engine).opened == 0


def test_a_loops_read_connection_is_closed_when_another_thread_finds_its_loop_ended(tmp_path: Path) -> None:
    import threading

    path = tmp_path / "reads.sqlite3"
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE o (v INTEGER)")
        db.execute("INSERT INTO o VALUES (1)")
    engine = PooledSQLiteEngine(path=str(path), timeout=30)
    query = Statement("SELECT v FROM o", ())
    answers: list[object] = []
    other = threading.Thread(target=lambda: answers.append(asyncio.run(run_statement(engine, query))))
    other.start()
    other.join()

    async def here() -> object:  # this loop's first read drops the ended loop's pool
        try:
            return await run_statement(engine, query)
        finally:
            await engine.close_pool()

    assert asyncio.run(here()) == [{"v": 1}]
    assert answers == [[{"v": 1}]]
    assert len(engine._pools) == 0


def test_a_read_out_of_wall_time_only_goes_to_a_thread_this_time_and_is_not_remembered_slow(tmp_path: Path) -> None:
    """Waits for the GIL or for a core are not the statement's cost: it is tried here again."""
    reader = sqlite_inline.InlineReader({"database": str(tmp_path / "r.sqlite3")}, budget=60.0, wall=0.0)
    try:
        query = COUNT_TO.replace("{}", "?")
        assert reader.read(query, [100_000]) is None
        assert not reader.slow
        reader.wall = 60.0
        assert reader.read(query, [100_000]) == [{"n": 100_000}]
    finally:
        reader.close()


async def test_a_file_that_is_not_a_database_drops_the_loops_read_connection(tmp_path: Path) -> None:
    path = tmp_path / "garbage.sqlite3"
    path.write_bytes(b"not a database, " * 512)
    engine = PooledSQLiteEngine(path=str(path), timeout=30)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="not a database"):
            await run_statement(engine, Statement("SELECT COUNT(*) AS n FROM sqlite_master", ()))
        assert _pool(engine).inline is None  # the next read opens another
    finally:
        await engine.close_pool()
