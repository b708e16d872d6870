"""Spin-to-win throughput over HTTP, in one run on one machine, against the same bare
Litestar baseline as bench/wallet.py.

`POST /v1/me/campaigns/{id}/spins` (one uvicorn worker, embedded Valkey with AOF and fsync
always, SQLite) with 64 concurrent keep-alive clients. Every request has its own
Idempotency-Key, and the requests go round robin over many participants (each with its own
bearer token), so concurrent spins rarely share a seed pair's nonce (a spin whose nonce
moved under it computes its words again). The wheel: cost 10 points; 100 points (30),
a free spin (10), nothing (60); prizes paid from the program's budget.
The baseline is bench/bare_app.py served the same way, loaded with the same generator in
the same run, alternated with the spin runs. Target: spins >= 0.4 x bare. Between them runs
the floor of a design of this shape (bench/floor_app.py, served the same way, the same
requests): each request one coalesced FCALL of the least Lua making a spin's writes and
nothing else. Issue #13 measured that floor at 0.37-0.46 x bare; the script prints the
floor's ratio to bare and the spins' ratio to the floor, which says how much of the gap to
the target a spin's own work (authentication, the gate, the draw, the projection in the
worker) is, and how much the machine's.

Then (unless --no-profile):
- one extra, uncounted spin run with py-spy attached to the API (installed into the venv
  with `.venv/bin/pip install py-spy` if missing), summarised by part of the request;
- Valkey's INFO commandstats across that run: commands per spin, by command;
- in a separate process, the app in-process (Litestar's test client, no projector nor
  background tasks) makes --count spins sequentially, counting Redis round trips (sends)
  and SQL statements (aiosqlite executes) per spin.

Optionally (--sweepstakes) runs bench/sweepstakes.py (close + draw) afterwards.

    .venv/bin/python bench/games.py [--duration 10] [--warmup 2] [--rounds 2] [--participants 256]
                                    [--generator auto|wrk|python] [--no-profile] [--count 200] [--sweepstakes]

Load generation, processes, CPU windows and the py-spy summary come from bench/wallet.py.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import secrets
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from api.http_protocol import ONE_WRITE  # noqa: E402
from bench.wallet import (  # noqa: E402
    BARE_ONE_WRITE_HELP, CONNECTIONS, HOST, WRK_SCRIPT, CpuWindow, LoadResult, Processes, Target, bench_env, children, cpu_seconds, described_generator,
    bare_protocol, drain_journal, fmt_ms, free_port, lua_string, on_a_fresh_valkey, profile_summary, run_python_load, run_wrk, settle_balance, uvicorn_argv, wait_http,
)

TARGET_RATIO = 0.4
COST = 10
WHEEL = {"name": "Bench wheel", "cost_points": COST, "segments": [
    {"label": "100 points", "weight": 30, "prize": {"type": "points", "points": 100}},
    {"label": "Free spin", "weight": 10, "prize": {"type": "free_spin"}},
    {"label": "Try again", "weight": 60, "prize": {"type": "nothing"}},
]}

# The wallet bench's script, with request() going round robin over one head per participant.
# HEAD/TAIL/PREFIX are filled in by bench/wallet.run_wrk (first occurrence of each).
_ROUND_ROBIN = """
heads = HEADS
function request()
  counter = counter + 1
  local h = heads[((counter * NTHREADS + tid) % #heads) + 1]
  return h .. prefix .. "-" .. tid .. "-" .. counter .. tail
end
"""
_SINGLE = """
function request()
  counter = counter + 1
  return head .. prefix .. "-" .. tid .. "-" .. counter .. tail
end
"""

SPIN_PROFILE_PARTS = [
    ("request handling, all (uvicorn run_asgi)", "RequestResponseCycle.run_asgi"),
    ("  the lean path (api/lean.py)", "lean_routes.<locals>.lean"),
    ("  the gate's authentication from memory", "Authenticator.resolve"),
    ("  the access log", "log_access (api/gate.py"),
    ("  route handler: spin_for (api/routes/spins.py)", "spin_for (api/routes/spins.py"),
    ("    get_program (kept in memory)", "get_program (programs/programs.py"),
    ("    draw_spin (cached words + FCALL rw_spin)", "draw_spin (games/spins.py"),
    ("      spin_words (SHA-256 stream)", "spin_words"),
    ("      the call, queued for the turn's write", "FunctionStore.fcall"),
    ("    _complete (an item prize's order only)", "_complete (games/spins.py"),
    ("  the answer's sends, through each layer", "noting_send (api/lean.py"),
    ("the turn's answers written (api/http_protocol.py)", "HeldWrites.flush"),
    ("the turn's Redis calls written (kernel/coalesce.py)", "Coalescer._flush"),
    ("requests parsed (uvicorn data_received)", "HttpToolsProtocol.data_received"),
    ("piccolo query building/running, anywhere", "(piccolo/"),
    ("redis-py client code, anywhere", "(redis/"),
    ("journal projector in the API process", "JournalProjector.run"),
    ("background tasks", "(api/background.py"),
]


APP_DIRS = ("(api/", "(games/", "(wallet/", "(programs/", "(catalog/", "(fulfillment/")


def self_time(raw: Path, top: int = 12) -> list[str]:
    """Main-thread samples by their innermost frame in the app's own code (else the innermost
    frame): where the time is spent, as opposed to the nested parts above. 'Runner.run' alone
    is time in the event loop itself (uvloop: polling, socket I/O, wake-ups from threads)."""
    leaf: Counter[str] = Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit() or "MainThread" not in stack.split(";", 1)[0]:
            continue
        frames = stack.split(";")
        mine = [f for f in frames if any(d in f for d in APP_DIRS)]
        leaf[(mine[-1] if mine else frames[-1])[:100]] += int(count)
        total += int(count)
    return [f"    {100 * n / total:5.1f}%  {name}" for name, n in leaf.most_common(top)] if total else []


class SpinTarget(Target):
    """The spin endpoint: one request head per participant (its bearer token), no body
    (`body`: the same body on every request, for other participant routes)."""

    def __init__(self, name: str, port: int, path: str, tokens: list[str], threads: int, body: bytes = b"") -> None:
        super().__init__(name, port, path, {"Authorization": f"Bearer {tokens[0]}"}, body)
        self.heads = [self.head.replace(tokens[0], token) for token in tokens]
        table = "{" + ",".join(lua_string(h) for h in self.heads) + "}"
        body = _ROUND_ROBIN.replace("NTHREADS", str(threads))
        script = WRK_SCRIPT.replace(_SINGLE, body)
        assert script != WRK_SCRIPT, "bench/wallet.py's WRK_SCRIPT changed: update bench/games.py"
        # run_wrk substitutes the first HEAD, TAIL and PREFIX: the assignments at the top, above this table.
        self.wrk_script = script.replace("heads = HEADS", "heads = " + table)


# --- counting round trips and statements in process ------------------------------------


def count_main(config_text: str) -> None:
    """A separate process with the API's environment: the app in-process, N sequential spins,
    Redis sends and SQL executes counted (no projector, no background tasks)."""
    config = json.loads(config_text)
    os.environ["RW_JOURNAL_CONSUMER"] = "false"
    os.environ["RW_BACKGROUND_TASKS"] = "false"
    import aiosqlite
    from litestar.testing import AsyncTestClient
    from redis.asyncio.connection import AbstractConnection

    from api.asgi import app_factory
    from kernel.redis_pipe import RedisPipe

    counts: Counter[str] = Counter()
    statements: Counter[str] = Counter()
    active = {"on": False}

    send = AbstractConnection.send_packed_command

    async def counted_send(self: Any, command: Any, check_health: bool = True) -> None:
        if active["on"]:
            counts["redis_round_trips"] += 1
            parts = command if isinstance(command, list) else [command]
            blob = b"".join(p if isinstance(p, (bytes, bytearray)) else bytes(p) for p in parts)
            counts["redis_commands"] += blob.count(b"\r\n*") + (1 if blob.startswith(b"*") else 0)
        return await send(self, command, check_health)

    AbstractConnection.send_packed_command = counted_send  # type: ignore[method-assign]
    # Function calls go out on the coalescer's own connection (kernel/redis_pipe.py): one
    # write per send, the batch's commands in it.
    pipe_send = RedisPipe.send

    def counted_pipe_send(self: Any, batch: list[Any]) -> None:
        if active["on"]:
            counts["redis_round_trips"] += 1
            counts["redis_commands"] += len(batch)
        return pipe_send(self, batch)

    RedisPipe.send = counted_pipe_send  # type: ignore[method-assign]
    execute = aiosqlite.Connection.execute
    commit = aiosqlite.Connection.commit

    def counted_execute(self: Any, sql: str, parameters: Any = None) -> Any:
        if active["on"]:
            counts["sql_statements"] += 1
            statements[" ".join(sql.split()[:4])[:60]] += 1
        return execute(self, sql, parameters)

    async def counted_commit(self: Any) -> None:
        if active["on"]:
            counts["sql_commits"] += 1
        return await commit(self)

    aiosqlite.Connection.execute = counted_execute  # type: ignore[method-assign]
    aiosqlite.Connection.commit = counted_commit  # type: ignore[method-assign]

    async def main() -> dict[str, Any]:
        app = app_factory()
        async with AsyncTestClient(app=app, base_url="http://rw.bench") as client:
            headers = {"Authorization": f"Bearer {config['token']}"}
            url = f"/v1/me/campaigns/{config['campaign_id']}/spins"
            for n in range(5):  # warm: pools, caches
                (await client.post(url, headers={**headers, "Idempotency-Key": f"cw-{n}"})).raise_for_status()
            n_spins = config["n"]
            statuses: Counter[int] = Counter()
            active["on"] = True
            started = time.perf_counter()
            for n in range(n_spins):
                answer = await client.post(url, headers={**headers, "Idempotency-Key": f"c-{config['run']}-{n}"})
                statuses[answer.status_code] += 1
            elapsed = time.perf_counter() - started
            active["on"] = False
        return {"n": n_spins, "statuses": dict(statuses), "ms_per_spin": elapsed / n_spins * 1000,
                "counts": dict(counts), "statements": dict(statements.most_common())}

    print("COUNT_RESULT " + json.dumps(asyncio.run(main())), flush=True)


# --- the run ---------------------------------------------------------------------------


def commandstats(client: Any) -> dict[str, tuple[int, int]]:
    """Calls and microseconds of Valkey's time by command."""
    return {k.removeprefix("cmdstat_"): (int(v["calls"]), int(v["usec"]))
            for k, v in client.info("commandstats").items()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per HTTP run")
    parser.add_argument("--warmup", type=float, default=2.0, help="warm-up seconds before each HTTP run")
    parser.add_argument("--rounds", type=int, default=2, help="bare/spin HTTP rounds, alternated")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--participants", type=int, default=256, help="participants the spins go round robin over")
    parser.add_argument("--generator", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--bare-one-write", action="store_true", help=BARE_ONE_WRITE_HELP)
    parser.add_argument("--profile-worker", action="store_true",
                        help="sample the worker (the journal projector) with py-spy in the last spin round")
    parser.add_argument("--drain", type=float, default=0.0, metavar="SECONDS",
                        help="also: the worker paused through a spin run this long, then its CPU to project "
                             "the backlog, per entry (the projector's own cost, the API not competing)")
    parser.add_argument("--no-profile", action="store_true", help="skip the py-spy run and the in-process count")
    parser.add_argument("--py-spy", metavar="PATH", default=None, help="py-spy binary (default: the venv's, "
                        "installed with pip if missing)")
    parser.add_argument("--count", type=int, default=200, help="sequential spins for the in-process count")
    parser.add_argument("--sweepstakes", action="store_true",
                        help="afterwards run bench/sweepstakes.py (close + draw of a large sweepstakes)")
    args = parser.parse_args()
    if not (1 <= args.duration <= 120 and 0 <= args.warmup <= 30 and 1 <= args.rounds <= 10
            and CONNECTIONS <= args.participants <= 5000 and 1 <= args.count <= 10_000):
        parser.error(f"out of range: duration 1..120, warmup 0..30, rounds 1..10, participants "
                     f"{CONNECTIONS}..5000, count 1..10000")

    code = on_a_fresh_valkey("rw-bench-games-", lambda procs, folder, valkey: run(args, procs, folder, valkey))
    if code == 130:
        return code
    if args.sweepstakes:
        print("\nbench/sweepstakes.py (close + draw):", flush=True)
        done = subprocess.run([sys.executable, str(ROOT / "bench" / "sweepstakes.py")], cwd=ROOT)
        code = code or done.returncode
    return code


def find_py_spy(explicit: str | None, notes: list[str]) -> str | None:
    if explicit:
        return explicit
    local = Path(sys.executable).parent / "py-spy"
    if local.exists():
        return str(local)
    if shutil.which("py-spy"):
        return shutil.which("py-spy")
    done = subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "py-spy"], capture_output=True,
                          timeout=300)
    if done.returncode == 0 and local.exists():
        notes.append("py-spy was missing: installed with `pip install py-spy` into the venv")
        return str(local)
    notes.append("py-spy unavailable: no sampling profile")
    return None


class Stack(NamedTuple):
    api: Any
    bare: Any
    api_port: int
    bare_port: int
    api_url: str
    bare_url: str
    bare_log: Path
    worker: Any


def process_tree(pid: int) -> list[int]:
    """`pid` and its descendants (the worker and its SQLite writer process)."""
    tree = [pid]
    for parent in tree:  # grows as it goes: each one's children are looked at in turn
        tree.extend(children(parent))
    return tree


def start_stack(procs: Processes, folder: Path, valkey_url: str, operator_key: str,
                bare_http: str = "httptools") -> Stack:
    """The API (uvicorn, one worker, app defaults) and the bare endpoint side by side, with a
    `reward-wallet worker` beside the API as `serve` runs it; answers once the API is ready."""
    import httpx

    env = bench_env(folder, valkey_url, operator_key)
    cli = str(Path(sys.executable).parent / "reward-wallet")
    subprocess.run([cli, "migrate"], env=env, check=True, capture_output=True, timeout=120, cwd=ROOT)
    api_port, bare_port = free_port(), free_port()
    api_log, bare_log = folder / "api.log", folder / "bare.log"
    api = procs.start("api", uvicorn_argv("api.asgi:app_factory", api_port, ONE_WRITE), env=env, cwd=ROOT,
                      stdout=subprocess.DEVNULL, stderr=open(api_log, "wb"))
    bare = procs.start("bare", uvicorn_argv("bench.bare_app:app_factory", bare_port, bare_http), env=env, cwd=ROOT,
                       stdout=subprocess.DEVNULL, stderr=open(bare_log, "wb"))
    # As `serve` runs them: the journal projector and the background tasks in a process of their own.
    worker = procs.start("worker", [cli, "worker"], env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                         stderr=open(folder / "worker.log", "wb"))
    api_url, bare_url = f"http://{HOST}:{api_port}", f"http://{HOST}:{bare_port}"
    wait_http(api_url, api, api_log, lambda u: httpx.get(u + "/ready", timeout=2).status_code == 200)
    return Stack(api, bare, api_port, bare_port, api_url, bare_url, bare_log, worker)


def measure_drain(stack: Stack, sync_redis: Any, stream: str, spin_run: Callable[[], LoadResult],
                  procs: Processes, folder: Path, spy_seconds: float) -> None:
    """The projector's CPU per journal entry, alone: the worker stopped (SIGSTOP) through a spin
    run, then resumed, its process tree's CPU until the journal is empty. Its batches are then
    full pages, as under a backlog. With `spy_seconds`, py-spy samples the worker's first
    seconds of the drain."""
    from bench.redemptions import finish_spy, print_worker_profile, start_spy

    tree = process_tree(stack.worker.pid)
    for pid in tree:
        os.kill(pid, signal.SIGSTOP)
    try:
        made = spin_run()
    finally:
        for pid in tree:
            os.kill(pid, signal.SIGCONT)
    cpu0 = sum(cpu_seconds(pid) for pid in tree)
    spy = start_spy(procs, folder, stack.worker.pid, spy_seconds) if spy_seconds else None
    waiting, seconds = drain_journal(sync_redis, stream)
    cpu = sum(cpu_seconds(pid) for pid in tree) - cpu0
    if spy is not None:
        print_worker_profile(finish_spy(procs, spy), "the drain")
    print(f"\n    drain: {waiting} entries waiting after a {made.rate:.0f} spins/s run with the worker stopped; "
          f"projected in {seconds:.1f} s, {waiting / seconds:.0f} entries/s, worker CPU {cpu / max(1, waiting) * 1e6:.0f} "
          f"us an entry", flush=True)
    # What a spin costs the other processes with no projector beside them: against the same
    # figures of a run with the worker running, what contention for the 2 cores adds.
    cores = {"server": made.cpu.get("server", 0.0), "valkey": made.cpu.get("valkey", 0.0),
             "generator": made.generator_cpu}
    each = {name: used / max(made.rate, 1.0) * 1e6 for name, used in cores.items()}
    print(f"    that run's CPU a spin, the worker stopped: API {each['server']:.0f} us, Valkey {each['valkey']:.0f}, "
          f"the load generator {each['generator']:.0f}; the machine {made.cpu.get('machine_busy', 0.0):.2f} of "
          f"{os.cpu_count()} cores busy", flush=True)


def run(args: argparse.Namespace, procs: Processes, folder: Path, valkey: Any) -> int:
    import httpx
    import redis

    from wallet import keys
    from games import keys as game_keys

    started_at = time.monotonic()
    notes: list[str] = []
    described = described_generator(
        args, notes, "Lua script (unique key per request; spins round robin over the tokens)",
        "Python raw-socket asyncio generator from bench/wallet.py (one participant per connection)")
    if described is None:
        return 2
    wrk, generator_desc = described
    generator = "wrk" if wrk else "python"
    py_spy = None if args.no_profile else find_py_spy(args.py_spy, notes)

    sync_redis = redis.Redis.from_url(valkey.url)
    server_info = sync_redis.info("server")
    operator_key = "rwo_" + secrets.token_hex(16)
    stack = start_stack(procs, folder, valkey.url, operator_key, bare_protocol(args)[0])
    api, bare, api_port, bare_port = stack.api, stack.bare, stack.api_port, stack.bare_port
    api_url, bare_url, bare_log = stack.api_url, stack.bare_url, stack.bare_log

    # Program, wheel, participants with points and tokens: over HTTP, as a client would.
    http = httpx.Client(base_url=api_url, timeout=30)
    created = http.post("/v1/programs", json={"name": "bench-games"},
                        headers={"Authorization": f"Bearer {operator_key}"})
    created.raise_for_status()
    program_id, admin_key = created.json()["program_id"], created.json()["admin_key"]
    admin = {"Authorization": f"Bearer {admin_key}"}
    campaign = http.post("/v1/campaigns/spin", json=WHEEL, headers=admin)
    campaign.raise_for_status()
    campaign_id = campaign.json()["id"]
    http.post(f"/v1/campaigns/{campaign_id}/launch", headers=admin).raise_for_status()
    setup_started = time.monotonic()
    participants: list[str] = []
    tokens: list[str] = []
    # Far more points than any participant could spend: a spin never fails for the balance.
    points_each = 1_000_000
    for i in range(args.participants + 1):  # the last one is the in-process counter's
        person = http.post("/v1/participants", json={"external_id": f"bench-{i}", "display_name": f"Bench {i}"},
                           headers=admin)
        person.raise_for_status()
        pid = person.json()["id"]
        http.post("/v1/points/grants", headers={**admin, "Idempotency-Key": f"bench-grant-{i}"},
                  json={"participant_id": pid, "points": points_each, "reason": "bench funding"}).raise_for_status()
        token = http.post(f"/v1/participants/{pid}/tokens", headers=admin)
        token.raise_for_status()
        participants.append(pid)
        tokens.append(token.json()["access_token"])
    participants.pop()  # the counter's participant spins on their own token below
    counter_token = tokens.pop()
    setup_seconds = time.monotonic() - setup_started

    spin_path = f"/v1/me/campaigns/{campaign_id}/spins"
    probe = http.post(spin_path, headers={"Authorization": f"Bearer {tokens[0]}", "Idempotency-Key": "probe"})
    if probe.status_code != 201:
        raise RuntimeError(f"a first spin failed: {probe.status_code} {probe.text}")
    spin_target = SpinTarget("spins", api_port, spin_path, tokens, args.threads)
    # The wallet bench's baseline, byte for byte: its deduction body on the bare endpoint.
    bare_body = json.dumps({"participant_id": participants[0], "points": 1, "reason": "bench"},
                           separators=(",", ":")).encode()
    bare_target = Target("bare", bare_port, "/v1/points/deductions", admin, bare_body)
    wait_http(bare_url, bare, bare_log, lambda u: httpx.post(
        u + "/v1/points/deductions", content=bare_body, headers={"Content-Type": "application/json"},
        timeout=2).status_code == 201)

    # The floor of the spin's shape (bench/floor_app.py): one coalesced FCALL of the least Lua
    # doing a spin's writes, nothing else; the same requests as the spins.
    floor_port, floor_log = free_port(), folder / "floor.log"
    floor = procs.start("floor", uvicorn_argv("bench.floor_app:app_factory", floor_port), cwd=ROOT, env={
        **os.environ, "FLOOR_REDIS_URL": valkey.url, "FLOOR_COALESCE": "1"}, stdout=subprocess.DEVNULL,
        stderr=open(floor_log, "wb"))
    wait_http(f"http://{HOST}:{floor_port}", floor, floor_log, lambda u: httpx.post(
        u + spin_path, headers={"Idempotency-Key": "probe", "Authorization": "Bearer x"},
        timeout=2).status_code == 201)
    floor_target = SpinTarget("floor", floor_port, spin_path, tokens, args.threads)

    stream = keys.journal(program_id)
    run_id = secrets.token_hex(4)
    db = folder / "reward-wallet.sqlite3"

    def sql_spins() -> int:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30)) as conn:
            return int(conn.execute("SELECT COUNT(*) FROM spins WHERE campaign_id = ?", (campaign_id,)).fetchone()[0])

    def nonces() -> int:
        pipe = sync_redis.pipeline(transaction=False)
        for pid in participants:
            pipe.hget(game_keys.seed_pair(program_id, pid), "nonce")
        return sum(int(v or 0) for v in pipe.execute())

    def load(target: Target, prefix: str, seconds: float, server_pid: int) -> LoadResult:
        # The worker's CPU with its SQLite writer process's (where its writes run).
        workers = {f"worker{n}": pid for n, pid in enumerate(process_tree(stack.worker.pid))}
        window = CpuWindow({"server": server_pid, "valkey": valkey.process.pid, **workers})
        if generator == "wrk":
            return run_wrk(wrk, target, prefix, seconds, args.threads, folder, procs, window)  # type: ignore[arg-type]
        return run_python_load(target, prefix, seconds, procs, window)

    print("reward-wallet benchmark: spins over HTTP against the bare Litestar baseline", flush=True)
    print(f"  machine: {os.cpu_count()} CPUs ({platform.processor() or platform.machine()}), load average before "
          f"start {' '.join(f'{x:.2f}' for x in os.getloadavg())}; Python {platform.python_version()}; Valkey "
          f"{server_info.get('valkey_version') or server_info.get('redis_version')} (AOF, appendfsync always; "
          f"malloc {valkey.allocator})",
          flush=True)
    print("  NOTE: a shared, noisy machine: generator, API, Valkey and other processes share the cores; absolute "
          "numbers move\n        from run to run, the ratio from the same run is the meaningful part.", flush=True)
    for note in notes:
        print(f"  note: {note}", flush=True)
    print(f"  setup: {args.participants} participants ({points_each:,} points and a token each) in "
          f"{setup_seconds:.1f} s", flush=True)
    print(f"\n  HTTP, {CONNECTIONS} concurrent keep-alive connections, each request its own Idempotency-Key; "
          f"{args.warmup:g} s warm-up + {args.duration:g} s measured per run, {args.rounds} round(s), bare, the floor "
          "and spins alternated", flush=True)
    print(f"    generator: {generator_desc}", flush=True)
    print("    bare  = bench/bare_app.py (the wallet benchmark's baseline, same request bytes as there), served by "
          + bare_protocol(args)[1])
    print("    floor = bench/floor_app.py: the spin's requests, each one coalesced FCALL of the least Lua making a "
          "spin's writes\n            (idempotency key, HINCRBY, XADD, SET) and nothing else: no auth, gate, "
          "projection or log")
    print(f"    spins = POST /v1/me/campaigns/{{id}}/spins, participant bearer tokens round robin over "
          f"{args.participants} participants, no body\n            (uvicorn, 1 worker, app defaults; journal "
          "projector + background tasks in a `reward-wallet worker` beside it, as `serve` runs them; rate limits on "
          "with unreachable budgets)\n", flush=True)
    print(f"    {'run':<10}{'req/s':>9}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}{'non2xx':>8}{'sockerr':>8}"
          "   CPU in cores: server valkey worker generator machine", flush=True)

    def show(name: str, round_no: int | str, r: LoadResult) -> None:
        c = r.cpu
        worker = sum(v for k, v in c.items() if k.startswith("worker"))
        print(f"    {name + ' #' + str(round_no):<10}{r.rate:9.0f}{fmt_ms(r.latency['p50']):>9}"
              f"{fmt_ms(r.latency['p90']):>9}{fmt_ms(r.latency['p99']):>9}{fmt_ms(r.latency['max']):>9}"
              f"{r.non2xx:8d}{r.socket_errors:8d}  {c['server']:20.2f}{c['valkey']:7.2f}{worker:7.2f}"
              f"{r.generator_cpu:10.2f}{c['machine_busy']:8.2f}", flush=True)

    rows: list[tuple[str, LoadResult]] = []
    from bench.redemptions import finish_spy, print_worker_profile, start_spy

    worker_profile = None
    for round_no in range(1, args.rounds + 1):
        if args.warmup:
            load(bare_target, f"bw{round_no}-{run_id}", args.warmup, bare.pid)
        result = load(bare_target, f"b{round_no}-{run_id}", args.duration, bare.pid)
        rows.append(("bare", result))
        show("bare", round_no, result)
        if args.warmup:
            load(floor_target, f"fw{round_no}-{run_id}", args.warmup, floor.pid)
        result = load(floor_target, f"f{round_no}-{run_id}", args.duration, floor.pid)
        rows.append(("floor", result))
        show("floor", round_no, result)
        if args.warmup:
            load(spin_target, f"sw{round_no}-{run_id}", args.warmup, api.pid)
        settle_balance(nonces)  # what Redis did; the rows follow by projection
        drain_journal(sync_redis, stream)
        spy = start_spy(procs, folder, stack.worker.pid, args.duration) \
            if args.profile_worker and round_no == args.rounds else None
        result = load(spin_target, f"s{round_no}-{run_id}", args.duration, api.pid)
        if spy is not None:
            worker_profile = finish_spy(procs, spy)
        rows.append(("spins", result))
        show("spins", round_no, result)
        settle_balance(nonces)  # what Redis did; the rows follow by projection
        drain_journal(sync_redis, stream)

    if args.profile_worker:
        print_worker_profile(worker_profile, "the last spin round")
    if args.drain:
        measure_drain(stack, sync_redis, stream, lambda: load(spin_target, f"d-{run_id}", args.drain, api.pid), procs,
                      folder, args.drain / 2 if args.profile_worker else 0)
    bare_rates = [r.rate for n, r in rows if n == "bare"]
    spin_rows = [r for n, r in rows if n == "spins"]
    spin_rates = [r.rate for r in spin_rows]
    bare_mean, spin_mean = statistics.fmean(bare_rates), statistics.fmean(spin_rates)
    ratio = spin_mean / bare_mean
    p50 = statistics.fmean(r.latency["p50"] for r in spin_rows)
    p99 = max(r.latency["p99"] for r in spin_rows)
    ok = ratio >= TARGET_RATIO
    print(f"\n    bare  mean {bare_mean:8.0f} req/s")
    print(f"    spins mean {spin_mean:8.0f} spins/s   p50 {p50:.1f} ms (mean of rounds), p99 {p99:.1f} ms (worst round)")
    print(f"    spins / bare = {ratio:.2f}  (per round: "
          f"{', '.join(f'{s / b:.2f}' for s, b in zip(spin_rates, bare_rates))}; median "
          f"{statistics.median(s / b for s, b in zip(spin_rates, bare_rates)):.2f})   target >= {TARGET_RATIO:.2f}: "
          f"{'MET' if ok else 'MISSED'}", flush=True)
    floor_rates = [r.rate for n, r in rows if n == "floor"]
    print(f"    the floor (one Redis call, nothing else) / bare = {statistics.fmean(floor_rates) / bare_mean:.2f} "
          f"(per round: {', '.join(f'{f / b:.2f}' for f, b in zip(floor_rates, bare_rates))}); spins / the floor = "
          f"{spin_mean / statistics.fmean(floor_rates):.2f} (per round: "
          f"{', '.join(f'{s / f:.2f}' for s, f in zip(spin_rates, floor_rates))})", flush=True)

    # Checks: every spin answered 201; SQL has one row per spin the nonces counted.
    bad = sum(r.non2xx + r.n2xx_other + r.socket_errors for r in spin_rows)
    rows_sql, nonce_total = sql_spins(), nonces()
    checks_ok = bad == 0 and rows_sql == nonce_total
    print(f"    checks: non-201 answers / socket errors in measured spin runs: {bad}; spins in SQL {rows_sql} = sum "
          f"of the participants' nonces {nonce_total}: {'OK' if checks_ok else 'FAILED'}", flush=True)

    if py_spy:
        raw = Path(tempfile.gettempdir()) / f"rw-bench-games-py-spy-{run_id}.txt"
        spy_seconds = max(2, int(args.duration) - 2)
        spy_err = folder / "py-spy.err"
        stats0 = commandstats(sync_redis)
        spins0 = sql_spins()
        with open(spy_err, "wb") as err:
            spy = procs.start("py-spy", [py_spy, "record", "--pid", str(api.pid), "--duration", str(spy_seconds),
                                         "--rate", "200", "--format", "raw", "--threads", "--output", str(raw)],
                              stdout=subprocess.DEVNULL, stderr=err)
            time.sleep(0.5)
            profiled = load(spin_target, f"p-{run_id}", args.duration, api.pid)
            try:
                spy.wait(timeout=60)
            finally:
                procs.stop(spy)
        settle_balance(nonces)  # what Redis did; the rows follow by projection
        drain_journal(sync_redis, stream)
        made = sql_spins() - spins0
        stats1 = commandstats(sync_redis)
        print(f"\n    Profile (py-spy, {spy_seconds} s of an extra spin run at {profiled.rate:.0f} spins/s, server CPU "
              f"{profiled.cpu['server']:.2f} cores; share of the API main thread's samples; parts overlap):")
        if raw.exists():
            for line in profile_summary(raw, SPIN_PROFILE_PARTS):
                print(line)
            print("    Self time: main-thread samples by innermost app frame (innermost frame if none):")
            for line in self_time(raw):
                print(line)
            print(f"    raw stacks kept in {raw}")
        else:
            print("    py-spy wrote nothing: " + spy_err.read_text(errors="replace")[-500:])
        def delta(k: str, i: int) -> int:
            return stats1[k][i] - stats0.get(k, (0, 0))[i]

        per = {k: delta(k, 0) / made for k in stats1} if made else {}
        shown = sorted(((k, v) for k, v in per.items() if v >= 0.01), key=lambda kv: -kv[1])
        print(f"    Valkey commands per spin during that run ({made} spins, whole server incl. projector and "
              f"rate limiter; INFO commandstats, which counts the redis.call()s inside FCALL rw_spin too): "
              f"{sum(v for _, v in shown):.1f} in all")
        print("      " + ", ".join(f"{k} {v:.2f}" for k, v in shown))
        if made and "fcall" in stats1 and delta("fcall", 0):
            # FCALL's time includes the commands the function runs (counted again above).
            inner = sum(delta(k, 1) for k in stats1 if k != "fcall")
            print(f"    Valkey's time a spin: FCALL {delta('fcall', 1) / delta('fcall', 0):.0f} us a call (the "
                  f"functions' own commands included); {delta('fcall', 1) / made:.0f} us of FCALL and "
                  f"{inner / made:.0f} us of commands (inside and outside functions) a spin")

    if not args.no_profile:
        config = {"token": counter_token, "campaign_id": campaign_id, "n": args.count, "run": run_id}
        counter_env = {**bench_env(folder, valkey.url, operator_key), "RW_LOG_LEVEL": "warning"}
        # As a module from the root: run as a script, bench/ would come first on the path and
        # bench/wallet.py would stand in for the wallet package.
        done = subprocess.run([sys.executable, "-m", "bench.games", "_count", json.dumps(config)],
                              env=counter_env, cwd=ROOT, capture_output=True, text=True, timeout=600)
        line = next((x for x in done.stdout.splitlines() if x.startswith("COUNT_RESULT ")), None)
        if line is None:
            print("    in-process count failed:\n" + done.stderr[-3000:])
        else:
            res = json.loads(line.split(" ", 1)[1])
            c, n = res["counts"], res["n"]
            print(f"\n    In-process count ({n} sequential spins, one participant, Litestar test client, no projector "
                  f"or background tasks; answers {res['statuses']}; {res['ms_per_spin']:.2f} ms per spin):")
            print(f"      Redis round trips per spin {c.get('redis_round_trips', 0) / n:.2f} "
                  f"(commands {c.get('redis_commands', 0) / n:.2f}); SQL statements per spin "
                  f"{c.get('sql_statements', 0) / n:.2f}, commits {c.get('sql_commits', 0) / n:.2f}")
            for stmt, k in res["statements"].items():
                print(f"        {k / n:5.2f}  {stmt}")

    http.close()
    procs.stop(api)
    procs.stop(bare)
    print(f"\nSummary ({generator}; total {time.monotonic() - started_at:.0f} s): spins {spin_mean:.0f}/s, bare "
          f"{bare_mean:.0f} req/s, ratio {ratio:.2f} (target {TARGET_RATIO:.2f}) {'MET' if ok else 'MISSED'}; "
          f"spin p50 {p50:.1f} ms, p99 {p99:.1f} ms; checks {'OK' if checks_ok else 'FAILED'}")
    if not args.sweepstakes:
        print("  (sweepstakes close + draw: `.venv/bin/python bench/sweepstakes.py`, or add --sweepstakes)")
    return 0 if checks_ok else 1


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "_count":
        count_main(sys.argv[2])
    else:
        sys.exit(main())
