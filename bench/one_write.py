"""What answering in one write buys (api/http_protocol.py), with nothing else in the way: the
bare Litestar endpoint (bench/bare_app.py) served three times side by side, by uvicorn's own
httptools protocol (headers and body as two `send`s, two TCP segments), by the API's
`OneWriteProtocol` (a loop turn's writes held to its end: one segment an answer, a turn's
answers together) and by `at completion` (bench/one_write_variants.py: one segment an answer,
each sent the moment it is whole), loaded in turn for `--rounds` rounds (which goes first
rotating), 64 closed-loop keep-alive connections (wrk, else the Python generator):

- `deduction`: POST /v1/points/deductions, a unique Idempotency-Key each (bench/wallet.py's
  baseline request);
- `wallet`: GET /v1/me/wallet with 256 bearer tokens round robin (bench/profile.py's).

It prints each side's median requests/s, the server's CPU a request and p99, and the other two
against uvicorn's own: the same server work, so the differences are what the HTTP writes cost
on this machine, and `at completion` shows how much of it one segment an answer is alone. bench/ab.py measures the API with and
without it (this tree against an older one); bench/games.py and bench/wallet.py take
`--bare-one-write` to hold their ratios against a baseline served the same way.

    .venv/bin/python bench/one_write.py [--rounds 6] [--duration 6] [--scenario deduction wallet]

Exits 0 unless the setup fails; no figure here is a test.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from api.http_protocol import ONE_WRITE  # noqa: E402
from bench.profile import GetTarget  # noqa: E402
from bench.wallet import (  # noqa: E402
    CONNECTIONS, LoadResult, Processes, Target, choose_generator, free_port, load_once, uvicorn_argv, wait_http,
)

SIDES = {"uvicorn's own": "httptools", "one write": ONE_WRITE, "at completion": "bench.one_write_variants:AtCompletion"}
DEDUCTION = b'{"participant_id":"p","points":1,"reason":"bench"}'


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--duration", type=float, default=6.0, help="measured seconds of each load")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--scenario", nargs="+", choices=["deduction", "wallet"], default=["deduction", "wallet"])
    args = parser.parse_args()

    notes: list[str] = []
    chosen = choose_generator(args, notes)
    if chosen is None:
        return 2
    wrk, generator = chosen
    folder = Path(tempfile.mkdtemp(prefix="rw-bench-one-write-"))
    procs = Processes()
    try:
        import httpx

        servers: dict[str, tuple[int, int]] = {}
        for side, http in SIDES.items():
            port = free_port()
            log = folder / f"{http.replace(':', '_')}.log"
            process = procs.start(side, uvicorn_argv("bench.bare_app:app_factory", port, http), cwd=ROOT,
                                  env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=open(log, "wb"))
            wait_http(f"http://127.0.0.1:{port}", process, log,
                      lambda u: httpx.get(u + "/v1/me/wallet", timeout=2).status_code == 200)
            servers[side] = (port, process.pid)
        tokens = [secrets.token_urlsafe(32) for _ in range(256)]
        print(f"One write against uvicorn's own protocol: bench/bare_app.py, one uvicorn worker each; {os.cpu_count()} "
              f"CPUs, load average {os.getloadavg()[0]:.2f}; {generator or 'the Python generator'}, {CONNECTIONS} "
              f"connections, {args.rounds} alternating rounds of {args.duration:g} s", flush=True)
        for note in notes:
            print(f"  note: {note}")
        for scenario in args.scenario:
            results: dict[str, list[LoadResult]] = {side: [] for side in SIDES}
            for round_no in range(args.rounds):
                order = list(SIDES)[round_no % len(SIDES):] + list(SIDES)[:round_no % len(SIDES)]
                for side in order:
                    port, pid = servers[side]
                    target = (Target(side, port, "/v1/points/deductions", {}, DEDUCTION) if scenario == "deduction"
                              else GetTarget(side, port, "/v1/me/wallet", tokens, args.threads))
                    load_once(wrk, target, f"warm-{scenario}-{round_no}", args.warmup, args.threads, folder, procs, pid)
                    results[side].append(load_once(wrk, target, f"{scenario}-{round_no}", args.duration, args.threads,
                                                   folder, procs, pid))
            print(f"\n{scenario}: median of the rounds (each round in brackets)")
            print(f"  {'':16}{'req/s':>8}{'CPU us/req':>12}{'p99 ms':>9}{'non2xx':>8}  rounds req/s")
            medians: dict[str, tuple[float, float]] = {}
            for side, runs in results.items():
                rate = statistics.median(r.rate for r in runs)
                cpu = statistics.median(r.cpu["server"] / r.rate * 1e6 for r in runs if r.rate)
                p99 = statistics.median(r.latency["p99"] for r in runs)
                medians[side] = (rate, cpu)
                print(f"  {side:16}{rate:8.0f}{cpu:12.0f}{p99:9.1f}{sum(r.non2xx for r in runs):8d}  "
                      f"[{', '.join(f'{r.rate:.0f}' for r in runs)}]")
            for other in ("one write", "at completion"):
                (old_rate, old_cpu), (new_rate, new_cpu) = medians["uvicorn's own"], medians[other]
                paired = statistics.median(n.rate / o.rate for o, n in zip(results["uvicorn's own"], results[other]))
                print(f"  {other} vs uvicorn's own: req/s {100 * (new_rate / old_rate - 1):+.1f}% (paired rounds "
                      f"{100 * (paired - 1):+.1f}%), CPU a request {100 * (new_cpu / old_cpu - 1):+.1f}%", flush=True)
        return 0
    finally:
        procs.stop_all()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
