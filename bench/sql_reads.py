"""What one SQL read costs through our SQLite engine, against the same read on the event loop's
thread, in one run (issue #13; kernel/sqlite_pool.py `_read`).

Many tasks at once (64 by default, like the HTTP benchmarks' connections) read an indexed SUM,
the shape of a redemption's tax total, from a file in WAL mode:

- `engine`: `Table.raw(...).run()` on `PooledSQLiteEngine`, as every read of the API runs:
  on the event loop's own thread within a budget, else on a pooled thread
  (kernel/sqlite_inline.py);
- `thread`: the same with `inline_reads=False`, every read one hop to a pooled connection's
  thread and back, as the engine read before that;
- `four hops`: the same pooled connection driven as aiosqlite's own calls drive it (execute,
  fetchall, the cursor's close, a commit), which is how the engine read before that;
- `inline` (the baseline): `sqlite3` on the event loop's own thread, no engine at all:
  SQLite's own work and the driver's.

Prints process CPU and wall time per read, and each way's CPU against the baseline's.

    .venv/bin/python bench/sql_reads.py [--reads 20000] [--concurrency 64] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sqlite3
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from piccolo.table import Table  # noqa: E402

from kernel.sqlite_pool import PooledSQLiteEngine  # noqa: E402

QUERY = "SELECT SUM(v) AS total FROM o WHERE p = {} AND c >= {} AND c < {}"
PEOPLE = 128


def _prepare(path: str) -> None:
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE o (id TEXT PRIMARY KEY, p TEXT, v INTEGER, c TEXT)")
        db.execute("CREATE INDEX o_year ON o (p, c, v)")
        db.executemany("INSERT INTO o VALUES (?, ?, ?, ?)",
                       [(f"o{i}", f"p{i % PEOPLE}", i, "2026-06-01") for i in range(4000)])
        db.commit()


async def _measure(read: Callable[[int], Awaitable[object]], reads: int, concurrency: int) -> tuple[float, float]:
    """(wall us, process CPU us) per read, `concurrency` reads in flight at a time."""
    gate = asyncio.Semaphore(concurrency)

    async def one(i: int) -> None:
        async with gate:
            await read(i)

    await asyncio.gather(*(one(i) for i in range(min(500, reads))))  # warm: connections, caches
    wall, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one(i) for i in range(reads)))
    return (time.perf_counter() - wall) / reads * 1e6, (time.process_time() - cpu) / reads * 1e6


async def run(args: argparse.Namespace, path: str) -> int:
    engine = PooledSQLiteEngine(path=path, timeout=30)
    threaded = PooledSQLiteEngine(path=path, timeout=30, inline_reads=False)
    table = type("BenchRows", (Table,), {}, tablename="o", db=engine)
    threaded_table = type("BenchRowsThreaded", (Table,), {}, tablename="o", db=threaded)
    inline_db = sqlite3.connect(path)
    plain = QUERY.replace("{}", "?")

    def params(i: int) -> tuple[str, str, str]:
        return f"p{i % PEOPLE}", "2026-01-01", "2027-01-01"

    async def through_engine(i: int) -> object:
        return await table.raw(QUERY, *params(i)).run()

    async def on_a_thread(i: int) -> object:
        return await threaded_table.raw(QUERY, *params(i)).run()

    async def four_hops(i: int) -> object:
        pool, connection = await threaded._acquire()
        try:
            async with connection.execute(plain, params(i)) as cursor:
                rows = await cursor.fetchall()
            await connection.commit()
            return rows
        finally:
            pool.idle.put_nowait(connection)

    async def inline(i: int) -> object:
        return inline_db.execute(plain, params(i)).fetchall()

    ways = {"inline": inline, "engine": through_engine, "thread": on_a_thread, "four hops": four_hops}
    results: dict[str, list[tuple[float, float]]] = {name: [] for name in ways}
    print(f"reward-wallet benchmark: one indexed SQL read, {args.reads:,} reads, {args.concurrency} at a time, "
          f"{args.rounds} round(s)")
    print(f"    {'way':<12}{'wall us/read':>14}{'CPU us/read':>14}")
    for _ in range(args.rounds):
        for name, read in ways.items():
            wall, cpu = await _measure(read, args.reads, args.concurrency)
            results[name].append((wall, cpu))
            print(f"    {name:<12}{wall:14.1f}{cpu:14.1f}", flush=True)
    base = min(cpu for _, cpu in results["inline"])
    print()
    for name in ("engine", "thread", "four hops"):
        cpus = [cpu for _, cpu in results[name]]
        print(f"  {name}: {min(cpus):.0f}-{max(cpus):.0f} us of CPU a read = {min(cpus) / base:.1f}-"
              f"{max(cpus) / base:.1f} x the inline read's")
    await engine.close_pool()
    await threaded.close_pool()
    inline_db.close()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--reads", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if not (100 <= args.reads <= 1_000_000 and 1 <= args.concurrency <= 1024 and 1 <= args.rounds <= 10):
        parser.error("out of range: reads 100..1000000, concurrency 1..1024, rounds 1..10")
    with tempfile.TemporaryDirectory(prefix="rw-bench-reads-") as folder:
        path = str(Path(folder) / "reads.sqlite3")
        _prepare(path)
        return asyncio.run(run(args, path))


if __name__ == "__main__":
    sys.exit(main())
