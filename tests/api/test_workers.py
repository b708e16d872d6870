"""`reward-wallet serve --workers 2`: two API processes and one worker process on one
embedded Valkey and one SQLite; metrics summed over both APIs; SIGTERM under load finishes
what was answered and then the worker leaves no journal entry unprojected, so the ledger
holds every answered grant before anything else runs, and `reward-wallet reconcile` exits 0.
The worker is the only journal consumer (the API processes run no projector), and a
`kill -9` of serve leaves neither the worker nor Valkey behind."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import OPERATOR_KEY, _SESSION_DIR, free_port
from tests.raw_http import segments_for_answers

OPERATOR = {"Authorization": f"Bearer {OPERATOR_KEY}"}
CLI = str(Path(sys.executable).parent / "reward-wallet")
WORKERS = 2
CONCURRENCY = 16


class Serve:
    """`reward-wallet serve` in its own process group, fully embedded in its own data dir."""

    def __init__(self, data_dir: Path, workers: int, *options: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {k: v for k, v in os.environ.items()
                    if k not in {"REDIS_URL", "DATABASE_URL", "STRIPE_API_KEY", "STRIPE_WEBHOOK_SECRET",
                                 "STRIPE_API_BASE", "PROMETHEUS_MULTIPROC_DIR", "RW_REDIS_CLUSTER"}}
        self.env["RW_DATA_DIR"] = str(data_dir)
        self.env.update(env or {})
        # Under _SESSION_DIR: tests/log_capture.py scans it for secrets at the end of the session.
        self.log = _SESSION_DIR / f"serve-{self.port}.log"
        self.process = subprocess.Popen(
            [CLI, "serve", "--port", str(self.port), "--workers", str(workers), *options],
            env=self.env, stdout=subprocess.DEVNULL, stderr=open(self.log, "wb"), start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(self.log.read_text())
            try:
                if httpx.get(self.url + "/ready", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("serve did not become ready:\n" + self.log.read_text())
            time.sleep(0.1)

    def worker_pids(self) -> list[int]:
        """The worker processes serve started (`python -m api worker`), by their command line."""
        return [pid for pid in children(self.process.pid) if command_line(pid)[-4:-2] == ["api", "worker"]]

    def sqlite_writer_pids(self) -> list[int]:
        """The SQLite writer processes (kernel/sqlite_writer.py) of serve and of its workers."""
        return [pid for parent in [self.process.pid, *children(self.process.pid)] for pid in children(parent)
                if command_line(pid)[1:3] == ["-m", "kernel.sqlite_writer"]]

    def kill(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


def children(parent: int) -> list[int]:
    """Live (not zombie) processes whose parent is `parent`, from /proc."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            state, ppid = stat.rsplit(")", 1)[1].split()[:2]
            if int(ppid) == parent and state != "Z":
                found.append(int(entry.name))
    return found


def command_line(pid: int) -> list[str]:
    try:
        return [part.decode() for part in Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0") if part]
    except OSError:
        return []


def alive(pid: int) -> bool:
    """Running, as opposed to gone or a zombie nobody reaped yet."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Serve]:
    server = Serve(tmp_path / "data", WORKERS)
    try:
        yield server
    finally:
        server.kill()


async def setup_program(http: httpx.AsyncClient, participants: int) -> tuple[str, dict[str, str], list[str]]:
    created = await http.post("/v1/programs", json={"name": "workers"}, headers=OPERATOR)
    assert created.status_code == 201, created.text
    program = created.json()
    admin = {"Authorization": f"Bearer {program['admin_key']}"}
    ids = []
    for n in range(participants):
        person = await http.post("/v1/participants", json={"external_id": f"w-{n}", "display_name": "W"},
                                 headers=admin)
        assert person.status_code == 201, person.text
        ids.append(person.json()["id"])
    return program["program_id"], admin, ids


async def one_grant(http: httpx.AsyncClient, admin: dict[str, str], participant_id: str, key: str) -> httpx.Response:
    return await http.post("/v1/points/grants", json={"participant_id": participant_id, "points": 7,
                                                      "reason": "load"},
                           headers={**admin, "Idempotency-Key": key})


def grant_total(metrics_text: str) -> float:
    total = 0.0
    for line in metrics_text.splitlines():
        if line.startswith("rw_wallet_operations_total{") and 'kind="grant"' in line and 'outcome="ok"' in line:
            total += float(line.rsplit(" ", 1)[1])
    return total


async def test_two_workers_share_stores_and_drain_the_journal_on_sigterm(serve: Serve):
    answered: dict[str, str] = {}  # transaction id -> participant id, for every 2xx grant
    refused: list[str] = []  # how requests that got no 2xx ended
    async with httpx.AsyncClient(base_url=serve.url, timeout=30,
                                 limits=httpx.Limits(max_connections=CONCURRENCY)) as http:
        program_id, admin, people = await setup_program(http, 20)

        # Phase 1: a settled load; any worker's /metrics reports both workers' operations.
        first = await asyncio.gather(*[one_grant(http, admin, people[n % 20], f"warm-{n}") for n in range(200)])
        assert all(r.status_code == 201 for r in first), [r.text for r in first if r.status_code != 201][:3]
        answered.update({r.json()["transaction_id"]: r.json()["participant_id"] for r in first})
        for _ in range(4):
            scraped = await http.get("/metrics", headers=OPERATOR)
            assert scraped.status_code == 200
            assert grant_total(scraped.text) == 200

        # Phase 2: SIGTERM to `serve` while requests are in flight.
        in_flight = 0
        stop = asyncio.Event()

        async def load(worker: int) -> None:
            nonlocal in_flight
            n = 0
            while not stop.is_set():
                n += 1
                in_flight += 1
                try:
                    response = await one_grant(http, admin, people[(worker + n) % 20], f"load-{worker}-{n}")
                except httpx.HTTPError as exc:
                    refused.append(type(exc).__name__)
                    stop.set()  # the server is going away: stop sending
                    return
                finally:
                    in_flight -= 1
                if response.status_code == 201:
                    body = response.json()
                    answered[body["transaction_id"]] = body["participant_id"]
                else:
                    refused.append(str(response.status_code))

        loaders = [asyncio.create_task(load(w)) for w in range(CONCURRENCY)]
        while not stop.is_set() and (len(answered) < 600 or in_flight < CONCURRENCY // 2):
            await asyncio.sleep(0.005)
        assert not stop.is_set(), f"the load failed before the signal: {refused}"
        signalled_with_in_flight, answered_before_signal = in_flight, len(answered)
        [worker_pid] = serve.worker_pids()
        os.kill(serve.process.pid, signal.SIGTERM)
        await asyncio.gather(*loaders)
    print(f"\nserve --workers {WORKERS}: {len(answered)} grants answered, {signalled_with_in_flight} in flight at "
          f"SIGTERM, {len(answered) - answered_before_signal} answered after it; the rest ended: {sorted(set(refused))}")

    exit_code = await asyncio.to_thread(serve.process.wait, 90)
    assert exit_code == 0, serve.log.read_text()[-3000:]
    assert signalled_with_in_flight > 0
    # No answer was an error: requests either completed or were never taken.
    assert not [r for r in refused if r.isdigit()], refused

    # Before anything else touches the stores: every answered grant is in the SQL ledger...
    database = Path(serve.env["RW_DATA_DIR"]) / "reward-wallet.sqlite3"
    with sqlite3.connect(database) as db:
        rows = dict(db.execute("SELECT transaction_id, participant_id FROM ledger_entries WHERE program_id = ? "
                               "AND kind = 'grant'", (program_id,)).fetchall())
    missing = set(answered) - set(rows)
    assert not missing, f"{len(missing)} answered grants are not in the ledger"
    assert all(rows[tx] == who for tx, who in answered.items())

    # ...and the journal is empty: the worker drained it on the way out, after the APIs stopped.
    from api.embedded import EmbeddedValkey
    from wallet import keys

    import redis

    valkey = EmbeddedValkey(Path(serve.env["RW_DATA_DIR"]))
    valkey.start()
    try:
        client: Any = redis.Redis.from_url(valkey.url)
        assert client.xlen(keys.journal(program_id)) == 0
        consumers = client.xinfo_consumers(keys.journal(program_id), "ledger")
        # One projector, the worker's: neither API process consumed the journal.
        assert [c["name"].decode() for c in consumers] == [f"{socket.gethostname()}-{worker_pid}"]
        assert all(c["pending"] == 0 for c in consumers)
        client.close()
    finally:
        valkey.stop()

    reconcile = subprocess.run([CLI, "reconcile"], env=serve.env, capture_output=True, text=True, timeout=120)
    assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr


def test_serve_starts_exactly_one_worker_process_beside_its_api_workers(serve: Serve):
    workers = serve.worker_pids()
    assert len(workers) == 1, [command_line(pid) for pid in children(serve.process.pid)]
    # Like Valkey, in a session of its own: a Ctrl-C at the terminal reaches the API first.
    assert os.getsid(workers[0]) == workers[0]
    # Its API workers answer each request in one TCP segment (api/http_protocol.py).
    assert segments_for_answers(serve.url, 10) == 10


def test_serve_with_http_one_write_off_runs_uvicorns_own_protocol(tmp_path: Path):
    server = Serve(tmp_path / "data", 1, env={"RW_HTTP_ONE_WRITE": "0"})
    try:
        assert segments_for_answers(server.url, 10) == 20  # the headers and the body apart
    finally:
        server.kill()


def test_serve_no_worker_starts_none_for_machines_whose_worker_runs_elsewhere(tmp_path: Path):
    server = Serve(tmp_path / "data", 1, "--no-worker")
    try:
        assert server.worker_pids() == []
        # Valkey, and the SQLite writer of the one API process (serve itself here).
        writers = server.sqlite_writer_pids()
        assert len(writers) <= 1 and len(set(children(server.process.pid)) - set(writers)) == 1
    finally:
        server.kill()


def test_serve_starts_its_valkey_on_the_allocator_its_settings_name(tmp_path: Path):
    server = Serve(tmp_path / "data", 1, env={"RW_VALKEY_ALLOCATOR": "libc"})
    try:
        state = json.loads((tmp_path / "data" / "valkey" / "valkey.json").read_text())
        assert state["allocator"] == "libc"
        maps = Path(f"/proc/{state['pid']}/maps").read_text()
        assert "jemalloc" not in maps and "valkey-server" in maps
    finally:
        server.kill()


def test_kill_9_of_serve_leaves_no_worker_and_no_valkey(tmp_path: Path):
    server = Serve(tmp_path / "data", 1)
    try:
        [worker] = server.worker_pids()
        valkey = json.loads((tmp_path / "data" / "valkey" / "valkey.json").read_text())["pid"]
        writers = server.sqlite_writer_pids()  # serve's own (it migrated) and the worker's, once it wrote
        assert alive(worker) and alive(valkey) and writers
        os.kill(server.process.pid, signal.SIGKILL)  # serve alone: no group kill helps them
        server.process.wait()
        deadline = time.monotonic() + 60  # a bound on waiting, not a figure under test
        while (alive(worker) or alive(valkey) or any(map(alive, writers))) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not alive(worker), f"worker {worker} outlived serve: {command_line(worker)}"
        assert not alive(valkey), f"Valkey {valkey} outlived serve"
        assert not any(map(alive, writers)), "a SQLite writer outlived the process it wrote for"
    finally:
        server.kill()


def background_tasks(http: Any) -> list[str]:
    """The background tasks (api/background.py names them rw-...) running on the loop of the
    in-process app's own thread."""

    def on_the_apps_loop() -> list[str]:
        return sorted(task.get_name() for task in asyncio.all_tasks() if task.get_name().startswith("rw-"))

    return http.blocking_portal.call(on_the_apps_loop)


async def test_an_api_process_with_default_settings_runs_no_projector_nor_background_task(settings, migrated):  # type: ignore[no-untyped-def]
    import msgspec
    from litestar.testing import AsyncTestClient

    from api.app import create_app
    from api.settings import load_settings, resolve_secrets

    # What `serve` hands its API workers: the environment's settings (no RW_JOURNAL_CONSUMER,
    # no RW_BACKGROUND_TASKS), on the test session's stores. Only the program-news follower
    # runs (it keeps this process's program views fresh).
    defaults, _ = resolve_secrets(load_settings({k: v for k, v in os.environ.items()
                                                 if k not in {"RW_JOURNAL_CONSUMER", "RW_BACKGROUND_TASKS"}}))
    async with AsyncTestClient(app=create_app(msgspec.structs.replace(defaults, sql_pool_size=0))) as http:
        assert (await http.get("/ready")).status_code == 200
        assert background_tasks(http) == ["rw-program-news"]

    # The same check sees them when settings turn the in-process copies on; expiry stays
    # with the worker.
    both = msgspec.structs.replace(settings, journal_consumer=True, background_tasks=True)
    async with AsyncTestClient(app=create_app(both)) as http:
        assert (await http.get("/ready")).status_code == 200
        assert background_tasks(http) == ["rw-announcements", "rw-participant-imports", "rw-program-news",
                                          "rw-projector", "rw-sweep", "rw-wal-checkpoints", "rw-webhooks"]
