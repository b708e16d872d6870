"""A writer's BEGIN (kernel/sqlite_batch.py `begin`): it waits for another writer's lock in
short steps of its own, takes the lock once it is let go, gives up after the connection's busy
timeout as SQLite would, and leaves that timeout as it found it for the statements after."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest

from kernel.sqlite_batch import begin


def connect(path: Path, timeout: float) -> sqlite3.Connection:
    connection = sqlite3.connect(path, timeout=timeout, isolation_level=None, check_same_thread=False)
    connection.execute("PRAGMA journal_mode = WAL")
    return connection


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "writers.db"
    with connect(path, 5.0) as setup:
        setup.execute("CREATE TABLE moves (writer TEXT)")
    return path


def test_a_writer_waits_for_the_lock_another_holds_and_writes_once_it_is_let_go(database: Path) -> None:
    first, second = connect(database, 5.0), connect(database, 5.0)
    begin(first)
    first.execute("INSERT INTO moves VALUES ('first')")
    held = threading.Timer(0.2, lambda: first.execute("COMMIT"))
    held.start()
    begin(second)  # waits out the first writer's transaction
    second.execute("INSERT INTO moves VALUES ('second')")
    second.execute("COMMIT")
    held.join()
    assert [r[0] for r in second.execute("SELECT writer FROM moves ORDER BY rowid")] == ["first", "second"]
    assert second.execute("PRAGMA busy_timeout").fetchone()[0] == 5000


def test_a_writer_gives_up_after_its_busy_timeout_and_keeps_that_timeout(database: Path) -> None:
    first, second = connect(database, 5.0), connect(database, 0.3)
    begin(first)
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        begin(second)
    assert not second.in_transaction
    assert second.execute("PRAGMA busy_timeout").fetchone()[0] == 300
    first.execute("ROLLBACK")
    begin(second)
    assert second.in_transaction


def test_a_writer_with_dict_rows_keeps_its_timeout_too(database: Path) -> None:
    """The writer process reads rows as dicts (Piccolo's row factory)."""
    writer = connect(database, 2.0)
    writer.row_factory = lambda cursor, row: {c[0]: v for c, v in zip(cursor.description, row)}
    begin(writer)
    assert writer.in_transaction
    writer.execute("ROLLBACK")
    assert writer.execute("PRAGMA busy_timeout").fetchone() == {"timeout": 2000}
