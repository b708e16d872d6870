"""What a code-pool order's rows cost the journal projector once a program has a history
(issue #13, stops 53 and 54): SQLite's CPU an order for a redemption's rows, written as the
projector writes them, into a database already holding `--orders` orders of `--participants`
participants: this tree's rows and indexes against stop 53's rows and stop 52's indexes, in one
run.

While an index keyed by participant is small, a batch's orders share its leaf pages; once each
participant's entries fill pages of their own, every order dirties a page of each such index,
and the commit writes each one to the WAL. A fresh database hides that cost, so this script
grows one first:

    "now":     the database as this tree migrates it (ledger_entries_participant_seq,
               orders_of_participant, feed_items_by_participant), and an order's rows as this
               tree writes them (stop 54): one ledger entry (available -> redeemed) and one
               feed line (its points and its card);
    "stop 53": the same indexes, and the rows of stop 53's code: a `hold` and a `redemption`
               entry, and two feed lines (the card's, the points');
    "stop 52": stop 53's rows, with stop 52's indexes put back: ledger_entries_participant_id
               beside the participant_seq one, and orders_by_participant and orders_tax_year
               in place of orders_of_participant.

Each round copies the grown file for each variant (alternated), writes `--warm` batches of
`--batch` orders to fill the page cache as a long-running projector has it, then times
`--batches` more: the process's user + system CPU an order (building the rows is a few
percent of it). An order's rows: its ledger entries (one, or stop 53's hold and capture, and
a third for three orders in ten) linked as written, two postings each, the code's binding, the
order and its feed lines (one, or stop 53's two), in one transaction a batch, as `wallet/journal.py` `_batch` and
`fulfillment/pooled_orders.py` `write_pool_orders` write them; WAL mode, synchronous NORMAL, the
writers' page cache (kernel/sqlite_batch.py).

    .venv/bin/python -m bench.participant_indexes [--rounds 3] [--orders 120000] [--participants 1024]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from kernel.sqlite_batch import WAL_PAGES, WRITER_CACHE_KIB  # noqa: E402

DB_FILE = "reward-wallet.sqlite3"
PROGRAM = "prg_bench"
STOP_52 = [
    "DROP INDEX orders_of_participant",
    "CREATE INDEX orders_by_participant ON orders (participant_id, id)",
    "CREATE INDEX orders_tax_year ON orders (participant_id, program_id, created_at, status, face_value)",
    'CREATE INDEX ledger_entries_participant_id ON "ledger_entries" ("participant_id")',
]

_ORDER = ("INSERT INTO orders (id, program_id, participant_id, item_id, partner_id, source, face_value, currency, "
          "points, status, attempts, credentials, settled_at, tax_flagged, created_at, updated_at, fulfilled_at) "
          "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, (SELECT secret FROM pool_codes WHERE id = ?), ?, ?, ?, ?, ?) "
          "ON CONFLICT DO NOTHING")
_BIND = "UPDATE pool_codes SET order_id = ?, used_at = ? WHERE id = ? AND (order_id IS NULL OR order_id = ?)"
_FEED = ("INSERT INTO feed_items (id, feed_key, program_id, participant_id, kind, text, points, reference, created_at) "
         "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING")
_ENTRY = ("INSERT INTO ledger_entries (transaction_id, program_id, participant_id, kind, points, earned, spent, "
          "reference, metadata, legs, stream_id, created_at, seq, link) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")
_POSTING = ("INSERT INTO ledger_postings (posting_id, transaction_id, program_id, account, delta, leg) "
            "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING")


def _id(prefix: str, n: int, moment: int) -> str:
    """Time-ordered like kernel/ids.py's: the moment first, then the number."""
    return f"{prefix}_{moment:013d}{n:013d}"


class Writer:
    """Writes orders `start..start+count` of `participants` round robin, as the projector's
    batch does, numbering the chain on from the file's head."""

    def __init__(self, connection: sqlite3.Connection, participants: int, paid_in_one: bool = False) -> None:
        self.connection = connection
        # Stop 54's rows: one entry and one feed line an order; else stop 53's, a hold and a
        # capture and two feed lines.
        self.kinds = ("redemption", "award") if paid_in_one else ("hold", "redemption", "award")
        self.lines = 1 if paid_in_one else 2
        self.participants = [f"par_{n:026d}" for n in range(participants)]
        self.seq = int(connection.execute("SELECT coalesce(max(seq), 0) FROM ledger_entries").fetchone()[0])

    def batch(self, start: int, count: int, moment: int, at: str) -> None:
        orders, binds, feed, entries, postings = [], [], [], [], []
        for n in range(start, start + count):
            person = self.participants[n % len(self.participants)]
            order, code = _id("ord", n, moment), _id("cod", n, 0)
            binds.append((order, at, code, order))
            orders.append((order, PROGRAM, person, "itm_bench", "ptn_builtin", "redemption", 500, "USD", 500,
                           "fulfilled", 0, code, at, 0, at, at, at))
            feed += [(_id("fd", 2 * n + k, moment), f"order:{order}:{k}", PROGRAM, person, "order",
                      "Redeemed a $5 card", -500, order, at) for k in range(self.lines)]
            kinds = self.kinds if n % 10 < 3 else self.kinds[:-1]
            for k, kind in enumerate(kinds):
                tx = _id("tx", 3 * n + k, moment)
                self.seq += 1
                entries.append((tx, PROGRAM, person, kind, -500, 0, 500, order,
                                '{"code": "cod"}', "[]", f"{moment}-{3 * n + k}", at, self.seq, "a" * 64))
                postings += [(f"{tx}:{leg}", tx, PROGRAM, f"participant:{person}:available" if leg == 0 else "budget",
                              500, leg) for leg in range(2)]
        c = self.connection
        c.execute("BEGIN")
        c.executemany(_ENTRY, entries)
        c.executemany(_POSTING, postings)
        c.executemany(_BIND, binds)
        c.executemany(_ORDER, orders)
        c.executemany(_FEED, feed)
        c.execute("COMMIT")


def _connect(path: Path) -> sqlite3.Connection:
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode = WAL")
    return connection


def grown(base: Path, orders: int, participants: int, codes: int) -> Path:
    """A migrated database holding `orders` orders (and their rows) and `codes` codes."""
    data = base / "grown"
    env = {**os.environ, "RW_DATA_DIR": str(data)}
    env.pop("DATABASE_URL", None)
    subprocess.run([sys.executable, "-m", "api", "migrate"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
    path = data / DB_FILE
    connection = _connect(path)
    connection.execute("PRAGMA synchronous = OFF")
    connection.execute("BEGIN")
    connection.executemany(
        "INSERT INTO pool_codes (id, program_id, item_id, code_hash, item_code, secret, created_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?)",
        ((_id("cod", n, 0), PROGRAM, "itm_bench", "h" * 64, f"code-{n}", "s2." + "x" * 72, "2026-01-01")
         for n in range(codes)))
    connection.execute("COMMIT")
    writer = Writer(connection, participants)
    for start in range(0, orders, 2_000):
        writer.batch(start, min(2_000, orders - start), 1_000, "2026-06-01T00:00:00+00:00")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    connection.close()
    return path


def timed(path: Path, changes: list[str], paid_in_one: bool, start: int, participants: int, warm: int,
          batches: int, batch: int) -> float:
    """CPU us an order of `batches` batches after `warm` ones, with `changes` made first;
    `paid_in_one`: this tree's rows, else stop 53's."""
    connection = _connect(path)
    for change in changes:
        connection.execute(change)
    connection.execute("PRAGMA synchronous = NORMAL")
    connection.execute(f"PRAGMA cache_size = -{WRITER_CACHE_KIB}")
    connection.execute(f"PRAGMA wal_autocheckpoint = {WAL_PAGES}")
    connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    writer = Writer(connection, participants, paid_in_one)
    at = "2026-07-01T00:00:00+00:00"
    for n in range(warm):
        writer.batch(start + n * batch, batch, 2_000, at)
    start += warm * batch
    before = os.times()
    for n in range(batches):
        writer.batch(start + n * batch, batch, 2_000, at)
    after = os.times()
    connection.close()
    return ((after.user - before.user) + (after.system - before.system)) * 1e6 / (batches * batch)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="rounds of each variant, alternated")
    parser.add_argument("--orders", type=int, default=120_000, help="orders in the database before the timing")
    parser.add_argument("--participants", type=int, default=1_024, help="participants the orders go round")
    parser.add_argument("--batch", type=int, default=40, help="orders a projector batch")
    parser.add_argument("--warm", type=int, default=100, help="batches before the timing (the page cache)")
    parser.add_argument("--batches", type=int, default=200, help="timed batches a round")
    args = parser.parse_args()

    variants: dict[str, tuple[list[str], bool]] = {"now": ([], True), "stop 53": ([], False),
                                                   "stop 52": (STOP_52, False)}
    with tempfile.TemporaryDirectory(prefix="rw-participant-indexes-") as folder:
        base = Path(folder)
        began = time.perf_counter()
        codes = args.orders + (args.warm + args.batches) * args.batch + 1
        source = grown(base, args.orders, args.participants, codes)
        print(f"reward-wallet benchmark: the projector's SQL a code-pool order with {args.orders:,} orders of "
              f"{args.participants:,} participants written first ({source.stat().st_size >> 20} MB, "
              f"grown in {time.perf_counter() - began:.0f} s); batches of {args.batch}, {args.warm} to warm, "
              f"{args.batches} timed; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
        results: dict[str, list[float]] = {name: [] for name in variants}
        for round_ in range(args.rounds):
            for name, (changes, paid_in_one) in variants.items():
                copy = base / "copy.sqlite3"
                for leftover in base.glob("copy.sqlite3*"):
                    leftover.unlink()
                shutil.copy(source, copy)
                results[name].append(timed(copy, changes, paid_in_one, args.orders, args.participants, args.warm,
                                           args.batches, args.batch))
                print(f"  round {round_ + 1}  {name:8s}  {results[name][-1]:6.0f} us an order", flush=True)
        medians = {name: statistics.median(values) for name, values in results.items()}
        for name, value in medians.items():
            print(f"  {name:8s} median {value:6.0f} us an order (rounds {', '.join(f'{v:.0f}' for v in results[name])})")
        print(f"  now / stop 53 (one entry and one feed line an order): {medians['now'] / medians['stop 53']:.2f} x "
              f"the CPU an order; stop 53 / stop 52 (two indexes fewer): {medians['stop 53'] / medians['stop 52']:.2f} x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
