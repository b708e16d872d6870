"""What each step of the hot path buys, in one run: the same requests on the same machine
against `reward-wallet serve --workers 1` (SQLite, embedded Valkey, fsync always, info
logging, rate limits on with budgets no benchmark can spend) in three configurations, and
against the bare Litestar endpoint (bench/bare_app.py) measured between them:

- `litestar`: the hot routes through Litestar's router and handler machinery, one Redis
  write per function call (RW_LEAN_ROUTES=0, RW_REDIS_COALESCE=0);
- `lean`: the lean path (api/lean.py), one write per call (RW_REDIS_COALESCE=0);
- `lean+coalesce`: the lean path, the calls of concurrent requests sent as one pipeline per
  turn of the event loop (kernel/coalesce.py): the defaults.

and two floors (bench/floor_app.py: the bare endpoint making exactly one Redis call, the
least Lua doing a grant's writes for the POST, one HMGET for the GET, on a Valkey of its
own with the same fsync policy): `floor` (one write per call) and `floor+coalesce`. What
separates ours from its floor is our per-request work (authentication, the gate, rate
limits, idempotency, metrics, the access log, the operation's own checks).

For `GET /v1/me/wallet` (256 participants' tokens) and the admin deduction, at 64
closed-loop keep-alive connections (wrk, else the Python generator): requests/s, p99,
server CPU per request and the ratios to the bare endpoint's figures of the same run, with
the issue #13 targets (wallet read >= 0.6 x and p99 <= 2 x; deduction >= 0.5 x and p99 <= 2.5 x).
`--scenario history` loads the phone's history page (`GET /v1/me/transactions?limit=20`, the
same tokens, each participant's seed grant in the ledger) and `--scenario catalog` the catalog
page (`GET /v1/catalog/items?limit=50`, half of the requests with the page's ETag in
`If-None-Match`, as the load mix sends them) on the three configurations alone: they read SQL
or a kept page, so neither the bare endpoint nor the floors answer their like.

    .venv/bin/python bench/steps.py [--duration 8] [--rounds 2] [--scenario wallet deduction history catalog]

Exits 0 unless the setup fails; no figure here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.profile import GetTarget  # noqa: E402
from bench.load import Program, Server  # noqa: E402
from bench.wallet import (  # noqa: E402
    LoadResult, Processes, Target, choose_generator, free_port, load_once, uvicorn_argv, wait_http,
)

VARIANTS = {
    "litestar": {"RW_LEAN_ROUTES": "0", "RW_REDIS_COALESCE": "0"},
    "lean": {"RW_LEAN_ROUTES": "1", "RW_REDIS_COALESCE": "0"},
    "lean+coalesce": {"RW_LEAN_ROUTES": "1", "RW_REDIS_COALESCE": "1"},
}
FLOORS = {"floor": "0", "floor+coalesce": "1"}
TARGETS = {"wallet": (0.6, 2.0), "deduction": (0.5, 2.5)}  # throughput ratio at least, p99 ratio at most


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of each measured run")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=2, help="each variant and the bare endpoint, alternating")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--scenario", nargs="+", choices=["wallet", "deduction", "history", "catalog"],
                        default=["wallet", "deduction"])
    parser.add_argument("--participants", type=int, default=256)
    args = parser.parse_args()
    notes: list[str] = []
    chosen = choose_generator(args, notes)
    if chosen is None:
        return 2
    wrk, _ = chosen
    procs = Processes()
    folder = Path(tempfile.mkdtemp(prefix="rw-bench-steps-"))
    servers: dict[str, Server] = {}
    try:
        for name, env in VARIANTS.items():
            servers[name] = Server(1, "sqlite", env={"RW_LOG_LEVEL": None, "RW_RATE_LIMIT_IP": str(10**9),
                                                     "RW_RATE_LIMIT_PRINCIPAL": str(10**9), **env})
        return run(args, procs, folder, servers, wrk, notes)
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()
        for server in servers.values():
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def run(args: argparse.Namespace, procs: Processes, folder: Path, servers: dict[str, Server], wrk: str | None,
        notes: list[str]) -> int:
    import httpx

    from api.embedded import EmbeddedValkey

    bare_port = free_port()
    bare = procs.start("bare", uvicorn_argv("bench.bare_app:app_factory", bare_port), cwd=ROOT,
                       stdout=subprocess.DEVNULL, stderr=open(folder / "bare.log", "wb"))
    wait_http(f"http://127.0.0.1:{bare_port}", bare, folder / "bare.log",
              lambda u: httpx.get(u + "/v1/me/wallet", timeout=2).status_code == 200)
    valkey = EmbeddedValkey(folder / "floor-valkey")
    valkey.start()
    try:
        return measure(args, procs, folder, servers, wrk, notes, bare, bare_port, valkey.url)
    finally:
        valkey.stop()


def measure(args: argparse.Namespace, procs: Processes, folder: Path, servers: dict[str, Server], wrk: str | None,
            notes: list[str], bare: Any, bare_port: int, valkey_url: str) -> int:
    import httpx

    floors: dict[str, tuple[int, int]] = {}
    for who, coalesce in FLOORS.items():
        port = free_port()
        floor = procs.start(who, uvicorn_argv("bench.floor_app:app_factory", port), cwd=ROOT,
                            env={**os.environ, "FLOOR_REDIS_URL": valkey_url, "FLOOR_COALESCE": coalesce},
                            stdout=subprocess.DEVNULL, stderr=open(folder / f"{who}.log", "wb"))
        wait_http(f"http://127.0.0.1:{port}", floor, folder / f"{who}.log",
                  lambda u: httpx.get(u + "/v1/me/wallet", timeout=2).status_code == 200)
        floors[who] = (port, floor.pid)
    targets: dict[tuple[str, str], tuple[Target, int]] = {}
    for name, server in servers.items():
        server.wait_ready()

        async def setup(server: Server = server) -> Program:
            async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
                program = Program(http, server.operator_key)
                await program.setup(args.participants, 1, launch_spins=False)
                return program

        program = asyncio.run(setup())
        tokens = [p.headers["Authorization"].split(" ", 1)[1] for p in program.phones]
        body = json.dumps({"participant_id": program.phones[0].participant_id, "points": 1, "reason": "bench"},
                          separators=(",", ":")).encode()
        targets[(name, "wallet")] = (GetTarget(name, server.port, "/v1/me/wallet", tokens, args.threads),
                                     server.process.pid)
        targets[(name, "deduction")] = (Target(name, server.port, "/v1/points/deductions", program.admin, body),
                                        server.process.pid)
        targets[(name, "history")] = (GetTarget(name, server.port, "/v1/me/transactions?limit=20", tokens,
                                                args.threads), server.process.pid)
        etag = asyncio.run(_etag(server.url, program.phones[0].headers))
        # Every other participant's requests carry the page's ETag (a header line after its token).
        revalidating = [t if i % 2 == 0 else f"{t}\r\nIf-None-Match: {etag}" for i, t in enumerate(tokens)]
        targets[(name, "catalog")] = (GetTarget(name, server.port, "/v1/catalog/items?limit=50", revalidating,
                                                args.threads), server.process.pid)
        if name == "litestar":  # the bare endpoint and the floors answer the same requests
            for who, (port, pid) in [("bare", (bare_port, bare.pid)), *floors.items()]:
                targets[(who, "wallet")] = (GetTarget(who, port, "/v1/me/wallet", tokens, args.threads), pid)
                targets[(who, "deduction")] = (Target(who, port, "/v1/points/deductions", program.admin, body), pid)
    run_id = secrets.token_hex(3)

    def load(target: Target, prefix: str, seconds: float, pid: int) -> LoadResult:
        return load_once(wrk, target, prefix, seconds, args.threads, folder, procs, pid)

    print(f"reward-wallet steps: serve --workers 1 x {len(servers)} configurations, SQLite, embedded Valkey (fsync "
          f"always), info logging, rate limits on; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; "
          f"generator {'wrk' if wrk else 'Python'}, 64 connections, {args.rounds} rounds of {args.duration:.0f} s",
          flush=True)
    for note in notes:
        print(f"  note: {note}")
    if "history" in args.scenario:
        time.sleep(3)  # the setup's grants projected to the ledger by each server's worker
    for scenario in args.scenario:
        order = [*VARIANTS] if scenario in ("history", "catalog") else ["bare", *FLOORS, *VARIANTS]
        results: dict[str, list[LoadResult]] = {who: [] for who in order}
        for round_no in range(args.rounds):
            for who in order:
                target, pid = targets[(who, scenario)]
                load(target, f"w-{who}-{scenario}-{round_no}-{run_id}", args.warmup, pid)
                results[who].append(load(target, f"m-{who}-{scenario}-{round_no}-{run_id}", args.duration, pid))
        report(scenario, order, results)
    return 0


async def _etag(url: str, headers: dict[str, str]) -> str:
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        page = await http.get("/v1/catalog/items", params={"limit": 50}, headers=headers)
        page.raise_for_status()
        return page.headers["etag"]


def report(scenario: str, order: list[str], results: dict[str, list[LoadResult]]) -> None:
    want_rate, want_p99 = TARGETS.get(scenario, (0.0, 0.0))
    label = {"wallet": "GET /v1/me/wallet (256 tokens)", "deduction": "POST /v1/points/deductions (admin)",
             "history": "GET /v1/me/transactions?limit=20 (256 tokens)",
             "catalog": "GET /v1/catalog/items?limit=50 (256 tokens, every other one with If-None-Match)"}[scenario]
    base = "bare" if "bare" in results else order[0]
    print(f"\n{label}: best round of each (rounds in brackets)")
    print(f"  {'':<15}{'req/s':>8}{'p99 ms':>9}{'non2xx':>8}{'CPU us/req':>12}{'x ' + base:>12}"
          f"{'p99 x ' + base:>16}  rounds")
    bare = max(results[base], key=lambda r: r.rate)
    for who in order:
        best = max(results[who], key=lambda r: r.rate)
        us = best.cpu["server"] / max(best.rate, 1e-9) * 1e6
        ratio = best.rate / max(bare.rate, 1e-9)
        p99_ratio = best.latency["p99"] / max(bare.latency["p99"], 1e-9)
        rounds = ", ".join(f"{r.rate:.0f}" for r in results[who])
        verdict = ""
        if who in VARIANTS and scenario in TARGETS:
            met = ratio >= want_rate and p99_ratio <= want_p99
            verdict = f"  {'MET' if met else 'MISSED'} (target >= {want_rate} x, p99 <= {want_p99} x)"
        print(f"  {who:<15}{best.rate:8.0f}{best.latency['p99']:9.1f}{best.non2xx:8d}{us:12.0f}{ratio:12.2f}"
              f"{p99_ratio:16.2f}  [{rounds}]{verdict}")


if __name__ == "__main__":
    sys.exit(main())
