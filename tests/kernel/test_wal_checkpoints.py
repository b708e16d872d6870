"""SQLite's WAL is copied into the database by the worker (kernel/sqlite_pool.py `copy_wal`,
every half second: api/background.py), not by the commits that write it, until it passes
`WAL_PAGES`; the worker runs that copy; and a writer connection keeps a page cache larger than
SQLite's default."""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from api.background import TASKS
from kernel.sqlite_batch import WAL_PAGES, WRITER_CACHE_KIB
from kernel.sqlite_pool import PooledSQLiteEngine, Statement, copy_wal, inserts, write_chain

ROW = "x" * 2_000  # about two rows a page: 2,400 rows are past SQLite's default of 1,000 pages


def in_the_database(path: Path) -> int:
    """The rows the database file itself holds, leaving out the WAL (read as immutable)."""
    db = sqlite3.connect(f"file:{path}?immutable=1", uri=True)
    try:
        return int(db.execute("SELECT count(*) FROM probe").fetchone()[0])
    finally:
        db.close()


@pytest.fixture(params=["process", "thread"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[PooledSQLiteEngine]:
    """An engine on a file of its own in WAL mode, its table made (and in the file) first;
    its writes by its writer process or its writer thread."""
    path = tmp_path / "wal.sqlite3"
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE TABLE probe (id INTEGER PRIMARY KEY, body TEXT)")
    db.close()  # the last connection: its close copies the WAL into the file
    made = PooledSQLiteEngine(path=str(path), timeout=30, writer=request.param)
    yield made
    await made.close_pool()
    if made.writer_process is not None:
        made.writer_process.close()


async def test_commits_leave_the_wal_to_the_worker_until_it_is_long(engine: PooledSQLiteEngine) -> None:
    path = Path(engine.path)
    rows = [(i, ROW) for i in range(2_400)]
    for statement in inserts("probe", ("id", "body"), rows, "", 100):
        await write_chain(engine, statement)
    # Past 1,000 pages of WAL, where SQLite's own default would have copied it at a commit.
    [first] = await copy_wal(engine) or [{}]
    assert first["busy"] == 0 and 1_000 < first["log"] < WAL_PAGES
    assert first["checkpointed"] == first["log"]
    assert in_the_database(path) == 2_400
    # Written, then read back: the copy lost nothing and the engine reads on.
    await write_chain(engine, Statement("INSERT INTO probe (id, body) VALUES ({}, {})", (9_999, "last")))
    assert in_the_database(path) == 2_400  # the newest commit is in the WAL only, until the next copy
    await copy_wal(engine)
    assert in_the_database(path) == 2_401


async def test_commits_below_wal_pages_leave_the_wal_alone(engine: PooledSQLiteEngine) -> None:
    """Without the worker's copy, the commits of 2,400 rows (past SQLite's default of 1,000
    pages) leave them all in the WAL."""
    path = Path(engine.path)
    for statement in inserts("probe", ("id", "body"), [(i, ROW) for i in range(2_400)], "", 100):
        await write_chain(engine, statement)
    assert in_the_database(path) == 0


def test_the_worker_copies_the_wal_wherever_the_projector_runs() -> None:
    declared = {task.name: task for task in TASKS}
    assert declared["wal-checkpoints"].in_api == declared["projector"].in_api == "journal_consumer"


async def test_the_writer_keeps_a_larger_page_cache_than_a_reader(engine: PooledSQLiteEngine) -> None:
    """The projector's batches write a page of every participant-keyed index for each
    participant in them: the writer keeps them in a cache of WRITER_CACHE_KIB."""
    [written] = await write_chain(engine, Statement("PRAGMA cache_size", ()))
    [read] = await engine._run_in_new_connection("PRAGMA cache_size")
    assert written["cache_size"] == -WRITER_CACHE_KIB
    assert read["cache_size"] > -WRITER_CACHE_KIB  # SQLite's default: -2000 (2 MB)

