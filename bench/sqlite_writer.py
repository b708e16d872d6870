"""SQLite write chains per second on the writer thread and on the writer process, with the
event loop's thread idle and busy, in one run (issue #13; kernel/sqlite_writer.py).

Each chain is a redemption's write (bind a code with RETURNING, insert the order, insert a
feed line), sent through `PooledSQLiteEngine.write_chain` by 64 concurrent tasks; the batches
and the savepoints are the engine's own. "busy" runs a thread beside the loop that executes
pure Python with a short socket round trip every ~50 us, as a loop serving requests does: the
GIL is wanted by both. The ratio printed is each case's rate against the thread writer with the
loop idle, measured in the same run.

    .venv/bin/python bench/sqlite_writer.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from kernel.sqlite_pool import PooledSQLiteEngine, Statement, write_chain  # noqa: E402

SCHEMA = [
    "PRAGMA journal_mode=WAL",
    "CREATE TABLE codes (id TEXT PRIMARY KEY, order_id TEXT, used_at TEXT, secret TEXT)",
    "CREATE TABLE orders (id TEXT PRIMARY KEY, program_id TEXT, participant_id TEXT, status TEXT, "
    "credentials TEXT, created_at TEXT)",
    "CREATE INDEX orders_by_participant ON orders (program_id, participant_id, created_at)",
    "CREATE TABLE feed (id TEXT PRIMARY KEY, feed_key TEXT UNIQUE, program_id TEXT, participant_id TEXT, "
    "text TEXT)",
    "CREATE INDEX feed_by_participant ON feed (program_id, participant_id, id)",
]
CONCURRENCY = 64


def redemption_chain(n: int) -> tuple[Statement, list[Statement]]:
    """Redemption `n`'s write chain on SCHEMA's tables: code `c{n}` bound, its order, its feed line."""
    return Statement("UPDATE codes SET order_id = {}, used_at = 'now' WHERE id = {} AND order_id IS NULL "
                     "RETURNING id, secret", (f"o{n}", f"c{n}")), [
        Statement("INSERT INTO orders VALUES ({}, 'p', {}, 'fulfilled', "
                  "(SELECT secret FROM codes WHERE id = {}), 'now')", (f"o{n}", f"u{n % 128}", f"c{n}")),
        Statement("INSERT INTO feed VALUES ({}, {}, 'p', {}, 'Your card is ready')",
                  (f"f{n}", f"k{n}", f"u{n % 128}"))]


def busy(stop: threading.Event) -> None:
    """Python work with a tiny blocking call now and then, as an event loop's thread under load."""
    a, b = socket.socketpair()
    x = 0
    while not stop.is_set():
        for _ in range(500):
            x += 1
        a.send(b"x")
        b.recv(1)


async def chains(path: Path, writer: str, seconds: float, start: int) -> int:
    engine = PooledSQLiteEngine(path=str(path), timeout=30, writer=writer)
    done = 0
    deadline = time.monotonic() + seconds

    async def one_client(client: int) -> None:
        nonlocal done
        n = start + client
        while time.monotonic() < deadline:
            rows = await write_chain(engine, *redemption_chain(n))
            assert rows, n
            done += 1
            n += CONCURRENCY

    await asyncio.gather(*(one_client(c) for c in range(CONCURRENCY)))
    if engine.writer_process is not None:
        engine.writer_process.close()
    await engine.close_pool()
    return done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0)
    args = parser.parse_args()
    import sqlite3

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "chains.sqlite3"
        with sqlite3.connect(path) as db:
            for statement in SCHEMA:
                db.execute(statement)
            db.executemany("INSERT INTO codes VALUES (?, NULL, NULL, ?)",
                           ((f"c{i}", "sealed" * 10) for i in range(300_000)))
        print(f"reward-wallet benchmark: SQLite write chains ({CONCURRENCY} concurrent), {args.seconds:.0f} s each")
        results: dict[tuple[str, str], float] = {}
        start = 0
        for writer in ("thread", "process"):
            for loop in ("idle", "busy"):
                stop = threading.Event()
                spinner = threading.Thread(target=busy, args=(stop,), daemon=True)
                if loop == "busy":
                    spinner.start()
                done = asyncio.run(chains(path, writer, args.seconds, start))
                stop.set()
                start += done + CONCURRENCY
                results[(writer, loop)] = done / args.seconds
        base = results[("thread", "idle")]
        print(f"  {'writer':10}{'loop':8}{'chains/s':>10}{'x thread, idle':>16}")
        for (writer, loop), rate in results.items():
            print(f"  {writer:10}{loop:8}{rate:10.0f}{rate / base:16.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
