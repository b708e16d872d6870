"""Where the per-request Python time goes: py-spy on the API process of a live
`reward-wallet serve --workers 1` (SQLite, embedded Valkey, app defaults: info logging,
rate limits on with budgets the benchmark cannot spend) under

- `GET /v1/me/wallet`, 256 participants' tokens round robin, and
- the admin deduction `POST /v1/points/deductions`, a unique Idempotency-Key each,

each at 64 closed-loop keep-alive connections (wrk, else bench/wallet.py's Python
generator), against the same request on bench/bare_app.py (uvicorn, one worker) in the
same run: requests/s, server CPU per request, and their ratios.

The API's samples (py-spy `record --format raw`, all threads, idle excluded) are summed by
part of the stack, each sample going to the innermost frame that belongs to a known part
(so a Redis call inside the auth middleware counts as "redis client", JSON built for the
access log as "logging"): a table of percentages and microseconds of CPU per request.

    .venv/bin/python bench/profile.py [--duration 8] [--native] [--generator auto|wrk|python]
                                      [--scenario wallet deduction] [--keep-raw]

py-spy comes from the venv (installed with pip when missing). `--native` adds C frames
(msgspec, httptools, hiredis) at a higher sampling cost. Exits 0 unless the setup fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.games import SpinTarget, find_py_spy, self_time  # noqa: E402
from bench.load import Program, Server  # noqa: E402
from bench.wallet import (  # noqa: E402
    LoadResult, Processes, Target, choose_generator, free_port, load_once, uvicorn_argv, wait_http,
)

# (part, markers): a frame belongs to the first part with a marker in it; a sample goes to its
# innermost frame that belongs to a part.
PARTS: list[tuple[str, tuple[str, ...]]] = [
    ("auth: JWT decode/verify (PyJWT)", ("(jwt/",)),
    ("redis client (redis-py, hiredis)", ("(redis/", "hiredis")),
    ("logging (access log line, JSON)", ("(logging/", "(api/logs.py")),
    ("metrics (prometheus middleware)", ("prometheus", "(api/metrics.py")),
    ("msgspec encode/decode", ("msgspec", "(litestar/serialization")),
    ("SQL (piccolo, aiosqlite)", ("(piccolo/", "(aiosqlite/", "sqlite3", "(kernel/sqlite_pool.py")),
    ("auth: our middleware + key cache (api/auth.py)", ("(api/auth.py",)),
    ("rate limits (api/limits.py)", ("(api/limits.py",)),
    ("request-id/access-log middleware (api/app.py)", ("(api/app.py", "(api/problems.py")),
    ("gate layer and lean path (api/gate.py, api/lean.py, kernel/gated.py)", ("(api/gate.py", "(api/lean.py",
                                                                             "(kernel/gated.py")),
    ("call coalescing (kernel/coalesce.py)", ("(kernel/coalesce.py",)),
    ("idempotency wrapper (api/idempotency.py)", ("(api/idempotency.py",)),
    ("Litestar middleware machinery", ("(litestar/middleware/",)),
    ("Litestar routing, DI, guards, responses", ("(litestar/",)),
    ("uvicorn + httptools (HTTP/1.1)", ("(uvicorn/", "httptools")),
    ("journal projector + background tasks", ("(wallet/journal.py", "(api/background.py")),
    ("domain code (wallet/, programs/, games/, ...)", ("(wallet/", "(programs/", "(games/", "(catalog/",
                                                      "(fulfillment/")),
    ("route handlers (api/routes/)", ("(api/routes/",)),
    ("stdlib json (for its caller)", ("(json/",)),
    ("event loop (asyncio, uvloop, anyio)", ("(asyncio/", "uvloop", "(anyio/", "(selectors.py", "(threading.py",
                                              "(concurrent/")),
]
OTHER = "other (stdlib, C code without a Python caller)"
EVENT_LOOP = PARTS[-1][0]
# Parts that only carry work for their caller: a sample whose innermost known part is one of
# them goes to the nearest caller with a specific part (asyncio's StreamWriter.writelines
# under redis-py is the redis client's cost); only without one does it stay here.
GENERIC = {EVENT_LOOP, PARTS[-2][0]}


def part_of(frame: str) -> str | None:
    for part, markers in PARTS:
        if any(m in frame for m in markers):
            return part
    return None


LOOP_ENTRY = ("Runner.run (asyncio/runners.py", "run_until_complete (asyncio/base_events.py")


def owner_of(frames: list[str]) -> str:
    # Frames outside the event loop's entry (serve, uvicorn.run) call no request's code.
    entry = max((i for i, f in enumerate(frames) if f.startswith(LOOP_ENTRY)), default=-1)
    if entry == len(frames) - 1:
        return EVENT_LOOP  # the loop itself: polling, wake-ups, callbacks in C (uvloop)
    generic = None
    for frame in reversed(frames[entry + 1 :] if entry >= 0 else frames):
        part = part_of(frame)
        if part is None:
            continue
        if part not in GENERIC:
            return part
        generic = generic or part
    return generic or OTHER


def summarise(raw: Path) -> tuple[Counter[str], Counter[str], int, int]:
    """(samples by part, samples by thread, main-thread samples, all samples)."""
    parts: Counter[str] = Counter()
    threads: Counter[str] = Counter()
    main = total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        thread = frames[0]
        name = thread.split(": ", 1)[-1]
        name = name[name.find("(") + 1 : name.rfind(")")] if "(" in name else name
        threads[name] += n
        total += n
        main += n if "MainThread" in thread else 0
        parts[owner_of(frames)] += n
    return parts, threads, main, total


# Stack markers worth a line of their own (inclusive share of all samples).
HOT_SPOTS = [
    ("redis-py building new connections (AbstractConnection.__init__)", "AbstractConnection.__init__"),
    ("redis-py connecting (AbstractConnection.connect)", "AbstractConnection.connect"),
    ("SQL reads on the request path (piccolo, under run_asgi)", "(piccolo/"),
    ("access log line (Logger.info, all of it)", "Logger.info"),
    ("journal projector in the API process (JournalProjector.run)", "JournalProjector.run"),
    ("background tasks in the API process (api/background.py)", "(api/background.py"),
]


def samples(raw: Path) -> Iterator[tuple[str, int]]:
    """py-spy's raw output (`--format raw`): each stack (frames joined by ";") and its count."""
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if count.isdigit():
            yield stack, int(count)


def hot_spots(raw: Path) -> list[str]:
    counts: Counter[str] = Counter()
    total = 0
    for stack, count in samples(raw):
        total += count
        for label, marker in HOT_SPOTS:
            if marker in stack and ("run_asgi" in stack or "piccolo" not in marker):
                counts[label] += count
    return [f"{label} {100 * n / total:.1f}%" for label, n in counts.most_common() if n] if total else []


class GetTarget(SpinTarget):
    """GET with one Authorization head per participant, round robin (the spin target's wrk
    script and Python heads, with the method changed)."""

    def __init__(self, name: str, port: int, path: str, tokens: list[str], threads: int) -> None:
        super().__init__(name, port, path, tokens, threads)
        self.head = self.head.replace("POST ", "GET ", 1)
        self.heads = [h.replace("POST ", "GET ", 1) for h in self.heads]
        self.wrk_script = self.wrk_script.replace('"POST /', '"GET /')


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of each measured and profiled run")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--scenario", nargs="+", choices=["wallet", "deduction"], default=["wallet", "deduction"])
    parser.add_argument("--participants", type=int, default=256)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    parser.add_argument("--native", action="store_true", help="py-spy --native (C frames too)")
    parser.add_argument("--py-spy", metavar="PATH", default=None)
    parser.add_argument("--keep-raw", action="store_true", help="keep py-spy's raw stacks (path printed)")
    args = parser.parse_args()

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    notes: list[str] = []
    chosen = choose_generator(args, notes)
    if chosen is None:
        return 2
    wrk, _ = chosen
    spy = find_py_spy(args.py_spy, notes)
    procs = Processes()
    folder = Path(tempfile.mkdtemp(prefix="rw-bench-profile-"))
    # App defaults (info log level), with rate limits on but budgets no benchmark can spend.
    server = Server(1, "sqlite", env={"RW_LOG_LEVEL": None, "RW_RATE_LIMIT_IP": str(10**9),
                                      "RW_RATE_LIMIT_PRINCIPAL": str(10**9)})
    try:
        return run(args, procs, folder, server, wrk, spy, notes)
    except KeyboardInterrupt:
        print("\ninterrupted: cleaning up", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


def run(args: argparse.Namespace, procs: Processes, folder: Path, server: Server, wrk: str | None,
        spy: str | None, notes: list[str]) -> int:
    import httpx

    server.wait_ready()
    bare_port = free_port()
    bare = procs.start("bare", uvicorn_argv("bench.bare_app:app_factory", bare_port), cwd=ROOT,
                       stdout=subprocess.DEVNULL, stderr=open(folder / "bare.log", "wb"))
    wait_http(f"http://127.0.0.1:{bare_port}", bare, folder / "bare.log",
              lambda u: httpx.get(u + "/v1/me/wallet", timeout=2).status_code == 200)

    async def setup() -> Program:
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            program = Program(http, server.operator_key)
            await program.setup(args.participants, 1, launch_spins=False)
            return program

    program = asyncio.run(setup())
    api_pid = server.process.pid  # serve --workers 1 runs uvicorn in its own process
    tokens = [p.headers["Authorization"].split(" ", 1)[1] for p in program.phones]
    body = json.dumps({"participant_id": program.phones[0].participant_id, "points": 1, "reason": "bench"},
                      separators=(",", ":")).encode()
    scenarios = {
        "wallet": ("GET /v1/me/wallet (256 tokens)",
                   GetTarget("api", server.port, "/v1/me/wallet", tokens, args.threads),
                   GetTarget("bare", bare_port, "/v1/me/wallet", tokens, args.threads)),
        "deduction": ("POST /v1/points/deductions (admin)",
                      Target("api", server.port, "/v1/points/deductions", program.admin, body),
                      Target("bare", bare_port, "/v1/points/deductions", program.admin, body)),
    }
    run_id = secrets.token_hex(3)

    def load(target: Target, prefix: str, seconds: float, pid: int) -> LoadResult:
        return load_once(wrk, target, prefix, seconds, args.threads, folder, procs, pid)

    print(f"reward-wallet profile: serve --workers 1, SQLite, embedded Valkey (fsync always), info logging, rate "
          f"limits on; {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f} (a shared machine: absolute "
          "figures move, ratios and shares are the point)", flush=True)
    print(f"  generator: {'wrk' if wrk else 'Python raw-socket (bench/wallet.py)'}, 64 connections; py-spy "
          f"{'record --native' if args.native else 'record'} at {args.rate}/s on the API process")
    for note in notes:
        print(f"  note: {note}")
    tables = []
    for name in args.scenario:
        label, api_target, bare_target = scenarios[name]
        load(bare_target, f"bw-{name}-{run_id}", args.warmup, bare.pid)
        bare_result = load(bare_target, f"b-{name}-{run_id}", args.duration, bare.pid)
        load(api_target, f"aw-{name}-{run_id}", args.warmup, api_pid)
        raw = folder / f"py-spy-{name}.txt"
        spy_proc = None
        if spy:
            argv = [spy, "record", "--pid", str(api_pid), "--duration", str(max(1, int(args.duration) - 1)),
                    "--rate", str(args.rate), "--format", "raw", "--threads", "--nonblocking", "--output", str(raw)]
            if args.native:
                argv.insert(2, "--native")
                argv.remove("--nonblocking")  # native unwinding needs the process paused
            spy_proc = procs.start("py-spy", argv, stdout=subprocess.DEVNULL, stderr=open(folder / "spy.err", "wb"))
        api_result = load(api_target, f"a-{name}-{run_id}", args.duration, api_pid)
        if spy_proc is not None:
            try:
                spy_proc.wait(timeout=60)
            finally:
                procs.stop(spy_proc)
        tables.append((label, api_result, bare_result, raw))

    for label, api_result, bare_result, raw in tables:
        api_us = api_result.cpu["server"] / max(api_result.rate, 1e-9) * 1e6
        bare_us = bare_result.cpu["server"] / max(bare_result.rate, 1e-9) * 1e6
        print(f"\n{label}")
        print(f"  {'':<8}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'non2xx':>8}{'server cores':>14}{'CPU us/req':>12}")
        for who, r, us in (("bare", bare_result, bare_us), ("api", api_result, api_us)):
            print(f"  {who:<8}{r.rate:9.0f}{r.latency['p50']:9.1f}{r.latency['p99']:9.1f}{r.non2xx:8d}"
                  f"{r.cpu['server']:14.2f}{us:12.0f}")
        print(f"  api / bare: throughput {api_result.rate / max(bare_result.rate, 1e-9):.2f}, p99 "
              f"{api_result.latency['p99'] / max(bare_result.latency['p99'], 1e-9):.1f} x, CPU per request "
              f"{api_us / max(bare_us, 1e-9):.1f} x")
        if not raw.exists():
            err = (raw.parent / "spy.err")
            print("  no profile: " + (err.read_text(errors="replace")[-400:] if err.exists() else "py-spy missing"))
            continue
        parts, threads, main, total = summarise(raw)
        print(f"  where the API process's CPU goes ({total} samples, {100 * main / max(total, 1):.0f}% on the main "
              f"thread; innermost known part of each stack; CPU us/req = share x {api_us:.0f} us):")
        print(f"  {'part':<50}{'share':>8}{'us/req':>9}")
        for part, n in parts.most_common():
            print(f"  {part:<50}{100 * n / total:7.1f}%{n / total * api_us:9.0f}")
        others = ", ".join(f"{k}: {100 * v / total:.0f}%" for k, v in threads.most_common() if "MainThread" not in k)
        if others:
            print(f"  other threads: {others}")
        print("  main thread by innermost frame of our own code, top 10 (api/cli.py cmd_serve: no code of ours on the "
              "stack: the loop, uvicorn, Litestar):")
        print("\n".join(self_time(raw, 10)))
        hot = hot_spots(raw)
        if hot:
            print("  notable: " + "; ".join(hot))
        if args.keep_raw:
            kept = Path(tempfile.gettempdir()) / f"rw-profile-{raw.name}"
            shutil.copy(raw, kept)
            print(f"  raw stacks: {kept}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
