"""What linking a batch as it is written saves the projector (issue #13), in one run.

The journal projector hash-chains the ledger (wallet/chain.py). A batch read alone pending
is linked in the transaction that writes it (`write_batch(..., link=True)`:
`linked_as_written`); any other is written, then linked by `link_below` in a transaction of
its own, which reads the rows back and updates each one. Both on the same SQLite file
migrated by this tree, in a child process per round (rounds alternate the two ways), on
batches of `--batch` spin entries, each with its postings and its history row, as
bench/ledger_indexes.py part (a) builds them: CPU a spin (the process's
user + system time, its SQLite writer thread included, less what building the entries
took) and wall time a spin. The chain is verified after every round.

    .venv/bin/python -m bench.projector_links [--rounds 4] [--batches 100] [--batch 150]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.ledger_indexes import PROGRAM, ROOT, migrated, timed_batches

WAYS = ("after", "written")


def child(way: str, batches: int, batch: int) -> None:
    sys.path.insert(0, str(ROOT))
    from wallet.chain import link_below, verify_chain
    from wallet.journal import write_batch

    async def written(entries: list[Any], more: list[Any]) -> None:
        if way == "written":
            if not await write_batch(PROGRAM, entries, more, link=True):
                raise SystemExit("a batch was not linked as written")
        else:
            await write_batch(PROGRAM, entries, more)
            await link_below(PROGRAM, (2**63, 0), True)

    async def run() -> dict[str, Any]:
        timed = await timed_batches(batches, batch, written)
        report = await verify_chain(PROGRAM)
        return {**timed, "chain_ok": report.ok and report.unlinked == 0, "entries": report.entries}

    print(json.dumps(asyncio.run(run())))


def round_of(way: str, data_dir: Path, batches: int, batch: int) -> dict[str, float]:
    env = {**os.environ, "RW_DATA_DIR": str(data_dir), "RW_SQLITE_WRITER": "thread"}
    env.pop("DATABASE_URL", None)
    out = subprocess.run([sys.executable, "-m", "bench.projector_links", "--child", way, str(batches), str(batch)],
                         cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    if sys.argv[1:2] == ["--child"]:
        child(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument("--batch", type=int, default=150, help="spins a batch (the worker's at 3,000 spins/s)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="rw-bench-links-") as folder:
        now, _ = migrated(Path(folder))
        print(f"The projector's SQL a spin, linked after the batch or as it is written: {args.rounds} rounds of "
              f"{args.batches} batches of {args.batch} spins, alternated, one SQLite file (load average "
              f"{os.getloadavg()[0]:.2f})")
        results: dict[str, list[dict[str, float]]] = {way: [] for way in WAYS}
        broken = False
        for number in range(1, args.rounds + 1):
            for way in WAYS:
                r = round_of(way, now, args.batches, args.batch)
                results[way].append(r)
                broken |= not r["chain_ok"]
                print(f"  round {number} {way:<8} CPU {r['cpu_us']:6.1f} us a spin, wall {r['wall_us']:6.1f} us; "
                      f"chain {'holds' if r['chain_ok'] else 'BROKEN'} ({int(r['entries']):,} entries)", flush=True)
        cpu = {way: statistics.median(r["cpu_us"] for r in results[way]) for way in WAYS}
        wall = {way: statistics.median(r["wall_us"] for r in results[way]) for way in WAYS}
        print(f"  median CPU a spin: linked after {cpu['after']:.1f} us, linked as written {cpu['written']:.1f} us "
              f"({cpu['written'] / cpu['after']:.2f} x); wall {wall['after']:.1f} -> {wall['written']:.1f} us "
              f"({wall['written'] / wall['after']:.2f} x)")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
