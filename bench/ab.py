"""This tree against another checkout (an older commit, say), the same requests in one run:
did a change make the hot path slower?

Both trees' `reward-wallet serve --workers 1` run side by side with their defaults (SQLite,
embedded Valkey with fsync always, rate limits on with budgets no benchmark can spend);
each is set up over HTTP the same way (bench/load.py's Program: 256 participants with
tokens). Then, for `GET /v1/me/wallet` (round robin over the tokens), the admin deduction
and a spin (round robin, unique Idempotency-Keys), the two servers are loaded in turn
(wrk, 64 connections) for `--rounds` rounds, alternating which goes first, so the
machine's drift falls on both alike. It prints each side's median requests/s and server
CPU per request, and the change in percent (this tree against the other).

    git worktree add /tmp/ab-old <commit>; (cd /tmp/ab-old && make .venv/.installed-test)
    .venv/bin/python bench/ab.py --other /tmp/ab-old [--rounds 6] [--duration 6]

Exits 0 unless the setup fails; no figure here is a test.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import load as load_module  # noqa: E402
from bench.games import SpinTarget  # noqa: E402
from bench.load import Program, Server  # noqa: E402
from bench.profile import GetTarget  # noqa: E402
from bench.wallet import LoadResult, Processes, Target, choose_generator, load_once  # noqa: E402

SCENARIOS = ("wallet", "deduction", "spin")
QUIET = {"RW_LOG_LEVEL": None, "RW_RATE_LIMIT_IP": str(10**9), "RW_RATE_LIMIT_PRINCIPAL": str(10**9)}


def serve_from(tree: Path) -> Server:
    """`Server` started with `tree`'s own installed `reward-wallet`."""
    ours = load_module.BIN
    load_module.BIN = tree / ".venv" / "bin"
    try:
        return Server(1, "sqlite", env=dict(QUIET))
    finally:
        load_module.BIN = ours


def targets_for(server: Server, participants: int, threads: int) -> dict[str, Target]:
    import httpx

    async def setup() -> Program:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            program = Program(http, server.operator_key)
            await program.setup(participants, 1, launch_spins=True)
            if program.campaign_id is None:
                raise RuntimeError(f"no spin campaign: {program.spins_skipped}")
            return program

    program = asyncio.run(setup())
    tokens = [p.headers["Authorization"].split(" ", 1)[1] for p in program.phones]
    body = json.dumps({"participant_id": program.phones[0].participant_id, "points": 1, "reason": "bench"},
                      separators=(",", ":")).encode()
    return {
        "wallet": GetTarget("wallet", server.port, "/v1/me/wallet", tokens, threads),
        "deduction": Target("deduction", server.port, "/v1/points/deductions", program.admin, body),
        "spin": SpinTarget("spin", server.port, f"/v1/me/campaigns/{program.campaign_id}/spins", tokens, threads),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--other", type=Path, required=True, help="the other checkout, with its own .venv")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=float, default=6.0)
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--participants", type=int, default=256)
    parser.add_argument("--scenario", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
    parser.add_argument("--generator", choices=["auto", "wrk", "python"], default="wrk")
    args = parser.parse_args()
    other = args.other.resolve()
    if not (other / ".venv" / "bin" / "reward-wallet").exists():
        print(f"{other} has no .venv/bin/reward-wallet: install it first", file=sys.stderr)
        return 2
    notes: list[str] = []
    chosen = choose_generator(args, notes)
    if chosen is None:
        return 2
    wrk = chosen[0]
    procs = Processes()
    folder = Path(tempfile.mkdtemp(prefix="rw-bench-ab-"))
    servers = {"this": serve_from(ROOT), "other": serve_from(other)}
    try:
        targets = {}
        for side, server in servers.items():
            server.wait_ready()
            targets[side] = targets_for(server, args.participants, args.threads)
        print(f"A/B: this tree ({ROOT}) against {other}; serve --workers 1 each, SQLite, embedded Valkey; "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; wrk 64 connections, "
              f"{args.rounds} alternating rounds of {args.duration:.0f} s", flush=True)
        for scenario in args.scenario:
            results: dict[str, list[LoadResult]] = {"this": [], "other": []}
            for round_no in range(args.rounds):
                order = ["this", "other"] if round_no % 2 == 0 else ["other", "this"]
                for side in order:
                    target, pid = targets[side][scenario], servers[side].process.pid
                    prefix = f"{side}-{scenario}-{round_no}"
                    load_once(wrk, target, "w-" + prefix, args.warmup, args.threads, folder, procs, pid)
                    results[side].append(load_once(wrk, target, "m-" + prefix, args.duration, args.threads,
                                                   folder, procs, pid))
            report(scenario, results)
        return 0
    finally:
        procs.stop_all()
        for server in servers.values():
            server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def report(scenario: str, results: dict[str, list[LoadResult]]) -> None:
    figures = {}
    print(f"\n{scenario}: median of the rounds (each round in brackets)")
    print(f"  {'':<7}{'req/s':>8}{'CPU us/req':>12}{'p99 ms':>9}{'non2xx':>8}  rounds req/s")
    for side in ("other", "this"):
        runs = results[side]
        rate = statistics.median(r.rate for r in runs)
        cpu = statistics.median(r.cpu["server"] / max(r.rate, 1e-9) * 1e6 for r in runs)
        p99 = statistics.median(r.latency["p99"] for r in runs)
        figures[side] = (rate, cpu)
        print(f"  {side:<7}{rate:8.0f}{cpu:12.0f}{p99:9.1f}{sum(r.non2xx for r in runs):8d}  "
              f"[{', '.join(f'{r.rate:.0f}' for r in runs)}]")
    (rate_o, cpu_o), (rate_t, cpu_t) = figures["other"], figures["this"]
    # Paired: each round's ratio, this side against the other side measured next to it.
    paired = statistics.median(t.rate / max(o.rate, 1e-9) for t, o in zip(results["this"], results["other"]))
    print(f"  this vs other: req/s {100 * (rate_t / rate_o - 1):+.1f}% (paired rounds {100 * (paired - 1):+.1f}%), "
          f"CPU per request {100 * (cpu_t / cpu_o - 1):+.1f}%")


if __name__ == "__main__":
    sys.exit(main())
