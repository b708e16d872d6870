"""What a running journal projector costs while nothing moves, and how soon it sees an entry
that arrives in a quiet program: the shipped `JournalProjector.run` against the pass it
replaced (every program's journal read one by one, XAUTOCLAIM then XREADGROUP, every 20 ms),
alternated in one run on one embedded Valkey and one SQLite file.

For each: the projector process's CPU (cores, its aiosqlite threads included), the Valkey
server's CPU and the commands a second it was sent, over `--seconds` of quiet with
`--programs` programs that each had one entry projected; then `--probes` grants, each to a
program quiet for a while, and how long until its ledger row is in SQL (ms).

    .venv/bin/python -m bench.projector_idle [--programs 1000] [--seconds 10] [--rounds 2] [--probes 10]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.wallet import cpu_seconds, on_a_fresh_valkey  # noqa: E402

Mode = Callable[[Any, asyncio.Event, Callable[[], Awaitable[list[str]]]], Awaitable[None]]


async def every_pass(projector: Any, stop: asyncio.Event, ids: Callable[[], Awaitable[list[str]]]) -> None:
    """The pass before: every program read one by one at each pass, 20 ms apart when idle."""
    programs = await ids()
    while not stop.is_set():
        await projector.project_all(programs)
        await asyncio.sleep(0.02)


async def shipped(projector: Any, stop: asyncio.Event, ids: Callable[[], Awaitable[list[str]]]) -> None:
    await projector.run(stop, ids)


async def commands(client: Any) -> int:
    stats = await client.info("commandstats")
    return sum(int(v.get("calls", 0)) for k, v in stats.items() if k.startswith("cmdstat_"))


async def measure(name: str, mode: Mode, client: Any, store: Any, programs: list[str], seconds: float,
                  probes: int, valkey_pid: int) -> dict[str, Any]:
    from kernel import keys as kernel_keys
    from kernel.idempotency import Idem
    from wallet import accounts
    from wallet.journal import JournalProjector
    from wallet.tables import LedgerEntry

    async def ids() -> list[str]:
        return programs

    projector = JournalProjector(client, consumer=f"bench-{name}", claim_idle_ms=15_000)
    stop = asyncio.Event()
    running = asyncio.create_task(mode(projector, stop, ids))
    await asyncio.sleep(2.0)  # every journal read once and turned quiet
    own0, valkey0, commands0, t0 = time.process_time(), cpu_seconds(valkey_pid), await commands(client), \
        time.monotonic()
    await asyncio.sleep(seconds)
    wall = time.monotonic() - t0
    own = (time.process_time() - own0) / wall
    valkey = (cpu_seconds(valkey_pid) - valkey0) / wall
    rate = (await commands(client) - commands0) / wall
    lags = []
    for n in range(probes):
        program = random.choice(programs)
        await asyncio.sleep(1.0)  # the program quiet again
        before = await LedgerEntry.count().where(LedgerEntry.program_id == program).run()
        began = time.monotonic()
        await accounts.grant(store, program, "ann", 1, "sale",
                             Idem(key=kernel_keys.idempotency(program, "admin", f"{name}-{n}-{time.time_ns()}"),
                                  fingerprint="fp"))
        while await LedgerEntry.count().where(LedgerEntry.program_id == program).run() == before:
            await asyncio.sleep(0.005)
        lags.append((time.monotonic() - began) * 1000)
    stop.set()
    await running
    return {"name": name, "own": own, "valkey": valkey, "rate": rate, "lags": lags}


async def run(args: argparse.Namespace, folder: Path, valkey: Any) -> int:
    from api.migrate import migrate
    from kernel.redis_functions import connect
    from wallet import accounts
    from wallet.journal import JournalProjector
    from wallet.store import WalletStore
    from kernel import keys as kernel_keys
    from kernel.idempotency import Idem

    await migrate()
    client = connect(valkey.url)
    store = WalletStore(client)
    await store.load_functions()
    programs = [f"prg-idle-{n:05d}" for n in range(args.programs)]
    for program in programs:
        await store.open_wallet(program, "ann")
        await accounts.grant(store, program, "ann", 5, "sale",
                             Idem(key=kernel_keys.idempotency(program, "admin", "seed"), fingerprint="fp"))
    await JournalProjector(client, consumer="seed", claim_idle_ms=0).project_all(programs)
    results: dict[str, list[dict[str, Any]]] = {"every pass": [], "shipped": []}
    for _ in range(args.rounds):
        for name, mode in (("every pass", every_pass), ("shipped", shipped)):
            results[name].append(await measure(name, mode, client, store, programs, args.seconds, args.probes,
                                               valkey.process.pid))
    await client.aclose()
    print(f"journal projector, idle, {args.programs} programs, {args.seconds:.0f} s a round, "
          f"{args.rounds} rounds alternated, {os.cpu_count()} cores")
    print(f"{'':12} {'projector cores':>16} {'valkey cores':>13} {'commands/s':>11} "
          f"{'lag p50 ms':>11} {'lag max ms':>11}")
    for name, rounds in results.items():
        lags = [lag for r in rounds for lag in r["lags"]]
        print(f"{name:12} " + " ".join(f"{r['own']:.3f}" for r in rounds).rjust(16) + " "
              + " ".join(f"{r['valkey']:.3f}" for r in rounds).rjust(13) + " "
              + " ".join(f"{r['rate']:.0f}" for r in rounds).rjust(11) + " "
              + (f"{statistics.median(lags):.0f}" if lags else "-").rjust(11) + " "
              + (f"{max(lags):.0f}" if lags else "-").rjust(11))
    old = statistics.mean(r["own"] for r in results["every pass"])
    new = statistics.mean(r["own"] for r in results["shipped"])
    print(f"projector CPU while idle, shipped / every pass: {new / old:.3f}" if old else "")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--programs", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--probes", type=int, default=10)
    args = parser.parse_args()
    if not (1 <= args.programs <= 20_000 and 1 <= args.seconds <= 120 and 1 <= args.rounds <= 10
            and 0 <= args.probes <= 100):
        parser.error("out of range: programs 1..20000, seconds 1..120, rounds 1..10, probes 0..100")

    def body(procs: Any, folder: Path, valkey: Any) -> int:
        os.environ["RW_DATA_DIR"] = str(folder / "data")
        os.environ.pop("DATABASE_URL", None)
        return asyncio.run(run(args, folder, valkey))

    return on_a_fresh_valkey("rw-bench-projector-", body)


if __name__ == "__main__":
    sys.exit(main())
