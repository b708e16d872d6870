"""What the ledger's indexes cost the projector and what they save the sweep, against the
indexes stop 41 had (issue #13), in one run.

Two SQLite files migrated by this tree: "now", as migrated, and "before", with the indexes
the stop-42 migrations dropped put back and the ones they added taken away
(`wallet/piccolo_migrations/wallet_2026_12_05t12_00_00_000000.py`, the games one of the same
moment).

(a) The projector's SQL a spin: batches of `--batch` spin entries, each with its postings
    and its history row (until stop 56, for a win, a feed line too), written by `wallet/journal.py write_batch`
    and linked by `wallet/chain.py link_below`, as the worker does, in a child process per
    round (rounds alternate the two files). CPU a spin is the process's user + system time
    less what building the entries took; the ratio is now against before.
(b) The sweep's reads of the ledger (every 30 s for every program): the spin sweep's two
    (`games/spins.py` `_UNRECORDED`, `_UNORDERED`) and the code-pool sweep's
    (`fulfillment/pooled_orders.py` `_UNWRITTEN`), once the program's ledger holds
    `--entries` entries (2% spins, one in twenty of those with an item prize; one in 2,000 a
    code-pool redemption with its order), a partner's claim (`fulfillment/queue.py`, on
    every claim) once it has `--orders` orders, and the first page of a participant's feed
    (`programs/feed.py`, the app's history) once they have `--lines` lines, each read's
    median time over `--repeat` runs.

    .venv/bin/python -m bench.ledger_indexes [--rounds 3] [--batches 100] [--batch 200] [--entries 1000000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
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
PROGRAM = "prg_bench"
SWEPT = "prg_swept"  # (b)'s program: its ledger filled by hand, apart from (a)'s

# What the stop-42 migrations changed, undone for "before".
BEFORE = [
    "DROP INDEX ledger_entries_spins",
    "DROP INDEX ledger_entries_substitutes",
    "DROP INDEX spins_item_prizes",
    "DROP INDEX ledger_entries_voids",
    "DROP INDEX ledger_entries_redemption_refs",
    "DROP INDEX chain_checkpoints_latest",
    "DROP INDEX orders_unsettled",
    "DROP INDEX orders_open",
    "DROP INDEX webhook_deliveries_due",
    "DROP INDEX announcement_mails_due",
    'CREATE INDEX announcement_mails_sent_at ON "announcement_mails" ("sent_at")',
    "DROP INDEX feed_items_by_participant",
    "DROP INDEX IF EXISTS orders_by_participant",  # stop 53 made it orders_of_participant
    "DROP INDEX IF EXISTS orders_of_participant",
    "DROP INDEX spins_by_participant",
    'CREATE INDEX feed_items_program_id ON "feed_items" ("program_id")',
    'CREATE INDEX feed_items_participant_id ON "feed_items" ("participant_id")',
    'CREATE INDEX orders_participant_id ON "orders" ("participant_id")',
    'CREATE INDEX spins_participant_id ON "spins" ("participant_id")',
    'CREATE INDEX ledger_entries_program_id ON "ledger_entries" ("program_id")',
    'CREATE INDEX ledger_postings_transaction_id ON "ledger_postings" ("transaction_id")',
    'CREATE INDEX ledger_postings_account ON "ledger_postings" ("account")',
    'CREATE INDEX spins_program_id ON "spins" ("program_id")',
    'CREATE INDEX spins_pair_id ON "spins" ("pair_id")',
]
DB_FILE = "reward-wallet.sqlite3"


def migrated(base: Path) -> tuple[Path, Path]:
    now, before = base / "now", base / "before"
    env = {**os.environ, "RW_DATA_DIR": str(now)}
    env.pop("DATABASE_URL", None)
    subprocess.run([sys.executable, "-m", "api", "migrate"], cwd=ROOT, env=env, check=True,
                   stdout=subprocess.DEVNULL)
    shutil.copytree(now, before)
    with sqlite3.connect(before / DB_FILE) as connection:
        for statement in BEFORE:
            connection.execute(statement)
    return now, before


# --- (a) the projector's SQL, in a child process (its engine reads RW_DATA_DIR at import) ---


def spin_maker() -> Any:
    """A function answering `k` more spin entries, each with its history row, as the
    projector's batch of them: stream ids after every earlier call's."""
    from games.spin_projection import SPIN_COLUMNS
    from kernel.ids import new_id
    from wallet.journal import JournalEntry, Rows

    participants = [new_id("par") for _ in range(256)]
    counter = [0]
    # Stream ids after every earlier round's (the chain links in stream order): this moment's
    # millisecond, numbered on from there.
    epoch_ms = time.time_ns() // 1_000_000

    def spins(k: int) -> tuple[list[JournalEntry], list[Rows]]:
        entries, rows = [], []
        for _ in range(k):
            counter[0] += 1
            n, at, tx = counter[0], datetime.now(timezone.utc), new_id("spn")
            person, won = participants[n % 256], n % 10 < 3
            mine = f"participant:{person}:available"
            legs = [(mine, "budget", 10)] + ([("budget", mine, 100)] if won else [])
            meta = json.dumps({"campaign": "cmp_bench", "segment_index": 0 if won else 2, "paid_with": "points",
                               "pair": "pair_bench", "tokens": 0, "nonce": n, "server_seed_hash": "a" * 64,
                               "client_seed": "b" * 32, "weights": [30, 10, 60], "prize_value": 100 if won else 0})
            entries.append(JournalEntry(stream_id=f"{epoch_ms}-{n}", transaction_id=tx, kind="spin",
                                        participant_id=person, points=90 if won else -10, earned=100 if won else 0,
                                        spent=10, reference="cmp_bench", metadata=meta, legs=legs, created_at=at))
            row = {"id": tx, "program_id": PROGRAM, "campaign_id": "cmp_bench", "participant_id": person,
                   "pair_id": "pair_bench", "server_seed_hash": "a" * 64, "client_seed": "b" * 32, "nonce": n,
                   "weights": "[30,10,60]", "segment_index": 0 if won else 2, "label": "100 points",
                   "prize": '{"type":"points","points":100}', "prize_value": 100 if won else 0, "cost_points": 10,
                   "paid_with": "points", "order_id": None, "created_at": at}
            # No feed line: since stop 56 a spin's line is its history row, read as a line
            # (games/spin_feed.py), and the projector writes none.
            rows.append(tuple(row[c] for c in SPIN_COLUMNS))
        return entries, [Rows(table="spins", columns=SPIN_COLUMNS, rows=rows)]

    return spins


async def timed_batches(batches: int, batch: int, written: Any) -> dict[str, float]:
    """`written(entries, more)` on `batches` batches of `batch` spins (after one to warm the
    connections): CPU us a spin (the process's user + system time, its SQLite writer thread
    included, less what building the entries took) and wall us a spin."""
    spins = spin_maker()
    await written(*spins(batch))
    building = 0.0
    start, began = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    for _ in range(batches):
        mark = time.process_time()
        entries, more = spins(batch)
        building += time.process_time() - mark
        await written(entries, more)
    end, wall = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter() - began
    cpu = (end.ru_utime - start.ru_utime) + (end.ru_stime - start.ru_stime) - building
    return {"cpu_us": cpu * 1e6 / (batches * batch), "wall_us": wall * 1e6 / (batches * batch)}


def child(batches: int, batch: int) -> None:
    sys.path.insert(0, str(ROOT))
    from wallet.chain import link_below
    from wallet.journal import write_batch

    async def written(entries: list[Any], more: list[Any]) -> None:
        await write_batch(PROGRAM, entries, more)
        await link_below(PROGRAM, (2**63, 0), True)

    print(json.dumps(asyncio.run(timed_batches(batches, batch, written))))


def projector_round(data_dir: Path, batches: int, batch: int) -> dict[str, float]:
    env = {**os.environ, "RW_DATA_DIR": str(data_dir), "RW_SQLITE_WRITER": "thread"}
    env.pop("DATABASE_URL", None)
    out = subprocess.run([sys.executable, "-m", "bench.ledger_indexes", "--child", str(batches), str(batch)],
                         cwd=ROOT, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


# --- (b) reads that grew with history, over large tables ----------------------------------------


def filled(path: Path, entries: int) -> None:
    """`entries` ledger entries of one program over the last 30 days, 2% of them spins (with
    their history rows; one in twenty of those an item prize, with its order)."""
    now = datetime.now(timezone.utc)
    step = timedelta(days=30) / entries
    with sqlite3.connect(path) as connection:
        ledger, spins, orders = [], [], []
        for n in range(entries):
            at = (now - timedelta(days=30) + step * n).isoformat()
            spin, redemption = n % 50 == 0, n % 2000 == 1
            tx = f"{'spn' if spin else 'tx'}_{n:026d}"
            kind, ref, meta = ("spin" if spin else "award"), "ref", "{}"
            if redemption:
                kind, ref, meta = "redemption", f"ord_r{n:024d}", '{"code": "cod_bench"}'
                orders.append(ref)
            ledger.append((tx, SWEPT, f"par_{n % 5000}", kind, 10, 10, 0, ref, meta, "[]", f"{n}-0", at, n + 1,
                           "0" * 64))
            if spin:
                order = f"ord_{n:026d}" if n % 1000 == 0 else None
                spins.append((tx, SWEPT, "cmp_bench", f"par_{n % 5000}", "pair_bench", "a" * 64, "b" * 32, n,
                              "[1]", 0, "Card", "{}", 0, 10, "points", order, at))
                if order:
                    orders.append(order)
        connection.executemany(
            "INSERT INTO ledger_entries (transaction_id, program_id, participant_id, kind, points, earned, spent, "
            "reference, metadata, legs, stream_id, created_at, seq, link) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?)", ledger)
        connection.executemany(
            "INSERT INTO spins (id, program_id, campaign_id, participant_id, pair_id, server_seed_hash, client_seed, "
            "nonce, weights, segment_index, label, prize, prize_value, cost_points, paid_with, order_id, created_at) "
            "VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)", spins)
        for order in orders:
            connection.execute("INSERT INTO orders (id, program_id, participant_id, item_id, points, status, "
                               "created_at, updated_at) VALUES (?, ?, 'par_0', 'itm_bench', 0, 'fulfilled', ?, ?)",
                               (order, SWEPT, now.isoformat(), now.isoformat()))
        connection.execute("ANALYZE")


# A partner's claim picked its candidates this way until stop 42 (fulfillment/queue.py).
CANDIDATES_BEFORE = """
    SELECT id FROM orders
    WHERE program_id = ? AND partner_id = ?
      AND (status = 'pending' OR (status = 'claimed' AND lease_expires_at < ?))
    ORDER BY created_at, id
    LIMIT ?
"""


def partner_history(path: Path, orders: int) -> None:
    """`orders` fulfilled orders of one partner over the last 30 days, and 20 pending."""
    now = datetime.now(timezone.utc)
    step = timedelta(days=30) / orders
    with sqlite3.connect(path) as connection:
        rows = [(f"ord_p{n:024d}", SWEPT, f"par_{n % 5000}", "itm_bench", "ptn_bench",
                 "pending" if n >= orders - 20 else "fulfilled", (now - timedelta(days=30) + step * n).isoformat(),
                 now.isoformat(), None if n >= orders - 20 else now.isoformat()) for n in range(orders)]
        connection.executemany("INSERT INTO orders (id, program_id, participant_id, item_id, partner_id, status, "
                               "created_at, updated_at, settled_at) VALUES (?,?,?,?,?,?,?,?,?)", rows)
        connection.execute("ANALYZE")


def feed_lines(path: Path, lines: int) -> None:
    """`lines` feed lines of one participant (and as many of 99 others), over 30 days."""
    now = datetime.now(timezone.utc)
    with sqlite3.connect(path) as connection:
        rows = [(f"feed_{n:026d}", f"k:{n}", SWEPT, f"par_{n % 100}", "award", "Earned 10 points", 10,
                 (now - timedelta(days=30) + timedelta(days=30) / (lines * 100) * n).isoformat())
                for n in range(lines * 100)]
        connection.executemany("INSERT INTO feed_items (id, feed_key, program_id, participant_id, kind, text, points, "
                               "created_at) VALUES (?,?,?,?,?,?,?,?)", rows)
        connection.execute("ANALYZE")


def median_ms(path: Path, sql: str, args: tuple[Any, ...], repeat: int, rows: int | None = None) -> float:
    """The median time of `sql` (`?` marks) over `repeat` runs, in ms; `rows`: what it must answer."""
    with sqlite3.connect(path) as connection:
        runs = []
        for _ in range(repeat):
            began = time.perf_counter()
            answered = connection.execute(sql, args).fetchall()
            runs.append(time.perf_counter() - began)
            assert rows is None or len(answered) == rows, (len(answered), sql)
    return statistics.median(runs) * 1000


def history_reads(before: Path, now: Path, repeat: int) -> list[tuple[str, float, float]]:
    """Each read of (b): its label, and its median time on the file with stop 41's indexes and on this one."""
    from fulfillment.pooled_orders import _UNWRITTEN
    from fulfillment.queue import _CANDIDATES
    from games.spins import _UNORDERED, _UNRECORDED
    from programs.feed import page_query

    until = datetime.now(timezone.utc) - timedelta(seconds=30)
    window = (SWEPT, (until - timedelta(days=2)).isoformat(), until.isoformat())
    claim = (SWEPT, "ptn_bench", datetime.now(timezone.utc).isoformat(), 5)
    page, page_args = page_query(SWEPT, "par_7", 51).querystrings[0].compile_string(engine_type="sqlite")
    # (label, SQL on stop 41's file, SQL on this one, arguments, rows it must answer)
    reads = [(label, query.format("?", "?", "?"), query.format("?", "?", "?"), window, None)
             for label, query in (("spins with no history row (_UNRECORDED)", _UNRECORDED),
                                  ("item prizes with no order (_UNORDERED)", _UNORDERED),
                                  ("pool redemptions with no order (_UNWRITTEN)", _UNWRITTEN))]
    reads += [("a claim of 5 (the partner's orders above)", CANDIDATES_BEFORE, _CANDIDATES.format("?", "?", "?", "?"),
               claim, 5),
              ("a feed page (the participant's lines above)", page, page, tuple(page_args), 51)]
    return [(label, median_ms(before, old, args, repeat, rows), median_ms(now, new, args, repeat, rows))
            for label, old, new, args, rows in reads]


def main() -> int:
    if len(sys.argv) == 4 and sys.argv[1] == "--child":
        child(int(sys.argv[2]), int(sys.argv[3]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="(a): rounds of each schema, alternated")
    parser.add_argument("--batches", type=int, default=100, help="(a): projector batches a round")
    parser.add_argument("--batch", type=int, default=200, help="(a): spins a batch")
    parser.add_argument("--entries", type=int, default=1_000_000, help="(b): the program's ledger entries")
    parser.add_argument("--repeat", type=int, default=5, help="(b): runs of each read")
    parser.add_argument("--orders", type=int, default=200_000, help="(b): the partner's orders for its claim's read")
    parser.add_argument("--lines", type=int, default=20_000, help="(b): a participant's feed lines for a page's read")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    print("reward-wallet benchmark: the ledger's indexes, now against stop 41's (SQLite, this machine's disk)")
    with tempfile.TemporaryDirectory(prefix="rw-bench-indexes-") as tmp:
        now, before = migrated(Path(tmp))
        print(f"\n  (a) the projector's SQL a spin: {args.batches} batches of {args.batch} spin entries a round, "
              "written and linked as the worker does")
        print("    round      schema   CPU us/spin   wall us/spin")
        cpu: dict[str, list[float]] = {"before": [], "now": []}
        for n in range(1, args.rounds + 1):
            for name, data_dir in (("before", before), ("now", now)):
                figures = projector_round(data_dir, args.batches, args.batch)
                cpu[name].append(figures["cpu_us"])
                print(f"    #{n}       {name:>7}   {figures['cpu_us']:11.0f}   {figures['wall_us']:12.0f}")
        b, a = statistics.median(cpu["before"]), statistics.median(cpu["now"])
        print(f"    median CPU a spin: before {b:.0f} us, now {a:.0f} us: now / before = {a / b:.2f}")

        print(f"\n  (b) reads that grew with history: the program's ledger at {args.entries:,} entries, "
              f"a partner with {args.orders:,} orders, a participant with {args.lines:,} feed lines "
              f"(median of {args.repeat})")
        for data_dir in (before, now):
            filled(data_dir / DB_FILE, args.entries)
            partner_history(data_dir / DB_FILE, args.orders)
            feed_lines(data_dir / DB_FILE, args.lines)
        for label, old_ms, new_ms in history_reads(before / DB_FILE, now / DB_FILE, args.repeat):
            print(f"    {label:44} before {old_ms:9.2f} ms   now {new_ms:7.2f} ms")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
