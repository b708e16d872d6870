"""`write_chain`: one write transaction whose later statements run only when the first found
its rows, all or nothing (on SQLite in one hop on the writer: a process of its own or a
thread of the API's; on Postgres statement by statement in a transaction)."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from typing import Any

import pytest
from piccolo.columns import Integer, Varchar
from piccolo.querystring import QueryString
from piccolo.table import Table

from kernel.ids import new_id
from kernel.sqlite_pool import PooledSQLiteEngine, Statement, inserts, postgres, run_statement, write_chain, writing
from kernel.sqlite_writer import WriterProcess

pytestmark = pytest.mark.sql


class ChainProbe(Table, tablename="chain_probe"):
    id = Varchar(length=40, primary_key=True)
    status = Varchar(length=20)
    n = Integer()


@pytest.fixture
async def probe(migrated) -> str:  # type: ignore[no-untyped-def]
    await ChainProbe.create_table(if_not_exists=True).run()
    row_id = new_id("probe")
    await ChainProbe.insert(ChainProbe(id=row_id, status="new", n=0)).run()
    return row_id


@pytest.fixture(params=["process", "thread"])
def writer(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """The SQLite engine's chains run by its writer process, or by its writer thread (each
    test of either runs with both; on Postgres there is neither)."""
    engine = ChainProbe._meta.db
    if isinstance(engine, PooledSQLiteEngine):
        if request.param == "thread":
            monkeypatch.setattr(engine, "writer_process", None)
        elif engine.writer_process is None:
            process = WriterProcess(engine.connection_kwargs)
            monkeypatch.setattr(engine, "writer_process", process)
            request.addfinalizer(process.close)
    elif request.param == "thread":
        pytest.skip("one run on Postgres")
    return str(request.param)


@pytest.fixture
def process_writer(monkeypatch: pytest.MonkeyPatch) -> WriterProcess:
    """The tests of the writer process itself."""
    engine = ChainProbe._meta.db
    if not isinstance(engine, PooledSQLiteEngine):
        pytest.skip("the pooled SQLite engine's writer process")
    if engine.writer_process is None:
        process = WriterProcess(engine.connection_kwargs)
        monkeypatch.setattr(engine, "writer_process", process)
    return engine.writer_process


@pytest.fixture
def thread_writer(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests of the writer thread itself (its lock, its batch, its connection)."""
    engine = ChainProbe._meta.db
    if isinstance(engine, PooledSQLiteEngine):
        monkeypatch.setattr(engine, "writer_process", None)


def _moved(row_id: str, to: str) -> object:
    return ChainProbe.update({ChainProbe.status: to}).where(
        (ChainProbe.id == row_id) & (ChainProbe.status == "new")).returning(ChainProbe.id)


async def _statuses(*row_ids: str) -> list[str | None]:
    rows = {r["id"]: r["status"] for r in await ChainProbe.select().where(ChainProbe.id.is_in(list(row_ids))).run()}
    return [rows.get(i) for i in row_ids]


async def test_the_later_statements_follow_a_first_that_found_its_row(probe: str, writer: str) -> None:
    line = new_id("probe")
    rows = await write_chain(ChainProbe._meta.db, _moved(probe, "done"),
                             [ChainProbe.insert(ChainProbe(id=line, status="line", n=1))])
    assert [r["id"] for r in rows] == [probe]
    assert await _statuses(probe, line) == ["done", "line"]


async def test_nothing_follows_a_first_that_found_nothing(probe: str, writer: str) -> None:
    await write_chain(ChainProbe._meta.db, _moved(probe, "done"))
    line = new_id("probe")
    rows = await write_chain(ChainProbe._meta.db, _moved(probe, "again"),
                             [ChainProbe.insert(ChainProbe(id=line, status="line", n=1))])
    assert rows == [] and await _statuses(probe, line) == ["done", None]


async def test_a_failing_later_statement_takes_the_first_back_and_the_writer_goes_on(probe: str, writer: str) -> None:
    duplicate = ChainProbe.insert(ChainProbe(id=probe, status="clash", n=2))  # the primary key is taken
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        await write_chain(ChainProbe._meta.db, _moved(probe, "done"), [duplicate])
    assert await _statuses(probe) == ["new"]
    assert [r["id"] for r in await write_chain(ChainProbe._meta.db, _moved(probe, "done"))] == [probe]


async def test_a_multi_row_statement_outside_a_transaction_lands_whole_or_not_at_all(probe: str, writer: str) -> None:
    # run_statement: the CRM batch's and the feed's multi-row inserts, sent to the writer as they are.
    fresh = [new_id("probe") for _ in range(300)]
    [insert] = inserts("chain_probe", ("id", "status", "n"), [(i, "line", n) for n, i in enumerate(fresh)],
                       "ON CONFLICT DO NOTHING", 500)
    await run_statement(ChainProbe._meta.db, insert)
    assert await _statuses(*fresh) == ["line"] * 300
    clash = [new_id("probe"), probe]  # the second row's key is taken, and nothing resolves it
    [failing] = inserts("chain_probe", ("id", "status", "n"), [(i, "clash", 0) for i in clash], "", 500)
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        await run_statement(ChainProbe._meta.db, failing)
    assert await _statuses(*clash) == [None, "new"]
    [bound] = await run_statement(ChainProbe._meta.db, Statement(
        "UPDATE chain_probe SET status = {} WHERE id = {} RETURNING id, n", ("bound", fresh[7])))
    assert (bound["id"], bound["n"], await _statuses(fresh[7])) == (fresh[7], 7, ["bound"])


async def test_concurrent_chains_on_one_row_apply_once(probe: str, writer: str) -> None:
    lines = [new_id("probe") for _ in range(20)]
    answers = await asyncio.gather(*(
        write_chain(ChainProbe._meta.db, _moved(probe, "done"), [ChainProbe.insert(ChainProbe(id=line, status="line", n=1))])
        for line in lines))
    assert sum(1 for rows in answers if rows) == 1
    written = [status for status in await _statuses(*lines) if status is not None]
    assert written == ["line"] and await _statuses(probe) == ["done"]


async def _chained(row_id: str) -> None:
    """A line written by a chain of one statement."""
    assert await write_chain(ChainProbe._meta.db, ChainProbe.insert(ChainProbe(id=row_id, status="line", n=1)).returning(
        ChainProbe.id))


async def _stepped(row_id: str, steps: int = 1) -> None:
    """A line written by a transaction of several statements awaited one by one (n = steps)."""
    async with writing(ChainProbe._meta.db):
        await ChainProbe.insert(ChainProbe(id=row_id, status="line", n=1)).run()
        for n in range(2, steps + 1):
            await asyncio.sleep(0)  # other writes are queued meanwhile
            await ChainProbe.update({ChainProbe.n: n}).where(ChainProbe.id == row_id).run()


def _pooled(engine: object) -> None:
    if not isinstance(engine, PooledSQLiteEngine):
        pytest.skip("the pooled SQLite engine's writer connection")


async def test_a_transaction_left_open_on_the_writer_fails_no_later_write(probe: str, thread_writer: None) -> None:
    """As if a failed chain's ROLLBACK had failed too: the writes queued behind it, chains
    and transactions of several statements alike, end that leftover and go on."""
    engine = ChainProbe._meta.db
    _pooled(engine)
    await write_chain(engine, _moved(probe, "done"))
    stuck = engine._pool().writer
    for first in ("chain", "steps"):
        await stuck.execute("BEGIN")
        lines = [new_id("probe") for _ in range(16)]
        burst = [_stepped(lines[0]), *(_chained(i) for i in lines[1:])] if first == "steps" else \
            [*(_chained(i) for i in lines[:10]), _stepped(lines[10]), *(_chained(i) for i in lines[11:])]
        await asyncio.gather(*burst)
        assert await _statuses(*lines) == ["line"] * 16, first


async def test_a_closed_writer_is_replaced(probe: str, thread_writer: None) -> None:
    engine = ChainProbe._meta.db
    _pooled(engine)
    await write_chain(engine, _moved(probe, "done"))
    pool = engine._pool()
    await pool.writer.close()  # as if its thread had ended under us
    with pytest.raises(ValueError):
        await write_chain(engine, ChainProbe.insert(ChainProbe(id=new_id("probe"), status="line", n=1)))
    assert pool.writer is None  # the next write opens a new one
    line = new_id("probe")
    assert await write_chain(engine, ChainProbe.insert(ChainProbe(id=line, status="line", n=1)).returning(ChainProbe.id))
    assert await _statuses(line) == ["line"]


async def test_a_chain_whose_loop_closed_leaves_the_writer_thread_running(probe: str, thread_writer: None,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """A loop that ends (a test's, a worker's at shutdown) while its chain waits for the
    writer's thread: the chain still runs, and its answer, with nobody to take it, neither
    kills the connection's thread nor surfaces as an unhandled error."""
    from kernel.sqlite_pool import _queue_on

    engine = ChainProbe._meta.db
    _pooled(engine)
    release = threading.Event()
    line = new_id("probe")

    async def left_behind() -> Any:
        await write_chain(engine, _moved(probe, "done"))  # this loop's writer
        writer = engine._pool().writer
        _queue_on(writer, release.wait)
        asyncio.ensure_future(write_chain(engine, ChainProbe.insert(ChainProbe(id=line, status="line", n=1))))
        await asyncio.sleep(0.05)  # the chain waits behind the held thread; the loop then ends
        return writer

    unhandled: list[Any] = []
    monkeypatch.setattr(threading, "excepthook", unhandled.append)
    writer = await asyncio.to_thread(asyncio.run, left_behind())
    release.set()
    for _ in range(100):
        if await _statuses(line) == ["line"]:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # an answer sent to the closed loop would have failed by now
    assert await _statuses(line) == ["line"]
    assert writer._thread.is_alive() and unhandled == []
    await writer.stop()  # its loop is gone: stopped from this one


async def test_chains_and_transactions_of_several_statements_never_interleave(probe: str, thread_writer: None) -> None:
    """Chains only queue under the writer's lock and are answered after it is released; a
    transaction awaited statement by statement keeps the lock, so no chain runs inside it (on
    the one writer connection a chain's BEGIN would fail there) and none of its rows is lost."""
    engine = ChainProbe._meta.db
    _pooled(engine)
    chained = [new_id("probe") for _ in range(30)]
    stepped = [new_id("probe") for _ in range(6)]
    await asyncio.gather(*(_chained(i) for i in chained[:15]), *(_stepped(i, 4) for i in stepped),
                         *(_chained(i) for i in chained[15:]))
    assert await _statuses(*chained) == ["line"] * 30
    rows = await ChainProbe.select().where(ChainProbe.id.is_in(stepped)).run()
    assert sorted((r["status"], r["n"]) for r in rows) == [("line", 4)] * 6


async def test_chains_written_together_each_answer_for_themselves(probe: str, writer: str) -> None:
    """Chains that arrive together share one transaction on SQLite (one commit for all), yet
    each answers as if alone: one that found nothing or failed takes back only itself."""
    engine = ChainProbe._meta.db
    fresh = [new_id("probe") for _ in range(10)]
    done = [new_id("probe") for _ in range(10)]
    await ChainProbe.insert(*(ChainProbe(id=i, status="new", n=0) for i in fresh),
                            *(ChainProbe(id=i, status="done", n=0) for i in done)).run()
    lines = [new_id("probe") for _ in range(30)]

    def line(n: int) -> object:
        return ChainProbe.insert(ChainProbe(id=lines[n], status="line", n=1))

    calls = [write_chain(engine, _moved(fresh[n], "done"), [line(n)]) for n in range(10)]  # found: written
    calls += [write_chain(engine, _moved(done[n], "again"), [line(10 + n)]) for n in range(10)]  # found nothing
    calls += [write_chain(engine, _moved(done[n], "clash"), [ChainProbe.insert(ChainProbe(id=probe, status="x", n=0))])
              for n in range(10)]  # found nothing: its failing later step never runs
    calls += [write_chain(engine, ChainProbe.insert(ChainProbe(id=lines[20 + n], status="line", n=1)).returning(
        ChainProbe.id), [ChainProbe.insert(ChainProbe(id=probe, status="clash", n=2))]) for n in range(10)]  # fail
    answers = await asyncio.gather(*calls, return_exceptions=True)
    assert all(isinstance(a, list) and len(a) == 1 for a in answers[:10]), answers[:10]
    assert answers[10:30] == [[]] * 20
    assert all(isinstance(a, Exception) and ("unique" in str(a).lower() or "duplicate" in str(a).lower())
               for a in answers[30:]), answers[30:]
    assert await _statuses(*fresh) == ["done"] * 10 and await _statuses(*done) == ["done"] * 10
    assert await _statuses(*lines) == ["line"] * 10 + [None] * 20  # the failed chains' first steps taken back
    assert await _statuses(probe) == ["new"]


async def _batched(calls: list[Any], statements: list[str] | None = None) -> list[Any]:
    """The chains run as one batch: the writer's thread is held until all of them wait.
    `statements`: filled with the SQL the writer's connection ran meanwhile."""
    from kernel.sqlite_pool import _queue_on

    engine = ChainProbe._meta.db
    _pooled(engine)
    await write_chain(engine, ChainProbe.insert(ChainProbe(id=new_id("probe"), status="line", n=1)))  # a writer
    writer = engine._pool().writer
    if statements is not None:
        await writer._execute(writer._conn.set_trace_callback, statements.append)
    release = threading.Event()
    _queue_on(writer, release.wait)
    tasks = [asyncio.ensure_future(call) for call in calls]
    await asyncio.sleep(0.05)  # every chain has joined the batch behind the held thread
    release.set()
    answers = await asyncio.gather(*tasks, return_exceptions=True)
    if statements is not None:
        await writer._execute(writer._conn.set_trace_callback, None)
    return answers


async def test_a_value_the_driver_cannot_bind_fails_its_chain_alone(probe: str, thread_writer: None) -> None:
    engine = ChainProbe._meta.db
    _pooled(engine)
    lines = [new_id("probe") for _ in range(6)]
    answers = await _batched([write_chain(engine, ChainProbe.insert(ChainProbe(id=i, status="line", n=2**70 if k == 3 else 1)))
                              for k, i in enumerate(lines)])
    assert isinstance(answers[3], OverflowError), answers
    assert await _statuses(*lines) == ["line", "line", "line", None, "line", "line"]


async def test_a_batch_sqlite_ends_whole_fails_every_chain_with_the_cause_and_writes_none(probe: str, thread_writer: None) -> None:
    engine = ChainProbe._meta.db
    _pooled(engine)
    await engine.run_ddl("CREATE TRIGGER IF NOT EXISTS chain_probe_doomed BEFORE INSERT ON chain_probe "
                         "WHEN NEW.status = 'doomed' BEGIN SELECT RAISE(ROLLBACK, 'doomed'); END")
    lines = [new_id("probe") for _ in range(6)]
    answers = await _batched([write_chain(engine, ChainProbe.insert(ChainProbe(id=i, status="doomed" if k == 2 else "line",
                                                                               n=1))) for k, i in enumerate(lines)])
    assert all(isinstance(a, sqlite3.Error) and "doomed" in str(a) for a in answers), answers
    # Each caller its own error (the same object raised in every task would carry them all's
    # tracebacks), with what SQLite said.
    assert len({id(a) for a in answers}) == 6
    assert {(a.sqlite_errorname, str(a)) for a in answers} == {(answers[0].sqlite_errorname, str(answers[0]))}
    assert await _statuses(*lines) == [None] * 6
    # The writer goes on.
    assert await write_chain(engine, ChainProbe.insert(ChainProbe(id=lines[0], status="line", n=1)).returning(ChainProbe.id))


async def test_single_writes_queued_together_each_answer_for_themselves(probe: str, thread_writer: None) -> None:
    """Single statements outside a transaction join the writer's batch like chains (one BEGIN
    and one COMMIT for all): an UPDATE that answers no rows is still written, and a failing
    INSERT fails alone."""
    _pooled(ChainProbe._meta.db)
    lines = [new_id("probe") for _ in range(5)]
    statements: list[str] = []
    answers = await _batched(statements=statements, calls=[
        ChainProbe.update({ChainProbe.n: 7}).where(ChainProbe.id == probe).run(),  # no RETURNING
        *(ChainProbe.insert(ChainProbe(id=i, status="line", n=1)).run() for i in lines[:2]),
        ChainProbe.insert(ChainProbe(id=probe, status="clash", n=2)).run(),  # the primary key is taken
        *(ChainProbe.insert(ChainProbe(id=i, status="line", n=1)).run() for i in lines[2:]),
        ChainProbe.delete().where(ChainProbe.id == lines[4]).run(),
    ])
    assert [s for s in statements if s.startswith(("BEGIN", "COMMIT"))] == ["BEGIN IMMEDIATE", "COMMIT"], statements
    assert isinstance(answers[3], Exception) and "unique" in str(answers[3]).lower(), answers
    assert not any(isinstance(a, Exception) for k, a in enumerate(answers) if k != 3), answers
    rows = await ChainProbe.select(ChainProbe.id, ChainProbe.status, ChainProbe.n).where(
        ChainProbe.id.is_in([probe, *lines])).run()
    assert {r["id"]: (r["status"], r["n"]) for r in rows} == {probe: ("new", 7), **{i: ("line", 1) for i in lines[:4]}}


async def test_a_job_runs_in_the_batch_and_a_failing_job_takes_back_only_itself(probe: str, thread_writer: None) -> None:
    """`write_job`: work that reads and writes on the writer's own connection, in the batch of
    the chains waiting with it; one that raises leaves nothing it wrote, and the others stand."""
    from kernel.sqlite_pool import write_job

    engine = ChainProbe._meta.db
    _pooled(engine)
    lines = [new_id("probe") for _ in range(3)]

    def counted(connection: Any) -> int:  # reads inside the transaction, then writes from it
        [row] = connection.execute("SELECT n FROM chain_probe WHERE id = ?", [probe]).fetchall()
        connection.execute("INSERT INTO chain_probe (id, status, n) VALUES (?, 'line', ?)", [lines[0], row["n"] + 1])
        return row["n"] + 1

    def broken(connection: Any) -> None:
        connection.execute("INSERT INTO chain_probe (id, status, n) VALUES (?, 'line', 1)", [lines[1]])
        raise ValueError("the job's own refusal")

    answers = await _batched([write_job(engine, counted), write_job(engine, broken),
                              write_chain(engine, ChainProbe.insert(ChainProbe(id=lines[2], status="line", n=1)))])
    assert answers[0] == 1 and isinstance(answers[1], ValueError), answers
    assert await _statuses(*lines) == ["line", None, "line"]



async def test_a_value_the_driver_cannot_bind_fails_its_chain_alone_in_the_writer_process(
        probe: str, process_writer: WriterProcess) -> None:
    engine = ChainProbe._meta.db
    lines = [new_id("probe") for _ in range(6)]
    answers = await asyncio.gather(*(write_chain(engine, ChainProbe.insert(ChainProbe(
        id=i, status="line", n=2**70 if k == 3 else 1))) for k, i in enumerate(lines)), return_exceptions=True)
    assert isinstance(answers[3], OverflowError), answers
    assert await _statuses(*lines) == ["line", "line", "line", None, "line", "line"]


async def test_a_batch_sqlite_ends_whole_in_the_writer_process_fails_its_chains_and_writes_none_of_them(
        probe: str, process_writer: WriterProcess) -> None:
    """Which chains share the doomed one's batch depends on when they reach the process; each
    of those fails with SQLite's own error and is not written, each other one is written, and
    the process goes on."""
    engine = ChainProbe._meta.db
    await engine.run_ddl("CREATE TRIGGER IF NOT EXISTS chain_probe_doomed BEFORE INSERT ON chain_probe "
                         "WHEN NEW.status = 'doomed' BEGIN SELECT RAISE(ROLLBACK, 'doomed'); END")
    lines = [new_id("probe") for _ in range(12)]
    answers = await asyncio.gather(*(write_chain(engine, ChainProbe.insert(ChainProbe(
        id=i, status="doomed" if k == 5 else "line", n=1)).returning(ChainProbe.id)) for k, i in enumerate(lines)),
        return_exceptions=True)
    assert isinstance(answers[5], sqlite3.Error) and "doomed" in str(answers[5]), answers
    failed = [isinstance(a, Exception) for a in answers]
    assert all(isinstance(a, sqlite3.Error) and "doomed" in str(a) for a in answers if isinstance(a, Exception))
    assert await _statuses(*lines) == [None if f else "line" for f in failed]
    again = new_id("probe")
    assert await write_chain(engine, ChainProbe.insert(ChainProbe(id=again, status="line", n=1)).returning(ChainProbe.id))


async def test_a_writer_process_killed_fails_the_chain_it_held_and_the_next_write_starts_another(
        probe: str, process_writer: WriterProcess) -> None:
    """`kill -9` of the writer process while a chain waits in it (here for SQLite's lock,
    which the test holds): that chain fails as not known to be written (WriterGone), nothing
    of it is written, and the next chain is written by a new process."""
    import os
    import signal

    from kernel.sqlite_writer import WriterGone

    engine, process = ChainProbe._meta.db, process_writer
    await write_chain(engine, _moved(probe, "done"))
    first = process._child
    assert first is not None
    holder = sqlite3.connect(engine.connection_kwargs["database"], isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the writer process waits for the lock in SQLite's busy handler
    line = new_id("probe")
    waiting = asyncio.ensure_future(write_chain(engine, ChainProbe.insert(ChainProbe(id=line, status="line", n=1))))
    await asyncio.sleep(0.2)
    os.kill(first.process.pid, signal.SIGKILL)
    with pytest.raises(WriterGone):
        await asyncio.wait_for(waiting, 10)
    holder.execute("ROLLBACK")
    holder.close()
    assert await _statuses(line) == [None]
    again = new_id("probe")
    assert await write_chain(engine, ChainProbe.insert(ChainProbe(id=again, status="line", n=1)).returning(ChainProbe.id))
    assert await _statuses(again) == ["line"]
    assert process._child is not None and process._child is not first
    # Killed while idle: the next chain finds the pipe broken and starts another at once.
    second = process._child
    os.kill(second.process.pid, signal.SIGKILL)
    second.process.wait(timeout=10)
    last = new_id("probe")
    assert await write_chain(engine, ChainProbe.insert(ChainProbe(id=last, status="line", n=1)).returning(ChainProbe.id))
    assert await _statuses(last) == ["line"]


async def _synced(engine: Any, line: str, journalled: bool) -> int:
    """A chain that reads the writer's sync level inside its batch, then writes `line`:
    answers the level (1 NORMAL: no fsync at COMMIT; 2 FULL)."""
    rows = await write_chain(engine, Statement("PRAGMA synchronous", ()),
                             [ChainProbe.insert(ChainProbe(id=line, status="line", n=1))], journalled=journalled)
    return int(rows[0]["synchronous"])


async def test_journalled_chains_alone_commit_without_a_sync_and_any_other_chain_syncs_its_batch(
        probe: str, process_writer: WriterProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    """A redemption's order rows, which the Redis journal holds until the projector has seen
    them, commit without an fsync of their own (kernel/sqlite_writer.py JOURNALLED) while Redis
    syncs every write; every other chain, and any batch one of them shares, syncs at its
    COMMIT; and with a Redis that does not sync every write, every chain syncs."""
    from kernel import sqlite_pool

    engine = ChainProbe._meta.db
    monkeypatch.setattr(sqlite_pool, "_journal_synced", True)
    lines = [new_id("probe") for _ in range(8)]
    assert await _synced(engine, lines[0], journalled=True) == 1
    assert await _synced(engine, lines[1], journalled=False) == 2
    assert await _synced(engine, lines[2], journalled=True) == 1
    # The test holds SQLite's lock: the writer waits in its batch of one, and the two chains
    # sent meanwhile reach it together, as the next batch.
    holder = sqlite3.connect(engine.connection_kwargs["database"], isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    first = asyncio.ensure_future(_synced(engine, lines[3], journalled=True))
    await asyncio.sleep(0.5)  # read by the writer, which now waits for the lock
    together = [asyncio.ensure_future(_synced(engine, lines[4], journalled=False)),
                asyncio.ensure_future(_synced(engine, lines[5], journalled=True))]
    await asyncio.sleep(0.5)
    holder.execute("ROLLBACK")
    holder.close()
    assert await first == 1
    assert [await answer for answer in together] == [2, 2]
    assert await _synced(engine, lines[6], journalled=True) == 1  # and alone again after them
    monkeypatch.setattr(sqlite_pool, "_journal_synced", False)
    assert await _synced(engine, lines[7], journalled=True) == 2
    assert await _statuses(*lines) == ["line"] * 8


async def _commit_level(engine: Any, line: str, journalled: bool) -> str:
    """A chain that reads Postgres's `synchronous_commit` inside its transaction, then writes
    `line`: answers the level its COMMIT runs at ("off": no wait for the WAL's flush)."""
    rows = await write_chain(engine, Statement("SELECT current_setting('synchronous_commit') AS level", ()),
                             [ChainProbe.insert(ChainProbe(id=line, status="line", n=1))], journalled=journalled)
    return str(rows[0]["level"])


async def test_journalled_chains_on_postgres_commit_without_waiting_for_the_flush(
        probe: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The same rows on Postgres commit with `synchronous_commit = off`, for their own
    transaction alone, while Redis syncs every write; every other chain, a journalled one
    inside a transaction of its caller's, and every chain with a Redis that does not sync
    every write, keep the server's setting. (What is read is the setting the COMMIT runs
    under; that Postgres then skips the flush is Postgres's own behaviour.)"""
    from kernel import sqlite_pool

    engine = ChainProbe._meta.db
    if not postgres(engine):
        pytest.skip("Postgres's synchronous_commit (SQLite's JOURNALLED: above)")
    server = str((await engine.run_querystring(
        QueryString("SELECT current_setting('synchronous_commit') AS level")))[0]["level"])
    assert server != "off", "the test server must sync commits for this test to tell anything"
    monkeypatch.setattr(sqlite_pool, "_journal_synced", True)
    lines = [new_id("probe") for _ in range(5)]
    assert await _commit_level(engine, lines[0], journalled=True) == "off"
    assert await _commit_level(engine, lines[1], journalled=False) == server
    assert await _commit_level(engine, lines[2], journalled=True) == "off"
    async with writing(engine):
        assert await _commit_level(engine, lines[3], journalled=True) == server
    monkeypatch.setattr(sqlite_pool, "_journal_synced", False)
    assert await _commit_level(engine, lines[4], journalled=True) == server
    assert await _statuses(*lines) == ["line"] * 5


async def test_the_journal_is_trusted_only_on_a_redis_that_syncs_every_write(private_valkey: str) -> None:
    from kernel.redis_functions import connect, journal_synced

    client = connect(private_valkey)
    try:
        assert await journal_synced(client)  # the embedded server: AOF, appendfsync always
        await client.config_set("appendfsync", "everysec")
        assert not await journal_synced(client)
        await client.config_set("appendfsync", "always")
        await client.config_set("appendonly", "no")
        assert not await journal_synced(client)
    finally:
        await client.aclose()


_OWNER = """
import asyncio, sys
from kernel.sqlite_pool import PooledSQLiteEngine, Statement, write_chain

async def main():
    engine = PooledSQLiteEngine(path=sys.argv[1], timeout=30, writer="process")
    await engine.run_ddl("CREATE TABLE IF NOT EXISTS owned (id TEXT PRIMARY KEY)")
    await write_chain(engine, Statement("INSERT INTO owned (id) VALUES ({}) RETURNING id", ("a",)))
    print(engine.writer_process._child.process.pid, flush=True)
    await asyncio.sleep(600)

asyncio.run(main())
"""


def test_the_writer_process_ends_when_its_api_process_is_killed(tmp_path: Any) -> None:
    """No writer process outlives the process it writes for, even after a `kill -9`."""
    import subprocess
    import sys
    import time
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    owner = subprocess.Popen([sys.executable, "-c", _OWNER, str(tmp_path / "owned.sqlite3")], cwd=root,
                             stdout=subprocess.PIPE, text=True)
    try:
        child = int(owner.stdout.readline())  # type: ignore[union-attr]
        assert _running(child)
        owner.kill()
        owner.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _running(child) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not _running(child)
        rows = sqlite3.connect(tmp_path / "owned.sqlite3").execute("SELECT id FROM owned").fetchall()
        assert rows == [("a",)]
    finally:
        owner.kill()


def _running(pid: int) -> bool:
    """Alive, and not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


async def test_a_writer_process_that_cannot_keep_up_never_blocks_the_event_loop(
        probe: str, process_writer: WriterProcess) -> None:
    """While SQLite's lock is held elsewhere, chains pile up past what the pipe holds (a few
    megabytes of them): the loop keeps running meanwhile, and once the lock is free every
    chain is written, none twice."""
    engine = ChainProbe._meta.db
    await write_chain(engine, _moved(probe, "done"))  # the writer is up
    holder = sqlite3.connect(engine.connection_kwargs["database"], isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    lines = [new_id("probe") for _ in range(1500)]
    padding = "x" * 4000  # about 6 MB of chains in all, several times the pipe's room
    waiting = [asyncio.ensure_future(write_chain(engine, ChainProbe.insert(
        ChainProbe(id=line, status=padding, n=1)).returning(ChainProbe.id))) for line in lines]
    ticks = 0
    for _ in range(20):  # the loop turns while the chains wait (a blocked pipe write would stop it)
        await asyncio.sleep(0.01)
        ticks += 1
    assert ticks == 20 and not any(task.done() for task in waiting)
    holder.execute("ROLLBACK")
    holder.close()
    answers = await asyncio.wait_for(asyncio.gather(*waiting), 120)
    assert all(len(rows) == 1 for rows in answers)
    rows = await ChainProbe.select(ChainProbe.id).where(ChainProbe.id.is_in(lines)).run()
    assert sorted(r["id"] for r in rows) == sorted(lines)


def _refuse_to_load() -> None:
    raise ValueError("this argument cannot be rebuilt in the writer process")


class _Unloadable:
    """Pickles in the API, fails to unpickle in the writer process."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return (_refuse_to_load, ())


async def test_an_argument_the_writer_process_cannot_read_fails_its_chain_alone(
        probe: str, process_writer: WriterProcess) -> None:
    from kernel.sqlite_pool import Statement

    engine = ChainProbe._meta.db
    lines = [new_id("probe") for _ in range(5)]
    insert = "INSERT INTO chain_probe (id, status, n) VALUES ({}, {}, 1) RETURNING id"
    answers = await asyncio.gather(*(write_chain(engine, Statement(
        insert, (line, _Unloadable() if k == 2 else "line"))) for k, line in enumerate(lines)), return_exceptions=True)
    assert isinstance(answers[2], sqlite3.OperationalError) and "could not be read" in str(answers[2]), answers
    assert await _statuses(*lines) == ["line", "line", None, "line", "line"]
    assert await write_chain(engine, _moved(probe, "done"))  # the same process goes on
