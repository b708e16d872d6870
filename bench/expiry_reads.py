"""What a wallet read's `expiring` costs in a program with an expiry policy, against the
replay of the participant's whole history it made until stop 43 (issue #13), in one run.

`GET /v1/me/wallet` answers the points that expire in the next 90 days, replayed from the
participant's ledger (programs/expiry.py); the hourly expiry sweep replays every participant
with points the same way. Until stop 43 each replay read and decoded every ledger entry the
participant ever had, so a salesperson who spins every day made their own wallet read slower
every day. Now the sweep keeps each participant's replay (`expiry_checkpoints`) and a replay
reads only the entries after it.

One SQLite file migrated by this tree, filled by hand: a program whose ledger holds
`--others` entries of other participants, and for each `--history` size one participant
with that many entries (spins: ten points each, a hundred won one time in three; a grant a
week), over the last year, linked in the chain but for the last `--unlinked`. For each:

- before: stop 42's read (every entry of the participant, in projection order) and replay;
- now, first replay: no checkpoint yet (a program that just turned expiry on), all read;
- now, from the sweep's checkpoint, with `--tail` entries since (`--unlinked` of them not
  linked yet): what a wallet read costs between two sweeps.

Each figure is the median of `--repeat` timed reads after one untimed one, in this process.

    .venv/bin/python -m bench.expiry_reads [--history 1000 10000 50000] [--tail 200] [--repeat 15]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PROGRAM = "prg_expiry_bench"
DB_FILE = "reward-wallet.sqlite3"


def fill(path: Path, others: int, histories: list[int], unlinked: int) -> dict[int, str]:
    """The program's ledger: `others` entries of 5,000 other participants, then one
    participant per history size; every entry linked (seq) but each participant's last
    `unlinked`. Answers the participant of each size."""
    start = datetime.now(timezone.utc) - timedelta(days=365)
    rows: list[tuple[Any, ...]] = []
    seq = 0

    def add(participant: str, n: int, at: datetime, linked: bool) -> None:
        nonlocal seq
        if n % 7 == 0:  # a grant a week, or so
            legs = f'[["budget","available:{participant}",500]]'
        elif n % 3 == 0:  # a spin that won
            legs = f'[["available:{participant}","budget",10],["budget","available:{participant}",100]]'
        else:
            legs = f'[["available:{participant}","budget",10]]'
        seq += 1
        rows.append((f"tx_{participant}_{n:09d}", PROGRAM, participant, "spin", 0, 0, 0, None, "{}", legs,
                     f"{seq}-0", at.isoformat(), seq if linked else None, "0" * 64 if linked else None))

    for n in range(others):
        add(f"par_other{n % 5000}", n, start + timedelta(days=365) * (n / max(others, 1)), True)
    participants = {}
    for size in histories:
        participant = participants[size] = f"par_history{size}"
        for n in range(size):
            add(participant, n, start + timedelta(days=365) * (n / size), n < size - unlinked)
    with sqlite3.connect(path) as connection:
        connection.executemany(
            "INSERT INTO ledger_entries (transaction_id, program_id, participant_id, kind, points, earned, spent, "
            "reference, metadata, legs, stream_id, created_at, seq, link) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", rows)
        connection.execute("ANALYZE")
    return participants


async def before_lots(participant: str) -> list[Any]:
    """Stop 42's replay: every entry of the participant, in projection order."""
    from programs.expiry import replay_lots
    from wallet.tables import LedgerEntry

    rows = await LedgerEntry.select(LedgerEntry.transaction_id, LedgerEntry.legs, LedgerEntry.reference,
                                    LedgerEntry.created_at).where(
        (LedgerEntry.program_id == PROGRAM) & (LedgerEntry.participant_id == participant)
    ).order_by(LedgerEntry.id).run()
    return replay_lots(participant, rows)


async def median_ms(read: Any, repeat: int) -> tuple[float, Any]:
    answer = await read()  # untimed: the pages in the cache, the code warm
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        await read()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times), answer


async def measure(participants: dict[int, str], tail: int, repeat: int) -> list[tuple[Any, ...]]:
    from programs.expiry import Replay, entries_after, in_journal_order, participant_lots, replay, save_replay

    table = []
    for size, participant in participants.items():
        before, old = await median_ms(lambda: before_lots(participant), repeat)
        first, lots = await median_ms(lambda: participant_lots(PROGRAM, participant), repeat)
        # The sweep's checkpoint as one taken `tail` entries ago would be (the last of those
        # entries are not linked yet, so it cannot stand past them anyway).
        linked, unlinked = in_journal_order(await entries_after(PROGRAM, participant, 0).run())
        rows = linked + unlinked
        await save_replay(PROGRAM, participant, replay(Replay(), participant, rows[:max(len(rows) - tail, 0)]))
        checkpointed, again = await median_ms(lambda: participant_lots(PROGRAM, participant), repeat)
        read = len(await entries_after(PROGRAM, participant, replay(Replay(), participant, rows[:len(rows) - tail])
                                       .through_seq).run())
        same = [(lot.earned_at, lot.points, lot.tx) for lot in old] == \
            [(lot.earned_at, lot.points, lot.tx) for lot in lots] == [(lot.earned_at, lot.points, lot.tx) for lot in again]
        table.append((size, before, first, checkpointed, read, same))
    return table


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--history", type=int, nargs="+", default=[1000, 10000, 50000],
                        help="ledger entries of each measured participant")
    parser.add_argument("--others", type=int, default=200_000, help="other participants' entries in the program")
    parser.add_argument("--tail", type=int, default=200, help="entries since the checkpoint")
    parser.add_argument("--unlinked", type=int, default=20, help="of those, not linked yet")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()

    base = Path(tempfile.mkdtemp(prefix="rw-bench-expiry-"))
    try:
        env = {**os.environ, "RW_DATA_DIR": str(base)}
        env.pop("DATABASE_URL", None)
        subprocess.run([sys.executable, "-m", "api", "migrate"], cwd=ROOT, env=env, check=True,
                       stdout=subprocess.DEVNULL)
        started = time.perf_counter()
        participants = fill(base / DB_FILE, args.others, args.history, args.unlinked)
        print(f"reward-wallet benchmark: a wallet read's `expiring` (programs/expiry.py), SQLite, Python "
              f"{sys.version.split()[0]}")
        print(f"  program ledger: {args.others:,} entries of other participants, plus each measured participant's; "
              f"filled in {time.perf_counter() - started:.1f} s")
        print(f"  each figure: the median of {args.repeat} reads (ms), in this process; "
              f"checkpoint: the sweep's, {args.tail} entries ago ({args.unlinked} of them not linked yet)\n")
        os.environ["RW_DATA_DIR"] = str(base)  # before the engine is built (piccolo_conf reads it)
        os.environ.pop("DATABASE_URL", None)
        sys.path.insert(0, str(ROOT))
        table = asyncio.run(measure(participants, args.tail, args.repeat))
        print(f"  {'history':>9}  {'before':>9}  {'first replay':>12}  {'checkpoint':>10}  {'read':>6}  "
              f"{'before / checkpoint':>19}  same lots")
        for size, before, first, checkpointed, read, same in table:
            print(f"  {size:>9,}  {before:>7.2f}ms  {first:>10.2f}ms  {checkpointed:>8.2f}ms  {read:>6,}  "
                  f"{before / checkpointed:>18.1f}x  {'yes' if same else 'NO'}")
        print("\n  history: the participant's ledger entries; read: the entries a replay from the checkpoint reads")
        return 0 if all(row[-1] for row in table) else 1
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
