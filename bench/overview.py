"""The console Overview of a big program against `GET /v1/participants`, in one run (issue #15).

A live stack (one uvicorn worker, SQLite, embedded Valkey; bench/harness.py) gets a program
with 10,000 participants, imported over the API, and 1,000,000 ledger entries over the last
120 days, written straight into the SQLite file in the shape the projector writes them
(wallet/journal.py `entry_row` and `posting_rows`, wallet/daily.py's day totals, wallet/chain.py's
links and chain head) with the Redis balances those entries add up to, then a funding and
a batch of grants over the API that `reward-wallet reconcile` projects and checks: the
books must agree before anything is timed.

A console owner (the CLI, `--password-stdin`) signs in over HTTP as a browser does. Then,
interleaved and one at a time after a warm-up, N requests each of
`GET /console/p/{id}/overview` (the session cookie) and `GET /v1/participants?limit=50` (the
admin key): latency p50/p90 and the API process's CPU per request (all its threads, from
/proc schedstat), the ratio overview / participants against the target (<= 1.0: the Overview
must not be slower), PASS or MISS. Last, py-spy samples the API for `--profile` seconds
under a loop of Overview requests and says where the Overview's time goes: each of its reads
and the template, by the function the Overview handler called.

    .venv/bin/python bench/overview.py [--participants 10000] [--entries 1000000] [--requests 40]
                                       [--profile 10]

Exits 0 unless the setup fails or reconcile finds drift; the target is reported, not asserted.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import sqlite3
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.games import find_py_spy, self_time  # noqa: E402
from bench.harness import Stack, api_stack  # noqa: E402
from wallet import keys  # noqa: E402
from wallet.chain import canonical, genesis  # noqa: E402
from wallet.daily import _sums  # noqa: E402
from wallet.journal import _ENTRY_COLUMNS, JournalEntry, entry_row, posting_rows  # noqa: E402

PASSWORD = "bench overview password"
DAYS = 120
COMMIT_EVERY = 100_000  # entries per SQL transaction: keeps the WAL file small


# --- the ledger, as the projector would have written it -----------------------------------


def journal(program_id: str, participants: list[str], count: int, now: datetime,
            seed: int = 15) -> list[JournalEntry]:
    """`count` entries in stream order over the last DAYS days: awards and grants from the
    budget, redemptions (a hold, then its capture), expiries, deductions, and a funding
    whenever the budget runs low. No participant goes below zero."""
    rng = random.Random(seed)
    start_ms = int((now - timedelta(days=DAYS)).timestamp() * 1000)
    step = (DAYS * 86_400_000 - 60_000) / count  # the last entry a minute ago
    available = [0] * len(participants)
    budget = 0
    out: list[JournalEntry] = []

    def add(kind: str, who: int | None, points: int, legs: list[tuple[str, str, int]], earned: int = 0,
            spent: int = 0, reference: str | None = None, metadata: str = '{"reason":"bench"}') -> None:
        ms = start_ms + int(len(out) * step)
        out.append(JournalEntry(
            stream_id=f"{ms}-0", transaction_id=f"tx_bench{len(out):012d}", kind=kind,
            participant_id=None if who is None else participants[who], points=points, earned=earned, spent=spent,
            reference=reference, metadata=metadata, legs=legs,
            created_at=datetime.fromtimestamp(ms / 1000, tz=timezone.utc)))

    while len(out) < count:
        if budget < 100_000:
            points = 5_000_000
            add("funding", None, 0, [("world", "budget", points)], reference=f"fnd_bench{len(out)}",
                metadata='{"reason":"offline payment bench"}')
            budget += points
            continue
        who = rng.randrange(len(participants))
        pid = participants[who]
        roll = rng.random()
        if roll < 0.62 or available[who] < 50:
            points = rng.randint(10, 500)
            add("award" if roll < 0.52 else "grant", who, points, [("budget", f"available:{pid}", points)],
                earned=points)
            available[who] += points
            budget -= points
        elif roll < 0.80 and len(out) + 2 <= count:
            cost = min(available[who], rng.choice((500, 1000, 2500)))
            order = f"ord_bench{len(out):012d}"
            add("hold", who, -cost, [(f"available:{pid}", f"held:{pid}", cost)], reference=order,
                metadata=f'{{"reason":"redemption {order}"}}')
            add("redemption", who, 0, [(f"held:{pid}", "redeemed", cost)], spent=cost, reference=order)
            available[who] -= cost
        elif roll < 0.92:
            points = min(available[who], rng.randint(10, 300))
            add("expiry", who, -points, [(f"available:{pid}", "expired", points)])
            available[who] -= points
        else:
            points = min(available[who], rng.randint(5, 50))
            add("deduction", who, -points, [(f"available:{pid}", "budget", points)])
            available[who] -= points
            budget += points
    return out


def write_ledger(database: Path, program_id: str, entries: list[JournalEntry]) -> None:
    """Entries (linked, as wallet/chain.py would link them), postings, day totals and the
    chain head, with sqlite3 executemany, a transaction per COMMIT_EVERY entries."""
    columns = _ENTRY_COLUMNS + ("seq", "link")
    entry_sql = f"INSERT INTO ledger_entries ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    posting_sql = ("INSERT INTO ledger_postings (posting_id, transaction_id, program_id, account, delta, leg) "
                   "VALUES (?, ?, ?, ?, ?, ?)")
    import hashlib

    link = genesis(program_id)
    db = sqlite3.connect(database, timeout=60)
    try:
        db.execute("PRAGMA synchronous=OFF")
        db.execute("PRAGMA cache_size=-524288")  # 512 MB: the postings' account index takes random inserts
        for start in range(0, len(entries), COMMIT_EVERY):
            rows, postings = [], []
            for seq, e in enumerate(entries[start:start + COMMIT_EVERY], start + 1):
                row = entry_row(program_id, e)
                link = hashlib.sha256(bytes.fromhex(link) + canonical(dict(zip(_ENTRY_COLUMNS, row)))).hexdigest()
                rows.append((*row, seq, link))
                postings += posting_rows(program_id, e)
            with db:
                db.executemany(entry_sql, rows)
                db.executemany(posting_sql, postings)
        with db:
            db.executemany(
                "INSERT INTO daily_totals (id, program_id, day, issued, spent, redeemed, expired) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                [(f"{program_id}:{day}", program_id, day, *figures) for day, figures in sorted(_sums(entries).items())])
            db.execute("INSERT INTO chain_heads (program_id, seq, link, stream_id) VALUES (?, ?, ?, ?)",
                       (program_id, len(entries), link, entries[-1].stream_id))
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        db.close()


def write_balances(stack: Stack, program_id: str, entries: list[JournalEntry]) -> None:
    """What the entries add up to in Redis, as the Lua functions would have left it: each
    leg moves its two accounts ("available:<id>" and "held:<id>" are wallet fields, the rest
    program accounts), and earned/spent move the participant's lifetime counters."""
    import redis

    wallets: dict[str, Counter[str]] = defaultdict(Counter)
    accounts: Counter[str] = Counter()
    for e in entries:
        for source, target, points in e.legs:
            for account, delta in ((source, -points), (target, points)):
                field, _, participant = account.partition(":")
                if participant:
                    wallets[participant][field] += delta
                else:
                    accounts[account] += delta
        if e.participant_id:
            wallets[e.participant_id]["earned"] += e.earned
            wallets[e.participant_id]["spent"] += e.spent
    client = redis.Redis.from_url(stack.valkey.url)
    try:
        pipe = client.pipeline(transaction=False)
        for participant, fields in wallets.items():
            for field, delta in fields.items():
                if delta:
                    pipe.hincrby(keys.wallet(program_id, participant), field, delta)
        for account, delta in accounts.items():
            pipe.hincrby(keys.accounts(program_id), account, delta)
        pipe.execute()
    finally:
        client.close()


# --- the console session ------------------------------------------------------------------


def console_owner(stack: Stack, http: httpx.Client, program_id: str) -> dict[str, str]:
    """An owner made with the CLI, signed in as a browser does; answers the session's Cookie header."""
    email = "owner@bench.example"
    binary = str(Path(sys.executable).parent / "reward-wallet")
    subprocess.run([binary, "console-user", "create", program_id, email, "--role", "owner", "--password-stdin"],
                   input=PASSWORD + "\n", text=True, env=stack.env, check=True, capture_output=True)
    form = http.get("/console/sign-in")
    pre = re.search(r"rw_console_pre=([^;]+)", form.headers.get("set-cookie", ""))
    csrf = re.search(r'name="csrf" value="([^"]+)"', form.text)
    if not pre or not csrf:
        raise RuntimeError("the sign-in form has no pre-session cookie or csrf field")
    http.cookies.clear()
    signed = http.post("/console/sign-in", data={"email": email, "password": PASSWORD, "csrf": csrf.group(1)},
                       headers={"Cookie": f"rw_console_pre={pre.group(1)}"}, follow_redirects=False)
    http.cookies.clear()
    session = re.search(r"rw_console=([^;]+)", ";".join(signed.headers.get_list("set-cookie")))
    if signed.status_code != 303 or not session:
        raise RuntimeError(f"sign-in answered {signed.status_code}")
    return {"Cookie": f"rw_console={session.group(1)}"}


# --- measuring ----------------------------------------------------------------------------


def cpu_ns(pid: int) -> int:
    """CPU time of every thread of the process so far, in ns (schedstat's first field)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # a thread that ended meanwhile
    return total


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def timed(http: httpx.Client, pid: int, path: str, headers: dict[str, str], marker: str) -> tuple[float, float]:
    """(seconds, API CPU seconds) of one request; raises unless it answers 200 with `marker`."""
    cpu = cpu_ns(pid)
    started = time.perf_counter()
    response = http.get(path, headers=headers, follow_redirects=False)
    seconds = time.perf_counter() - started
    used = (cpu_ns(pid) - cpu) / 1e9
    http.cookies.clear()
    if response.status_code != 200 or marker not in response.text:
        raise RuntimeError(f"GET {path} answered {response.status_code}: {response.text[:200]}")
    return seconds, used


# py-spy frames, by the function the Overview handler calls (the first frame under it).
HANDLER = "overview (console/manager/program_pages.py"


def where_overview_goes(raw: Path, per_request_ms: float) -> list[str]:
    """Samples by the function the Overview handler was in; `per_request_ms` turns a share
    of all samples into ms of CPU per Overview (samples / rate / Overviews served)."""
    steps: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    total = main = inside = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        total += n
        if "MainThread" not in frames[0]:
            name = frames[0].split(": ", 1)[-1]
            threads[name[name.find("(") + 1:name.rfind(")")] if "(" in name else name] += n
            continue
        main += n
        at = next((i for i, f in enumerate(frames) if f.startswith(HANDLER)), None)
        if at is None:
            continue
        inside += n
        callee = frames[at + 1] if at + 1 < len(frames) else "the handler itself"
        callee = re.sub(r":\d+\)$", ")", callee)
        if callee.startswith("overview.<locals>.<listcomp>"):
            callee = "sweepstakes list_all, open and closed (the handler's list comprehension)"
        steps[callee] += n
    if not total:
        return ["  no samples"]
    lines = [f"  {total} samples: main thread {100 * main / total:.0f}%, of which inside the Overview handler "
             f"{100 * inside / total:.0f}% (the rest: uvicorn, Litestar, middleware, the loop)"]
    lines += [f"    {100 * n / total:5.1f}%  {n / total * per_request_ms:6.2f} ms/Overview  {step[:100]}"
              for step, n in steps.most_common(14)]
    others = ", ".join(f"{name}: {100 * n / total:.0f}%" for name, n in threads.most_common(6))
    if others:
        lines.append(f"  other threads (SQL runs on the pool's threads: time there is the queries): {others}")
    return lines


def profile(stack: Stack, http: httpx.Client, path: str, session: dict[str, str], seconds: int,
            folder: Path) -> list[str]:
    notes: list[str] = []
    spy = find_py_spy(None, notes)
    if spy is None:
        return [f"  no profile: {'; '.join(notes)}"]
    raw = folder / "py-spy-overview.txt"
    argv = [spy, "record", "--pid", str(stack.pid), "--duration", str(seconds), "--rate", "200", "--format", "raw",
            "--threads", "--nonblocking", "--output", str(raw)]
    spying = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    served = 0
    try:
        while spying.poll() is None:
            http.get(path, headers=session, follow_redirects=False)
            http.cookies.clear()
            served += 1
    finally:
        _, err = spying.communicate(timeout=60)
    if not raw.exists():
        return [f"  no profile: py-spy said {err.decode(errors='replace')[-300:]}"]
    lines = notes + [f"  {served} Overviews in {seconds} s under py-spy (200 samples/s, all threads, idle excluded)",
                     "  by the function the Overview handler was in (inclusive):"]
    samples = sum(int(line.rpartition(" ")[2]) for line in raw.read_text(errors="replace").splitlines()
                  if line.rpartition(" ")[2].isdigit())
    lines += where_overview_goes(raw, samples / 200 / max(served, 1) * 1000)
    lines.append("  main thread by innermost frame of our own code, top 12:")
    lines += self_time(raw, 12)
    return lines


# --- each read of the Overview alone -------------------------------------------------------


async def time_reads(program_id: str, repeat: int) -> None:
    """Runs in a child process with the API's environment (same SQLite file and Valkey): each
    read the Overview handler makes (console/manager/program_pages.py `overview`), `repeat`
    times, one at a time; prints the median wall time of each."""
    import statistics

    from catalog.items import pricing_of
    from console.manager.charts import grouped_bars
    from fulfillment import order_counts
    from games import campaigns
    from games.sweepstakes import report as sweepstakes_report
    from kernel.redis_functions import connect
    from programs import budget, waiting
    from programs.programs import get_program
    from wallet import daily, journal as ledger_journal
    from wallet.store import WalletStore

    client = connect(os.environ["REDIS_URL"])
    wallets = WalletStore(client)
    program = await get_program(program_id)
    pricing = pricing_of(program)
    days = await daily.last_days(program_id, 90)
    reads: list[tuple[str, Any]] = [
        ("get_program (SQL)", lambda: get_program(program_id)),
        ("budget.budget_view (Redis)", lambda: budget.budget_view(wallets, program)),
        ("campaigns.list_campaigns active (SQL)", lambda: campaigns.list_campaigns(program_id, pricing, 100, None,
                                                                                   "active")),
        ("sweepstakes list_all open (SQL)", lambda: sweepstakes_report.list_all(wallets, program, pricing, 20,
                                                                                 status="open")),
        ("sweepstakes list_all closed (SQL)", lambda: sweepstakes_report.list_all(wallets, program, pricing, 20,
                                                                                   status="closed")),
        ("order_counts.by_status (SQL)", lambda: order_counts.by_status(program_id)),
        ("daily.last_days 90 (SQL)", lambda: daily.last_days(program_id, 90)),
        ("journal.lag (Redis)", lambda: ledger_journal.lag(client, program_id)),
        ("waiting.claims_waiting (SQL)", lambda: waiting.claims_waiting(program_id)),
        ("waiting.approvals_waiting (SQL)", lambda: waiting.approvals_waiting(program_id)),
        ("order_counts.stuck (SQL)", lambda: order_counts.stuck(program_id)),
    ]
    total = 0.0
    for label, read in reads:
        times = []
        for _ in range(repeat):
            started = time.perf_counter()
            await read()
            times.append(time.perf_counter() - started)
        median = statistics.median(times)
        total += median
        print(f"    {1000 * median:7.2f} ms  {label}")
    started = time.perf_counter()
    for _ in range(repeat):
        grouped_bars([d.day.isoformat() for d in days], [("Issued", "issued", [d.issued for d in days]),
                                                        ("Redeemed", "redeemed", [d.redeemed for d in days])])
    chart = (time.perf_counter() - started) / repeat
    print(f"    {1000 * chart:7.2f} ms  the chart (grouped_bars, CPU only)")
    print(f"    {1000 * (total + chart):7.2f} ms  all of them, one after the other (the handler awaits each in turn)")
    await client.aclose()


# --- the run ------------------------------------------------------------------------------


def run(args: argparse.Namespace) -> int:
    print(f"Console Overview at {args.participants:,} participants and {args.entries:,} ledger entries against "
          f"GET /v1/participants (one uvicorn worker, SQLite, embedded Valkey); {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.2f} at start (a shared machine: read the ratio)", flush=True)
    with api_stack() as stack, httpx.Client(base_url=stack.url, timeout=120) as http:
        created = http.post("/v1/programs", json={"name": "Overview bench"}, headers=stack.operator).json()
        program_id = created["program_id"]
        admin = {"Authorization": f"Bearer {created['admin_key']}"}

        started = time.perf_counter()
        participants: list[str] = []
        for start in range(0, args.participants, 500):
            rows = "\n".join(f"ov-{n},Seller {n},seller{n}@dealer.example,,gold"
                             for n in range(start, min(args.participants, start + 500)))
            report = http.post("/v1/participants/import", headers=admin,
                               json={"csv": "external_id,display_name,email,team_id,segment\n" + rows})
            report.raise_for_status()
            participants += [p["id"] for p in report.json()["participants"]]
        import_seconds = time.perf_counter() - started

        started = time.perf_counter()
        entries = journal(program_id, participants, args.entries, datetime.now(timezone.utc))
        build_seconds = time.perf_counter() - started
        started = time.perf_counter()
        write_ledger(stack.folder / "reward-wallet.sqlite3", program_id, entries)
        write_seconds = time.perf_counter() - started
        started = time.perf_counter()
        write_balances(stack, program_id, entries)
        redis_seconds = time.perf_counter() - started
        kinds = Counter(e.kind for e in entries)
        del entries

        # Money moved through the API too, so the newest figures are the app's own.
        funded = http.post(f"/v1/programs/{program_id}/fundings/offline",
                           json={"amount": {"amount": 1_000_000, "currency": "USD"}, "reference": "bench wire"},
                           headers={**stack.operator, "Idempotency-Key": "bench-funding"})
        grants = http.post("/v1/points/grants/batch", headers={**admin, "Idempotency-Key": "bench-grants"},
                           json={"grants": [{"idempotency_id": f"bench-{pid}", "participant_id": pid, "points": 100,
                                             "reason": "bench"} for pid in participants[:100]]})
        if funded.status_code != 201 or grants.status_code != 200:
            raise RuntimeError(f"funding answered {funded.status_code}, grants {grants.status_code}: {grants.text[:200]}")
        started = time.perf_counter()
        binary = str(Path(sys.executable).parent / "reward-wallet")
        books = subprocess.run([binary, "reconcile"], env=stack.env, capture_output=True, text=True, timeout=1800)
        reconcile_seconds = time.perf_counter() - started

        print(f"  data load: import {import_seconds:.1f} s ({args.participants:,} rows, 500 a request); ledger "
              f"built in {build_seconds:.1f} s, written in {write_seconds:.1f} s (entries, postings, day totals, "
              f"links); Redis balances {redis_seconds:.1f} s; reconcile (projects the API's entries, then compares) "
              f"{reconcile_seconds:.1f} s")
        print(f"  entries by kind: {', '.join(f'{k} {n:,}' for k, n in kinds.most_common())}")
        print(f"  reconcile: {(books.stdout.strip() or books.stderr.strip())[:300]}")
        if books.returncode != 0:
            print("  the books disagree: not measuring")
            return 1

        session = console_owner(stack, http, program_id)
        overview = f"/console/p/{program_id}/overview"
        cases = [("overview", overview, session, "Overview"),
                 ("participants", "/v1/participants?limit=50", admin, '"items"')]
        for _ in range(args.warmup):
            for _, path, headers, marker in cases:
                timed(http, stack.pid, path, headers, marker)
        seconds: dict[str, list[float]] = defaultdict(list)
        cpu: dict[str, list[float]] = defaultdict(list)
        for i in range(args.requests):
            for name, path, headers, marker in (cases if i % 2 == 0 else cases[::-1]):
                took, used = timed(http, stack.pid, path, headers, marker)
                seconds[name].append(took)
                cpu[name].append(used)
        load = os.getloadavg()

        print(f"\n  {args.requests} requests each, interleaved, one at a time, after {args.warmup} each of warm-up; "
              f"load average {load[0]:.2f} / {load[1]:.2f} / {load[2]:.2f} (1/5/15 min)")
        print(f"  {'':<32}{'p50 ms':>9}{'p90 ms':>9}{'API CPU ms/req':>16}")
        for name, path, _, _ in cases:
            label = "GET " + (path if name == "participants" else "/console/p/{id}/overview")
            print(f"  {label:<32}{1000 * quantile(seconds[name], 0.5):9.1f}{1000 * quantile(seconds[name], 0.9):9.1f}"
                  f"{1000 * sum(cpu[name]) / len(cpu[name]):16.1f}")
        p50 = quantile(seconds["overview"], 0.5) / quantile(seconds["participants"], 0.5)
        p90 = quantile(seconds["overview"], 0.9) / quantile(seconds["participants"], 0.9)
        cpu_ratio = sum(cpu["overview"]) / max(sum(cpu["participants"]), 1e-9)
        verdict = "PASS" if p50 <= 1.0 else "MISS"
        plan = sqlite3.connect(stack.folder / "reward-wallet.sqlite3")
        steps = plan.execute("EXPLAIN QUERY PLAN SELECT * FROM participants WHERE program_id = ? ORDER BY id DESC "
                             "LIMIT 51", (program_id,)).fetchall()
        plan.close()
        print(f"  the baseline's SQL plan (programs/participants.py list_participants): "
              f"{'; '.join(str(step[-1]) for step in steps)}")
        print(f"  overview / participants: p50 {p50:.2f}, p90 {p90:.2f}, API CPU {cpu_ratio:.2f}   "
              f"(target <= 1.0 at p50: the Overview must not be slower) {verdict}")

        print("\n  each read of the Overview alone (a child process on the same SQLite file and Valkey, "
              f"median of {args.read_repeat}):", flush=True)
        reads = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--time-reads", program_id,
                                "--read-repeat", str(args.read_repeat)], env=stack.env, cwd=ROOT,
                               capture_output=True, text=True, timeout=600)
        print(reads.stdout.rstrip() or f"    failed: {reads.stderr[-600:]}")

        if args.profile > 0:
            print(f"\n  where the Overview's time goes (py-spy on the API process, {args.profile} s):", flush=True)
            print("\n".join(profile(stack, http, overview, session, args.profile, stack.folder)))
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--participants", type=int, default=10_000)
    parser.add_argument("--entries", type=int, default=1_000_000)
    parser.add_argument("--requests", type=int, default=40, help="measured requests of each kind")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--profile", type=int, default=10, help="seconds of py-spy under Overview requests (0: none)")
    parser.add_argument("--read-repeat", type=int, default=20, help="times each Overview read is timed alone")
    parser.add_argument("--time-reads", metavar="PROGRAM_ID", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.time_reads:
        import asyncio

        asyncio.run(time_reads(args.time_reads, args.read_repeat))
        return 0
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
