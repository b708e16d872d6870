"""`run_steps`: a transaction written once as a generator of SQL steps, run in one hop on
SQLite's writer thread, step by step on Postgres or inside a transaction already open."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from piccolo.columns import Integer, Varchar
from piccolo.table import Table

from kernel.ids import new_id
from kernel.sql_steps import Execute, ExecuteMany, Fetch, Steps, marks, run_steps
from kernel.sqlite_pool import PooledSQLiteEngine, writing

pytestmark = pytest.mark.sql


class StepsProbe(Table, tablename="steps_probe"):
    id = Varchar(length=40, primary_key=True)
    n = Integer()


@pytest.fixture
async def engine(migrated) -> Any:  # type: ignore[no-untyped-def]
    await StepsProbe.create_table(if_not_exists=True).run()
    return StepsProbe._meta.db


def _counting(engine: Any, first: str, more: list[str], fail: bool = False,
              ran_on: list[threading.Thread] | None = None) -> Steps:
    """Reads `first`'s n, then writes each of `more` with n + 1, + 2, ...; answers the last n."""
    if ran_on is not None:
        ran_on.append(threading.current_thread())
    p = marks(engine, 2)
    [row] = yield Fetch(f"SELECT n FROM steps_probe WHERE id = {p[0]}", (first,))
    rows = [(row_id, row["n"] + k) for k, row_id in enumerate(more, start=1)]
    yield ExecuteMany(f"INSERT INTO steps_probe (id, n) VALUES ({', '.join(p)})", rows)
    yield Execute(f"UPDATE steps_probe SET n = n + 100 WHERE id = {p[0]}", (first,))
    if fail:
        raise ValueError("refused after writing")
    return rows[-1][1]


async def _ns(*row_ids: str) -> list[int | None]:
    found = {r["id"]: r["n"] for r in await StepsProbe.select().where(StepsProbe.id.is_in(list(row_ids))).run()}
    return [found.get(i) for i in row_ids]


@pytest.mark.parametrize("inside_a_transaction", [False, True])
async def test_steps_read_write_and_answer_in_one_transaction(engine: Any, inside_a_transaction: bool) -> None:
    first, more = new_id("stp"), [new_id("stp") for _ in range(3)]
    await StepsProbe.insert(StepsProbe(id=first, n=5)).run()
    ran_on: list[threading.Thread] = []
    if inside_a_transaction:
        async with writing(engine):
            answer = await run_steps(engine, lambda: _counting(engine, first, more, ran_on=ran_on))
    else:
        answer = await run_steps(engine, lambda: _counting(engine, first, more, ran_on=ran_on))
    assert answer == 8
    assert await _ns(first, *more) == [105, 6, 7, 8]
    # On SQLite, alone: one hop, the whole transaction on the writer connection's thread.
    one_hop = isinstance(engine, PooledSQLiteEngine) and not inside_a_transaction
    assert ran_on == [engine._pool().writer._thread if one_hop else threading.current_thread()]


async def test_a_step_or_the_work_failing_leaves_nothing_it_wrote(engine: Any) -> None:
    first, more = new_id("stp"), [new_id("stp") for _ in range(2)]
    await StepsProbe.insert(StepsProbe(id=first, n=1)).run()
    with pytest.raises(ValueError, match="refused after writing"):
        await run_steps(engine, lambda: _counting(engine, first, more, fail=True))
    with pytest.raises(Exception, match="(?i)unique|duplicate"):
        await run_steps(engine, lambda: _counting(engine, first, [more[0], first]))  # first's key is taken
    assert await _ns(first, *more) == [1, None, None]
