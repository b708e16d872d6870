"""Redemptions of a code-pool item over HTTP against the bare Litestar endpoint, in one run
(issue #13: at least 0.25 x bare, p99 at most 5 x bare's).

`POST /v1/me/redemptions` `{"item_id": ...}` (one uvicorn worker, embedded Valkey with AOF
and fsync always, SQLite, the journal projector and background tasks in a `reward-wallet
worker` beside it, as `serve` runs them) from 64 keep-alive connections, each request its
own Idempotency-Key, round robin over the participants' tokens. Each answer is a fulfilled
order with its gift-card code: one Redis call takes the points and the pool's next free code
(fulfillment/pool.lua); Valkey syncing every write, the request then only reads the code's
sealed secret, and the journal projector in the worker writes the fulfilled order, binds the
code and adds the feed lines (fulfillment/pooled_orders.py); past 256 entries waiting the
request waits first, in proportion; past 1,000, and for an order whose tax check read SQL, the
request writes them itself.
Each participant's first order of the year is such an order (it reads SQL's total and the
journal, and sets the participant's tax counter): once a year in a program, so the setup places
it, and the measured runs measure the order every later one is. So is every order of a
participant past the year's threshold without a tax form ($2,000 from 2026, $600 before: $5
cards pass it after 400 orders); the script says at the end how many passed it (`--participants
64` measures that path). The baseline is
bench/bare_app.py served the same way with the same generator, alternated with the
redemption runs. Runs on a code pool larger than the run can empty, so
no request is refused for stock.

Two floors run alternated with them (bench/floor_app.py, served the same way, the same
requests): `floor` makes the one Redis call (the least Lua making a hold's writes) and then
one SQL write transaction of an order-shaped row and a feed line through the API's own
SQLite engine, and nothing else; `floor+read` also reads a participant's year total from a
covering index first, as a redemption's tax check did. What a redemption that keeps one SQL
write on its request path (as it does with a Redis that may lose writes) can cost at least
on this machine: the
script prints each floor's ratio to bare and the redemptions' ratio to the floors.

With `--partner` the item is an external partner's instead: one Redis call holds the points
and journals the order (fulfillment/partner_orders.lua), then one SQL write transaction
writes the pending order and its feed line (fulfillment/partner_orders.py); at the end the
script checks that every hold the journal carried has its order row, and no more.

    .venv/bin/python bench/redemptions.py [--duration 8] [--warmup 2] [--rounds 2]
                                          [--participants 1024] [--codes 60000] [--no-floors] [--partner] [--profile [api|worker]]

After the table: each run's cores by process (the API, its SQLite writer process, the
projector's worker, Valkey, the load generator, the whole machine) and how the server's
event loop spent the run (on a CPU, runnable but waiting for one, asleep: on its I/O or
for the GIL).

`--profile` samples the API process with py-spy during the last redemption round and prints
where its CPU goes by part of the stack (bench/profile.py's table) and by our own functions;
`--profile worker` samples the worker (the journal projector) instead.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.games import SpinTarget, start_stack  # noqa: E402
from bench.wallet import (  # noqa: E402
    HOST, free_port, uvicorn_argv,
    CONNECTIONS, CpuWindow, LoadResult, Processes, Target, described_generator, drain_journal, fmt_ms,
    on_a_fresh_valkey, run_python_load, run_wrk, wait_http,
)

TARGET_RATIO, TARGET_P99 = 0.25, 5.0
CODES_PER_UPLOAD = 2000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=8.0, help="measured seconds per HTTP run")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds before each HTTP run")
    parser.add_argument("--rounds", type=int, default=2, help="bare/redemption rounds, alternated")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--participants", type=int, default=1024,
                        help="participants redeeming round robin (each passes the year's $2,000 tax threshold "
                             "after 400 orders: fewer participants measure that path)")
    parser.add_argument("--codes", type=int, default=60_000, help="gift-card codes in the pool (more than the run can empty)")
    parser.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--no-floors", action="store_true", help="bare and redemptions only: no floor runs")
    parser.add_argument("--partner", action="store_true", help="an external partner's item (no codes)")
    parser.add_argument("--profile", nargs="?", const="api", choices=["api", "worker"],
                        help="py-spy on the API (or the projector's worker) during the last redemption round: "
                             "where its CPU goes")
    args = parser.parse_args()
    if not (1 <= args.duration <= 120 and 0 <= args.warmup <= 30 and 1 <= args.rounds <= 10
            and CONNECTIONS <= args.participants <= 5000 and 100 <= args.codes <= 400_000):
        parser.error(f"out of range: duration 1..120, warmup 0..30, rounds 1..10, participants "
                     f"{CONNECTIONS}..5000, codes 100..400000")
    return on_a_fresh_valkey("rw-bench-redemptions-", lambda procs, folder, valkey: run(args, procs, folder, valkey))


def run(args: argparse.Namespace, procs: Processes, folder: Path, valkey: Any) -> int:
    import httpx

    notes: list[str] = []
    described = described_generator(
        args, notes, "Lua script (unique key per request; redemptions round robin over the tokens)",
        "Python raw-socket asyncio generator from bench/wallet.py (one participant per connection)")
    if described is None:
        return 2
    wrk, generator_desc = described
    operator_key = "rwo_" + secrets.token_hex(16)
    stack = start_stack(procs, folder, valkey.url, operator_key)
    api, bare, api_port, bare_port = stack.api, stack.bare, stack.api_port, stack.bare_port
    api_url, bare_url, bare_log = stack.api_url, stack.bare_url, stack.bare_log

    setup_started = time.monotonic()
    http = httpx.Client(base_url=api_url, timeout=60)
    created = http.post("/v1/programs", json={"name": "bench-redemptions"},
                        headers={"Authorization": f"Bearer {operator_key}"})
    created.raise_for_status()
    program_id, admin = created.json()["program_id"], {"Authorization": f"Bearer {created.json()['admin_key']}"}
    http.post("/v1/fulfillment/partners", json={"name": "Supplier"}, headers=admin).raise_for_status()
    item = http.post("/v1/catalog/items", headers=admin, json={
        "brand": "Amazon", "name": "Gift card", "face_value": {"amount": 500, "currency": "USD"}})
    item.raise_for_status()
    item_id = item.json()["id"]
    for start in range(0, 0 if args.partner else args.codes, CODES_PER_UPLOAD):
        csv = "code\n" + "".join(f"GC-{n:08d}\n" for n in range(start, min(args.codes, start + CODES_PER_UPLOAD)))
        http.post(f"/v1/catalog/items/{item_id}/codes", json={"csv": csv}, headers=admin).raise_for_status()
    tokens: list[str] = []
    for i in range(args.participants):
        person = http.post("/v1/participants", json={"external_id": f"bench-{i}", "display_name": f"Bench {i}"},
                           headers=admin)
        person.raise_for_status()
        pid = person.json()["id"]
        http.post("/v1/points/grants", headers={**admin, "Idempotency-Key": f"bench-grant-{i}"},
                  json={"participant_id": pid, "points": 100_000_000, "reason": "bench funding"}).raise_for_status()
        token = http.post(f"/v1/participants/{pid}/tokens", headers=admin)
        token.raise_for_status()
        tokens.append(token.json()["access_token"])

    body = json.dumps({"item_id": item_id}, separators=(",", ":")).encode()
    probe = http.post("/v1/me/redemptions", content=body, headers={
        "Authorization": f"Bearer {tokens[0]}", "Idempotency-Key": "probe", "Content-Type": "application/json"})
    kind, placed = ("an external partner's item", "pending") if args.partner else ("a code-pool item", "fulfilled")
    if probe.status_code != 201 or probe.json().get("status") != placed:
        raise RuntimeError(f"a first redemption failed: {probe.status_code} {probe.text}")
    if not args.partner:
        # Each participant's first order of the year reads SQL and the journal for its tax total
        # and sets the participant's counter (fulfillment/taxes.py): once a year in a program,
        # once a participant here, so it is placed before the measured runs, which then measure
        # the order every later one is.
        from concurrent.futures import ThreadPoolExecutor

        def first_order(index: int) -> None:
            placed_first = http.post("/v1/me/redemptions", content=body, headers={
                "Authorization": f"Bearer {tokens[index]}", "Idempotency-Key": f"first-{index}",
                "Content-Type": "application/json"})
            if placed_first.status_code != 201:
                raise RuntimeError(f"a first redemption failed: {placed_first.status_code} {placed_first.text}")

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(first_order, range(1, len(tokens))))
    setup_seconds = time.monotonic() - setup_started
    redeem = SpinTarget("redemptions", api_port, "/v1/me/redemptions", tokens, args.threads, body=body)
    # The other benchmarks' baseline, byte for byte: a deduction-shaped body on the bare endpoint.
    bare_body = json.dumps({"participant_id": "p", "points": 1, "reason": "bench"}, separators=(",", ":")).encode()
    bare_target = Target("bare", bare_port, "/v1/points/deductions", admin, bare_body)
    wait_http(bare_url, bare, bare_log, lambda u: httpx.post(
        u + "/v1/points/deductions", content=bare_body, headers={"Content-Type": "application/json"},
        timeout=2).status_code == 201)

    floors: list[tuple[str, SpinTarget, int]] = []
    for name, read in () if args.no_floors else (("floor", "0"), ("floor+read", "1")):
        port = free_port()
        log = folder / f"{name}.log"
        floor = procs.start(name, uvicorn_argv("bench.floor_app:app_factory", port), cwd=ROOT, env={
            **os.environ, "FLOOR_REDIS_URL": valkey.url, "FLOOR_COALESCE": "1", "FLOOR_SQL_READ": read,
            "FLOOR_SQLITE": str(folder / f"{name}.sqlite3")}, stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
        wait_http(f"http://{HOST}:{port}", floor, log, lambda u: httpx.post(
            u + "/v1/me/redemptions", content=body, headers={"Content-Type": "application/json",
                                                              "Idempotency-Key": "probe", "Authorization": "Bearer x"},
            timeout=2).status_code == 201)
        floors.append((name, SpinTarget(name, port, "/v1/me/redemptions", tokens, args.threads, body=body),
                       floor.pid))

    import redis

    from wallet import keys

    sync_redis = redis.Redis.from_url(valkey.url)
    stream = keys.journal(program_id)
    run_id = secrets.token_hex(4)

    worker_pid = next(process.pid for name, process in procs.items if name == "worker")

    def load(target: Target, prefix: str, seconds: float, server_pid: int) -> LoadResult:
        # The server's children too (the API's SQLite writer process), and the projector's
        # worker beside it: where the whole machine's time goes, not the API's alone.
        helpers = {"writer": child} if (child := child_pid(server_pid)) else {}
        window = CpuWindow({"server": server_pid, "valkey": valkey.process.pid, "worker": worker_pid, **helpers})
        before = main_thread_times(server_pid)
        result = run_wrk(wrk, target, prefix, seconds, args.threads, folder, procs, window) if wrk \
            else run_python_load(target, prefix, seconds, procs, window)
        after = main_thread_times(server_pid)
        result.cpu["main_on_cpu"], result.cpu["main_runnable"] = (
            (a - b) / result.cpu["wall"] for a, b in zip(after, before))
        return result

    print(f"reward-wallet benchmark: redemptions of {kind} over HTTP against the bare Litestar endpoint")
    print(f"  {os.cpu_count()} CPUs, load average {' '.join(f'{x:.2f}' for x in os.getloadavg())}; a shared, noisy "
          "machine: read the ratios of the same run")
    for note in notes:
        print(f"  note: {note}")
    print(f"  setup: {args.participants} participants with points and a token"
          f"{'' if args.partner else ' and their first order of the year'}, {0 if args.partner else args.codes:,} "
          "codes, in "
          f"{setup_seconds:.1f} s; generator: {generator_desc}")
    print(f"  {CONNECTIONS} connections, {args.warmup:g} s warm-up + {args.duration:g} s measured, {args.rounds} "
          "round(s), bare, the floors and redemptions alternated\n")
    print(f"    {'run':<15}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}{'non2xx':>8}{'server cores':>14}"
          f"{'CPU us/req':>12}")

    rows: list[tuple[str, LoadResult]] = []
    for round_no in range(1, args.rounds + 1):
        for name, target, pid in (("bare", bare_target, bare.pid), *floors, ("redemptions", redeem, api.pid)):
            if args.warmup:
                load(target, f"{name[0]}w{round_no}-{run_id}", args.warmup, pid)
            drain_journal(sync_redis, stream)
            spy = start_spy(procs, folder, worker_pid if args.profile == "worker" else pid, args.duration) \
                if args.profile and name == "redemptions" and round_no == args.rounds else None
            result = load(target, f"{name[0]}{round_no}-{run_id}", args.duration, pid)
            if spy is not None:
                profiled = (finish_spy(procs, spy), result)
            rows.append((name, result))
            cpu_us = result.cpu["server"] / result.rate * 1e6 if result.rate else 0.0
            print(f"    {name + ' #' + str(round_no):<15}{result.rate:9.0f}{fmt_ms(result.latency['p50']):>9}"
                  f"{fmt_ms(result.latency['p99']):>9}{fmt_ms(result.latency['max']):>9}{result.non2xx:8d}"
                  f"{result.cpu['server']:14.2f}{cpu_us:12.0f}", flush=True)
            if name == "redemptions" and result.rate:
                print("      CPU us a redemption: " + ", ".join(
                    f"{label} {result.cpu.get(key, 0.0) / result.rate * 1e6:.0f}" for label, key in (
                        ("API", "server"), ("writer", "writer"), ("worker", "worker"), ("Valkey", "valkey"))), flush=True)
    waiting, drained = drain_journal(sync_redis, stream)
    print_machine(rows)
    if args.profile == "worker":
        print_worker_profile(profiled[0])
    elif args.profile:
        print_profile(*profiled)

    bare_rows = [r for n, r in rows if n == "bare"]
    ours = [r for n, r in rows if n == "redemptions"]
    # A round with refusals (the pool running dry, most often: raise --codes) measures quick 409s,
    # not redemptions: it is left out of the ratios, with its bare run.
    left_out = [i + 1 for i, r in enumerate(ours) if r.non2xx or r.socket_errors]
    kept = [(o, b) for o, b in zip(ours, bare_rows) if not (o.non2xx or o.socket_errors)] or list(zip(ours, bare_rows))
    ratio = statistics.fmean(o.rate for o, _ in kept) / statistics.fmean(b.rate for _, b in kept)
    p99_ratio = statistics.fmean(o.latency["p99"] for o, _ in kept) / statistics.fmean(
        b.latency["p99"] for _, b in kept)
    from fulfillment import keys as pool_keys

    def database() -> contextlib.closing[sqlite3.Connection]:
        """The API's SQLite database, read only."""
        return contextlib.closing(sqlite3.connect(f"file:{folder / 'reward-wallet.sqlite3'}?mode=ro", uri=True,
                                                  timeout=30))

    def counted() -> tuple[int, int, int]:
        """Orders written; codes bound (a partner's: holds projected to the ledger); codes taken
        in Redis (a partner's: holds journalled)."""
        with database() as db:
            written = db.execute("SELECT COUNT(*) FROM orders WHERE program_id = ? AND status = ?",
                                 (program_id, placed)).fetchone()[0]
            if args.partner:
                held = db.execute("SELECT COUNT(*) FROM ledger_entries WHERE program_id = ? AND kind = 'hold'",
                                  (program_id,)).fetchone()[0]
                return written, held, held
            used = db.execute("SELECT COUNT(*) FROM pool_codes WHERE item_id = ? AND order_id IS NOT NULL",
                              (item_id,)).fetchone()[0]
        return written, used, int(sync_redis.hlen(pool_keys.pool_taken(program_id, item_id)))

    # Requests wrk left unanswered when a run ended are still being served (some past their
    # Redis call, before their SQL write): wait for them, and for the projector.
    written, used, taken = counted()
    for _ in range(150):
        if written == used == taken:
            break
        time.sleep(0.2)
        drain_journal(sync_redis, stream)
        written, used, taken = counted()
    errors = sum(r.non2xx + r.socket_errors for r in ours)
    if floors:
        print("\n  the floors (one Redis call and one SQL write transaction, nothing else):")
    for name, _, _ in floors:
        mine = [r for n, r in rows if n == name]
        rate = statistics.fmean(r.rate for r in mine)
        print(f"    {name:<11} {rate / statistics.fmean(r.rate for r in bare_rows):.2f} x bare, p99 "
              f"{statistics.fmean(r.latency['p99'] for r in mine) / statistics.fmean(r.latency['p99'] for r in bare_rows):.1f}"
              f" x bare's; redemptions {statistics.fmean(r.rate for r in ours) / rate:.2f} x this floor")
    print(f"\n  redemptions / bare: throughput {ratio:.2f} x (target {TARGET_RATIO} x: "
          f"{'MET' if ratio >= TARGET_RATIO else 'MISSED'}), p99 {p99_ratio:.1f} x bare's (target at most "
          f"{TARGET_P99:g} x: {'MET' if p99_ratio <= TARGET_P99 else 'MISSED'}); non-2xx or socket errors {errors}")
    # Each round against the bare run just before it: another tenant's burst lands on one run of
    # a pair more often than on the whole of both, so the median of the pairs moves less.
    paired = [o.rate / b.rate for o, b in zip(ours, bare_rows)]
    print(f"  per round: {', '.join(f'{x:.2f}' for x in paired)} x the bare run before it; median "
          f"{statistics.median(o.rate / b.rate for o, b in kept):.2f} x"
          + (f" (round {', '.join(map(str, left_out))} left out: refusals, the pool ran dry; raise --codes)"
             if left_out and len(kept) < len(ours) else
             " (EVERY round had refusals, and the ratios count them: raise --codes)" if left_out else ""))
    if args.partner:
        print(f"  orders pending {written:,}, holds in the ledger {used:,} (each hold its order: "
              f"{'yes' if written == used else 'NO'}); journal drained {drained:.1f} s after the last run "
              f"({waiting} entries waiting)")
        return 0
    # The program's threshold this year (fulfillment/taxes.py; the bench program sets none of its own).
    from types import SimpleNamespace

    from fulfillment.taxes import threshold
    limit = threshold(SimpleNamespace(tax_thresholds={}), time.gmtime().tm_year)  # type: ignore[arg-type]
    with database() as db:
        past = db.execute("SELECT COUNT(*) FROM (SELECT participant_id FROM orders WHERE program_id = ? "
                          "GROUP BY participant_id HAVING SUM(face_value) >= ?)", (program_id, limit)).fetchone()[0]
    # Past the threshold in the year with no tax form, every order of a participant reads SQL's exact total
    # and is flagged, and its request writes it (fulfillment/pooled_orders.py): another path.
    print(f"  participants past the year's ${limit / 100:,.0f} tax threshold at the end: {past:,} of "
          f"{args.participants:,}")
    print(f"  orders fulfilled {written:,}, codes handed out {used:,} (each order its own code: "
          f"{'yes' if written == used else 'NO'}; taken in Redis {taken:,}: "
          f"{'the same' if taken == used else 'NOT the same'}); journal drained {drained:.1f} s after the last run "
          f"({waiting} entries waiting)")
    return 0


def child_pid(pid: int) -> int | None:
    """The first child process of `pid` (the API's SQLite writer), if it has one."""
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError, ValueError):
            children = (task / "children").read_text().split()
            if children:
                return int(children[0])
    return None


def main_thread_times(pid: int) -> tuple[float, float]:
    """Seconds the process's main thread (its event loop) has spent on a CPU and runnable
    but waiting for one (/proc/PID/task/PID/schedstat)."""
    try:
        on_cpu, waiting = (Path(f"/proc/{pid}/task/{pid}/schedstat").read_text().split())[:2]
    except (OSError, ValueError):
        return 0.0, 0.0
    return int(on_cpu) / 1e9, int(waiting) / 1e9


def print_machine(rows: list[tuple[str, LoadResult]]) -> None:
    """Each run's cores by process, averaged over its rounds: what else is busy while the
    API serves (its SQLite writer, the projector's worker, Valkey, the load generator), and
    how the server's event loop spent the run: on a CPU, waiting for one (the machine's
    other processes had both), or asleep (every request waiting on Redis or SQLite, or the
    loop waiting for the GIL another of the process's threads held)."""
    print(f"\n  the machine's cores by process (mean of the rounds; {os.cpu_count()} in all), and how the server's event "
          "loop spent the run:")
    print(f"    {'run':<15}{'API':>7}{'writer':>8}{'worker':>8}{'Valkey':>8}{'load gen':>10}{'machine':>9}"
          f"{'loop on CPU':>13}{'waits for CPU':>15}{'asleep':>8}")
    for name in dict.fromkeys(n for n, _ in rows):
        mine = [r for n, r in rows if n == name]

        def mean(key: str) -> float:
            return statistics.fmean(r.cpu.get(key, 0.0) for r in mine)

        on_cpu, runnable = mean("main_on_cpu"), mean("main_runnable")
        print(f"    {name:<15}{mean('server'):7.2f}{mean('writer'):8.2f}{mean('worker'):8.2f}{mean('valkey'):8.2f}"
              f"{statistics.fmean(r.generator_cpu for r in mine):10.2f}{mean('machine_busy'):9.2f}"
              f"{on_cpu:13.0%}{runnable:15.0%}{max(0.0, 1 - on_cpu - runnable):8.0%}")


def start_spy(procs: Processes, folder: Path, pid: int, seconds: float) -> tuple[Any, Path] | None:
    from bench.games import find_py_spy

    notes: list[str] = []
    spy = find_py_spy(None, notes)
    if spy is None:
        print("  no profile: " + "; ".join(notes))
        return None
    raw = folder / "py-spy-redemptions.txt"
    argv = [spy, "record", "--pid", str(pid), "--duration", str(max(1, int(seconds) - 1)), "--rate", "200",
            "--format", "raw", "--threads", "--nonblocking", "--output", str(raw)]
    return procs.start("py-spy", argv, stdout=subprocess.DEVNULL, stderr=open(folder / "spy.err", "wb")), raw


def finish_spy(procs: Processes, spy: tuple[Any, Path] | None) -> Path | None:
    if spy is None:
        return None
    process, raw = spy
    try:
        process.wait(timeout=60)
    finally:
        procs.stop(process)
    return raw if raw.exists() else None


def print_profile(raw: Path | None, result: LoadResult) -> None:
    """bench/profile.py's table for the profiled round: share of the API's samples by part, and
    microseconds of CPU per redemption."""
    from bench.games import self_time
    from bench.profile import hot_spots, summarise

    if raw is None:
        print("\n  no profile (py-spy failed)")
        return
    us = result.cpu["server"] / max(result.rate, 1e-9) * 1e6
    parts, threads, main, total = summarise(raw)
    print(f"\n  where the API's CPU went in the last redemption round ({total} samples, "
          f"{100 * main / max(total, 1):.0f}% on the main thread; {us:.0f} us of CPU a redemption):")
    for part, n in parts.most_common():
        print(f"    {part:<72}{100 * n / total:6.1f}%{n / total * us:7.0f} us")
    others = ", ".join(f"{k}: {100 * v / total:.0f}%" for k, v in threads.most_common() if "MainThread" not in k)
    print(f"    other threads: {others or 'none'}")
    print("  the main thread by our own innermost function, top 12:")
    print("\n".join(self_time(raw, 12)))
    hot = hot_spots(raw)
    if hot:
        print("  notable: " + "; ".join(hot))
    kept = Path(tempfile.gettempdir()) / "rw-redemptions-py-spy.txt"
    shutil.copy(raw, kept)
    print(f"  raw stacks (py-spy --format raw): {kept}")


def print_worker_profile(raw: Path | None, where: str = "the last redemption round") -> None:
    """The worker's samples by our own innermost function (main thread) and by the functions of
    ours they pass through (inclusive, all threads): what the projector spends on redemptions."""
    from bench.games import APP_DIRS, self_time
    from bench.profile import samples

    if raw is None:
        print("\n  no profile (py-spy failed)")
        return
    inclusive: Counter[str] = Counter()
    total = 0
    for stack, count in samples(raw):
        for name in dict.fromkeys(f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0] + ")"
                                  for f in stack.split(";") if any(d in f for d in (*APP_DIRS, "(kernel/"))):
            inclusive[name[:90]] += count
        total += count
    print(f"\n  where the worker's CPU went in {where} ({total} samples):")
    print("  the main thread by our own innermost function, top 12:")
    print("\n".join(self_time(raw, 12)))
    print("  all threads, by function of ours on the stack (inclusive), top 25:")
    for name, n in inclusive.most_common(25):
        print(f"    {100 * n / max(total, 1):5.1f}%  {name}")
    kept = Path(tempfile.gettempdir()) / f"rw-{'spins' if 'spin' in where else 'redemptions'}-worker-py-spy.txt"
    shutil.copy(raw, kept)
    print(f"  raw stacks (py-spy --format raw): {kept}")


if __name__ == "__main__":
    sys.exit(main())
