"""An open-loop HTTP/1.1 load generator: requests leave at fixed, scheduled times whether or
not earlier ones have answered, and each latency is measured from the request's *scheduled*
time, so a server that stalls cannot hide its queue (no coordinated omission).

One generator process (`python bench/openloop.py SPEC.json`) runs one asyncio loop (uvloop
when installed) with a pool of keep-alive connections, each a bare asyncio Protocol; the
parent (bench/load.py) starts a few of them, each with its share of every operation's rate
and its own phase, all on the same CLOCK_MONOTONIC start time, and merges their answers.

The spec (JSON):

    {"port": 8000, "start": <time.monotonic() of t=0>, "warmup": 2, "duration": 10,
     "grace": 10, "max_connections": 256, "prefix": "run1-g0-",   # grace: also each request's timeout
     "ops": [{"name": "GET /v1/me/wallet", "rate": 200.0, "phase": 0.001, "ok": [200],
              "kind": "plain" | "claim",
              "requests": [[head, body], ...],       # round robin; head ends before Content-Length
              "fulfil": [head, body]}]}              # kind "claim" only: @ID@, @LEASE@ filled in

`@KEY@` in a head or body becomes a key unique to this request (Idempotency-Key, activity
ids). A "claim" op fulfils every order its answer lists, on the same connection, each timed
as "<name> -> fulfil" from when it was sent.

`python bench/openloop.py --calibrate [--rates 250 500 1000 2000]` measures the generator
itself against bench/bare_app.py (the cheapest endpoint there is): its CPU against the
server's, and its send lag, at each rate.

A generator process prints one line, `OPENLOOP_RESULT {json}`: per operation the latencies
(ms, of requests scheduled inside the measured window), errors, a first error sample, how late the
generator itself sent (its own health: p99 send lag), its own CPU seconds over the window,
and the connections it opened.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import os
import random
import resource
import secrets
import subprocess
import sys
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
IDLE_EXPIRY = 3.0  # uvicorn closes keep-alive connections idle for 5 s; drop ours before


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection as a bare asyncio Protocol: one future per request,
    the answer parsed from the buffer in `data_received` (no stream reader layers)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self.closed = False
        self.idle_since = time.monotonic()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiter is not None and not self.waiter.done():
            try:
                answer = self._parse()
            except ValueError as exc:
                self.waiter.set_exception(exc)
                return
            if answer is not None:
                self.waiter.set_result(answer)

    def _parse(self) -> tuple[int, bytes, bool] | None:
        buf = self.buf
        end = buf.find(b"\r\n\r\n")
        if end < 0:
            return None
        head = bytes(buf[: end + 4])
        lower = head.lower()
        status = int(head[9:12])
        keep = b"\r\nconnection: close" not in lower
        at = lower.find(b"\r\ncontent-length:")
        if at >= 0:
            total = end + 4 + int(lower[at + 17 : lower.find(b"\r\n", at + 2)])
            if len(buf) < total:
                return None
            body = bytes(buf[end + 4 : total])
            del buf[:total]
            return status, body, keep
        if b"\r\ntransfer-encoding: chunked" in lower:
            pos, parts = end + 4, []
            while True:
                line_end = buf.find(b"\r\n", pos)
                if line_end < 0:
                    return None
                size = int(bytes(buf[pos:line_end]).split(b";")[0], 16)
                if len(buf) < line_end + 2 + size + 2:
                    return None
                parts.append(bytes(buf[line_end + 2 : line_end + 2 + size]))
                pos = line_end + 2 + size + 2
                if size == 0:
                    del buf[:pos]
                    return status, b"".join(parts), keep
        del buf[: end + 4]
        return status, b"", keep

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionResetError("the server closed the connection"))

    async def request(self, raw: bytes) -> tuple[int, bytes, bool]:
        """(status, body, server keeps the connection open)."""
        if self.closed or self.transport is None:
            raise ConnectionResetError("connection closed")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(raw)
        try:
            return await self.waiter
        finally:
            self.waiter = None

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Pool:
    """Keep-alive connections; a request waits for one only when `limit` are all busy (its
    latency still counts from its scheduled time)."""

    def __init__(self, port: int, limit: int) -> None:
        self.port, self.limit = port, limit
        self.idle: deque[Connection] = deque()
        self.open = 0
        self.opened = 0
        self.waiters: deque[asyncio.Future[Connection | None]] = deque()

    async def acquire(self) -> Connection:
        now = time.monotonic()
        while self.idle:
            conn = self.idle.pop()  # the most recently used: warm, least likely to have expired
            if now - conn.idle_since < IDLE_EXPIRY and not conn.closed:
                return conn
            self.discard(conn)
        if self.open < self.limit:
            self.open += 1
            self.opened += 1
            try:
                _, conn = await asyncio.get_running_loop().create_connection(Connection, HOST, self.port)
            except BaseException:
                self.open -= 1
                raise
            return conn
        waiter: asyncio.Future[Connection | None] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        conn = await waiter
        return conn if conn is not None else await self.acquire()

    def release(self, conn: Connection) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        conn.idle_since = time.monotonic()
        self.idle.append(conn)

    def discard(self, conn: Connection) -> None:
        conn.close()
        self.open -= 1
        while self.waiters:  # a slot is free: let a waiter open a new connection
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return


def build(head: str, body: str, key: str) -> bytes:
    payload = body.replace("@KEY@", key).encode()
    return (head.replace("@KEY@", key) + f"Content-Length: {len(payload)}\r\n\r\n").encode() + payload


class Recorder:
    def __init__(self, window: tuple[float, float]) -> None:
        self.window = window
        self.latencies: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.samples: dict[str, str] = {}
        self.scheduled: dict[str, int] = defaultdict(int)
        self.lags: list[float] = []

    def counts(self, scheduled: float) -> bool:
        return self.window[0] <= scheduled < self.window[1]

    def ok(self, name: str, counted: bool, latency: float) -> None:
        if counted:
            self.latencies[name].append(round(latency * 1000, 3))

    def error(self, name: str, counted: bool, sample: str) -> None:
        if counted:
            self.errors[name] += 1
            self.samples.setdefault(name, sample[:200])


async def generate(spec: dict[str, Any]) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    start = float(spec["start"])
    window = (start + spec["warmup"], start + spec["warmup"] + spec["duration"])
    end = window[1]
    rec = Recorder(window)
    pool = Pool(int(spec["port"]), int(spec.get("max_connections", 256)))
    prefix = spec["prefix"]
    timeout = float(spec.get("grace", 10.0))  # a phone gives up after this long, so do we
    serial = 0
    pending: set[asyncio.Task[None]] = set()
    mono = time.monotonic

    def key() -> str:
        nonlocal serial
        serial += 1
        return f"{prefix}{serial}"

    async def exchange(name: str, ok: list[int], raw: bytes, scheduled: float, counted: bool,
                       conn: Connection | None = None) -> tuple[int, bytes, Connection | None]:
        """One request, its latency from `scheduled`, recorded when `counted` (it belongs to the
        measured window); answers the connection back (or None when it broke)."""
        if conn is None:
            conn = await pool.acquire()
        try:
            status, body, keep = await conn.request(raw)
        except (OSError, ValueError) as exc:
            pool.discard(conn)
            rec.error(name, counted, f"socket: {exc!r}")
            return 0, b"", None
        latency = mono() - scheduled
        if status in ok and latency > timeout:
            rec.error(name, counted, f"answered {status} after {latency:.1f}s: later than the {timeout:g}s timeout")
        elif status in ok:
            rec.ok(name, counted, latency)
        else:
            rec.error(name, counted, f"{status} {body[:160].decode(errors='replace')}")
        if not keep:
            pool.discard(conn)
            return status, body, None
        return status, body, conn

    async def fire(op: dict[str, Any], raw: bytes, scheduled: float) -> None:
        name = op["name"]
        counted = rec.counts(scheduled)
        rec.scheduled[name] += counted
        try:
            status, body, conn = await exchange(name, op["ok"], raw, scheduled, counted)
        except asyncio.CancelledError:
            rec.error(name, counted, "no answer by the end of the grace period")
            raise
        if op["kind"] == "claim" and conn is not None and status == 200:
            fhead, fbody = op["fulfil"]
            try:
                orders = json.loads(body)["items"]
            except (ValueError, KeyError):
                orders = []
            for order in orders:
                if conn is None:
                    break
                sub = fhead.replace("@ID@", order["id"])
                raw_f = build(sub, fbody.replace("@ID@", order["id"]).replace("@LEASE@", order["lease_id"]), key())
                rec.scheduled[name + " -> fulfil"] += counted
                _, _, conn = await exchange(name + " -> fulfil", op["fulfil_ok"], raw_f, mono(), counted, conn)
        if conn is not None:
            pool.release(conn)

    async def schedule(op: dict[str, Any]) -> None:
        rate = float(op["rate"])
        if rate <= 0:
            return
        interval = 1.0 / rate
        requests = op["requests"]
        t = start + float(op.get("phase", 0.0))
        n = int(op.get("offset", 0))
        while t < end:
            now = mono()
            if t > now:
                await asyncio.sleep(t - now)
                now = mono()
            while t <= now and t < end:  # behind (a slow tick): send every request now due
                head, body = requests[n % len(requests)]
                n += 1
                if rec.counts(t):
                    rec.lags.append(now - t)
                task = loop.create_task(fire(op, build(head, body, key()), t))
                pending.add(task)
                task.add_done_callback(pending.discard)
                t += interval

    # Warm the pool before t=0 so the first second is not a connect storm.
    total_rate = sum(float(op["rate"]) for op in spec["ops"])
    warm = min(pool.limit, max(2, int(total_rate * 0.01) + 2))
    conns = await asyncio.gather(*[pool.acquire() for _ in range(warm)], return_exceptions=True)
    for conn in conns:
        if isinstance(conn, Connection):
            pool.release(conn)
    if mono() < start:
        await asyncio.sleep(start - mono())
    cpu0 = own_cpu()
    await asyncio.gather(*[schedule(op) for op in spec["ops"]])
    cpu_end = own_cpu()
    # Answers still in flight get `grace` seconds; what has not answered by then is an error.
    if pending:
        await asyncio.wait(set(pending), timeout=float(spec.get("grace", 10.0)))
    late = 0
    for task in list(pending):
        task.cancel()
        late += 1
    cpu1 = own_cpu()
    lags = sorted(rec.lags)
    return {"latencies": rec.latencies, "errors": rec.errors, "samples": rec.samples, "scheduled": rec.scheduled,
            "unanswered": late,
            "cpu_seconds": cpu_end - cpu0, "cpu_seconds_with_grace": cpu1 - cpu0,
            "send_lag_p50_ms": lags[len(lags) // 2] * 1000 if lags else 0.0,
            "send_lag_p99_ms": lags[min(len(lags) - 1, int(len(lags) * 0.99))] * 1000 if lags else 0.0,
            "connections_opened": pool.opened}


# --- the parent's side: start the processes, merge their answers --------------------------


def request_head(method: str, path: str, port: int, headers: dict[str, str] | None = None) -> str:
    """A request's head up to (not including) Content-Length, which `build` adds."""
    lines = [f"{method} {path} HTTP/1.1", f"Host: {HOST}:{port}",
             *(f"{k}: {v}" for k, v in (headers or {}).items())]
    return "\r\n".join(lines) + "\r\n"


@dataclass
class Op:
    name: str
    rate: float  # requests per second, all generator processes together
    requests: list[tuple[str, str]]  # (head, body) variants, round robin
    ok: tuple[int, ...] = (200,)
    target_ms: float = 100.0
    kind: str = "plain"
    fulfil: tuple[str, str] | None = None
    fulfil_ok: tuple[int, ...] = (200,)


@dataclass
class OpResult:
    name: str
    offered: float  # scheduled per second
    achieved: float  # answered as expected per second
    p50: float | None
    p99: float | None
    errors: int
    sample: str
    target_ms: float

    @property
    def met(self) -> bool:
        return self.errors == 0 and self.p99 is not None and self.p99 <= self.target_ms


@dataclass
class RunResult:
    ops: list[OpResult]
    seconds: float
    generator_cores: float
    cpu: dict[str, float]  # cores of each named group of processes over the measured window
    machine_busy: float
    send_lag_p99_ms: float
    connections: int
    unanswered: int

    def op(self, name: str) -> OpResult | None:
        return next((o for o in self.ops if o.name == name), None)

    @property
    def all_met(self) -> bool:
        return all(o.met for o in self.ops)

    @property
    def total_rate(self) -> float:
        return sum(o.achieved for o in self.ops)


def ms(value: float | None) -> str:
    """A latency for the tables: '-' without samples, 'error' when it falls among the errors."""
    if value is None:
        return "-"
    return "error" if value == math.inf else f"{value:.1f}"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def run_open_loop(port: int, ops: list[Op], *, processes: int, warmup: float, duration: float, folder: Path,
                  pids: dict[str, list[int]] | None = None, grace: float = 10.0, max_connections: int = 256,
                  tag: str = "", startup: float = 2.0) -> RunResult:
    """Runs `ops` at their rates from `processes` generator processes; measures the CPU of
    `pids` (named groups, e.g. API, Valkey) over the measured window."""
    from bench.wallet import Processes, cpu_seconds, machine_ticks

    procs = Processes()
    folder.mkdir(parents=True, exist_ok=True)
    start = time.monotonic() + startup
    run_tag = tag or secrets.token_hex(3)
    outs = []
    try:
        for i in range(processes):
            spec_ops = []
            for op in ops:
                rate = op.rate / processes
                if rate <= 0:
                    continue
                spec_ops.append({
                    "name": op.name, "rate": rate, "ok": list(op.ok), "kind": op.kind,
                    # the processes interleave; each operation starts at its own point of the second
                    "phase": (i / processes + random.random()) / op.rate,
                    "offset": i * max(1, len(op.requests) // processes), "requests": op.requests,
                    "fulfil": op.fulfil, "fulfil_ok": list(op.fulfil_ok)})
            spec = {"port": port, "start": start, "warmup": warmup, "duration": duration, "grace": grace,
                    "max_connections": max_connections, "prefix": f"{run_tag}-{i}-", "ops": spec_ops}
            path = folder / f"openloop-{run_tag}-{i}.json"
            path.write_text(json.dumps(spec))
            out = open(folder / f"openloop-{run_tag}-{i}.out", "w+b")
            outs.append(out)
            procs.start(f"openloop-{i}", [sys.executable, str(Path(__file__).resolve()), str(path)],
                        stdout=out, stderr=subprocess.STDOUT)
        # CPU of the server over the measured window only.
        groups = pids or {}
        time.sleep(max(0.0, start + warmup - time.monotonic()))
        cpu0 = {name: sum(cpu_seconds(p) for p in members) for name, members in groups.items()}
        ticks0, t0 = machine_ticks(), time.monotonic()
        time.sleep(max(0.0, start + warmup + duration - time.monotonic()))
        cpu1 = {name: sum(cpu_seconds(p) for p in members) for name, members in groups.items()}
        ticks1, wall = machine_ticks(), time.monotonic() - t0
        for _, process in list(procs.items):
            process.wait(timeout=grace + 60)
    finally:
        procs.stop_all()
    results = []
    for out in outs:
        out.seek(0)
        text = out.read().decode(errors="replace")
        out.close()
        line = next((x for x in text.splitlines() if x.startswith("OPENLOOP_RESULT ")), None)
        if line is None:
            raise RuntimeError("a generator process gave no result:\n" + text[-3000:])
        results.append(json.loads(line.split(" ", 1)[1]))
    span = max(1, ticks1[1] - ticks0[1])
    names = [op.name for op in ops] + sorted({n for r in results for n in r["scheduled"]} - {op.name for op in ops})
    targets = {op.name: op.target_ms for op in ops}
    merged = []
    for name in names:
        lat = [x for r in results for x in r["latencies"].get(name, [])]
        errors = sum(r["errors"].get(name, 0) for r in results)
        scheduled = sum(r["scheduled"].get(name, 0) for r in results)
        if not scheduled and not lat and not errors:
            continue
        sample = next((r["samples"][name] for r in results if name in r["samples"]), "")
        target = targets.get(name, targets.get(name.split(" -> ")[0], 100.0))
        # Percentiles over every request: an error (no answer in time, a wrong status) counts as
        # never answered, so a timed-out majority cannot leave a flattering p99 of the few served.
        every = lat + [math.inf] * errors
        merged.append(OpResult(name, scheduled / duration, len(lat) / duration,
                               percentile(every, 50) if every else None, percentile(every, 99) if every else None,
                               errors, sample, target))
    return RunResult(
        ops=merged, seconds=duration, generator_cores=sum(r["cpu_seconds"] for r in results) / (warmup + duration),
        cpu={name: (cpu1[name] - cpu0[name]) / wall for name in cpu0},
        machine_busy=(ticks1[0] - ticks0[0]) / span * (os.cpu_count() or 1),
        send_lag_p99_ms=max(r["send_lag_p99_ms"] for r in results),
        connections=sum(r["connections_opened"] for r in results), unanswered=sum(r["unanswered"] for r in results))


def table(result: RunResult, baseline_p99: float | None = None) -> list[str]:
    """Per operation: offered and achieved rate, p50/p99 (over every request: 'error' when the
    percentile falls among requests that failed or never answered), errors, target, verdict."""
    head = (f"{'operation':<46}{'offered/s':>10}{'achieved/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'errors':>7}"
            f"{'target':>9}" + (f"{'p99/base':>9}" if baseline_p99 else "") + "  verdict")
    lines = [head]
    for o in result.ops:
        p50, p99 = ms(o.p50), ms(o.p99)
        ratio = ((f"{o.p99 / baseline_p99:9.1f}" if o.p99 not in (None, math.inf) else f"{'-':>9}")
                 if baseline_p99 else "")
        lines.append(f"{o.name:<46}{o.offered:10.1f}{o.achieved:11.1f}{p50:>9}{p99:>9}{o.errors:7d}"
                     f"{o.target_ms:>7.0f}ms{ratio}  {'MET' if o.met else 'MISSED'}")
    return lines


def calibrate(argv: list[str]) -> int:
    """The generator against the cheapest server there is (bench/bare_app.py's GET, uvicorn, one
    worker) at rising rates: its CPU per request against that server's, and how late it sends.
    If it costs less than the bare endpoint, it costs less than any real endpoint of ours."""
    import argparse
    import shutil
    import tempfile

    import httpx

    root = Path(__file__).resolve().parent.parent
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    from bench.wallet import Processes, free_port, uvicorn_argv, wait_http

    parser = argparse.ArgumentParser(prog="bench/openloop.py --calibrate", description=calibrate.__doc__)
    parser.add_argument("--rates", type=float, nargs="+", default=[250, 500, 1000, 2000])
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args(argv)
    procs = Processes()
    folder = Path(tempfile.mkdtemp(prefix="rw-openloop-"))
    try:
        port = free_port()
        bare = procs.start("bare", uvicorn_argv("bench.bare_app:app_factory", port), cwd=root,
                           stdout=subprocess.DEVNULL, stderr=open(folder / "bare.log", "wb"))
        wait_http(f"http://{HOST}:{port}", bare, folder / "bare.log",
                  lambda u: httpx.get(u + "/v1/me/wallet", timeout=2).status_code == 200)
        print(f"open-loop generator ({args.processes} processes) against bench/bare_app.py GET /v1/me/wallet "
              f"(uvicorn, 1 worker); {args.duration:g}s per rate; {os.cpu_count()} CPUs, load average "
              f"{os.getloadavg()[0]:.2f}")
        print(f"  {'offered/s':>10}{'achieved/s':>11}{'p50 ms':>8}{'p99 ms':>8}{'errors':>7}{'send lag p99':>13}"
              f"{'server cores':>13}{'generator':>10}{'gen/server':>11}")
        for rate in args.rates:
            ops = [Op("GET bare", rate, [(request_head("GET", "/v1/me/wallet", port), "")])]
            r = run_open_loop(port, ops, processes=args.processes, warmup=args.warmup, duration=args.duration,
                              folder=folder, pids={"bare": [bare.pid]}, startup=1.0)
            o = r.ops[0]
            server = r.cpu["bare"]
            print(f"  {rate:10.0f}{o.achieved:11.0f}{o.p50 or 0:8.1f}{o.p99 or 0:8.1f}{o.errors:7d}"
                  f"{r.send_lag_p99_ms:10.1f} ms{server:13.2f}{r.generator_cores:10.2f}"
                  f"{r.generator_cores / server if server else float('inf'):11.2f}", flush=True)
    finally:
        procs.stop_all()
        shutil.rmtree(folder, ignore_errors=True)
    return 0


def main(path: str) -> None:
    spec = json.loads(Path(path).read_text())
    with contextlib.suppress(ImportError):
        import uvloop

        uvloop.install()
    result = asyncio.run(generate(spec))
    print("OPENLOOP_RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--calibrate":
        sys.exit(calibrate(sys.argv[2:]))
    main(sys.argv[1])
