"""The coalescer's own connection against redis-py's pipeline, in one run (issue #13;
kernel/redis_pipe.py, kernel/coalesce.py).

64 concurrent callers on one event loop (uvloop, as the API runs) each send, in a loop, the
commands a wallet read and a grant send: one FCALL of the least Lua making a grant's writes
(bench/wallet.py's `rwbench_least`: check an idempotency key, HINCRBY, XADD, SET) and one
HMGET. Three ways, alternated for `--rounds`:

- `redis-py, one call each`: `client.execute_command` per command (a pooled connection each);
- `redis-py pipeline per turn`: kernel/coalesce.py with `own_connection=False`, the
  coalescer before stop 38 (the baseline the ratio is against);
- `own connection`: kernel/coalesce.py as the API runs it (kernel/redis_pipe.py).

Prints commands per second and this process's CPU per command (Valkey runs in its own
process); the ratio is each way's CPU per command against the baseline's.

    .venv/bin/python bench/redis_pipe.py [--seconds 3] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import uvloop

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from api.embedded import EmbeddedValkey  # noqa: E402
from bench.wallet import LEAST_LUA  # noqa: E402
from kernel.coalesce import Coalescer  # noqa: E402
from kernel.redis_functions import connect  # noqa: E402

CALLERS = 64
TAG = "{p:pipe}"
WAYS = ("redis-py, one call each", "redis-py pipeline per turn", "own connection")


async def measure(url: str, way: str, seconds: float) -> tuple[float, float]:
    client = connect(url)
    await client.function_load(LEAST_LUA, replace=True)
    await client.hset(f"rw:{TAG}:w:p1", mapping={"available": 100, "held": 0})
    coalescer = Coalescer(client, own_connection=way == "own connection")
    execute: Any = client.execute_command if way == WAYS[0] else coalescer.execute
    done = 0
    stop = False

    async def caller(number: int) -> None:
        nonlocal done
        sent = 0
        while not stop:
            sent += 1
            await execute("FCALL", "rwbench_least", 5, f"rw:{TAG}:idem:{number}:{sent}", f"rw:{TAG}:journal",
                          f"rw:{TAG}:acct", f"rw:{TAG}:cfg", f"rw:{TAG}:w:p1",
                          "fp", 60, "tx", "p1", 1, "grant", "", "{}", 0)
            await execute("HMGET", f"rw:{TAG}:w:p1", "available", "held")
            done += 2

    callers = [asyncio.create_task(caller(n)) for n in range(CALLERS)]
    await asyncio.sleep(0.5)  # connections open, the loop warm
    done = 0
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu, wall, counted = time.process_time() - cpu, time.perf_counter() - wall, done
    stop = True
    await asyncio.gather(*callers)
    await client.delete(f"rw:{TAG}:journal")
    coalescer.close()
    await client.aclose()
    return counted / wall, 1e6 * cpu / counted


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--rounds", type=int, default=2)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rw-bench-pipe-") as folder:
        valkey = EmbeddedValkey(Path(folder))
        valkey.start()
        try:
            results: dict[str, list[tuple[float, float]]] = {way: [] for way in WAYS}
            for _ in range(options.rounds):
                for way in WAYS:
                    results[way].append(uvloop.run(measure(valkey.url, way, options.seconds)))
        finally:
            valkey.stop()
    baseline = sum(us for _, us in results[WAYS[1]]) / options.rounds
    print(f"{CALLERS} callers, FCALL rwbench_least + HMGET each, {options.rounds} rounds of {options.seconds:g} s")
    print(f"{'way':30} {'commands/s':>12} {'CPU us/command':>16} {'CPU vs pipeline':>16}")
    for way, rounds in results.items():
        rates = "-".join(f"{rate:,.0f}" for rate, _ in rounds)
        cpu = "-".join(f"{us:.1f}" for _, us in rounds)
        ratio = sum(us for _, us in rounds) / options.rounds / baseline
        print(f"{way:30} {rates:>12} {cpu:>16} {ratio:>15.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
