"""Small builders the tests share: programs, participants, tokens and point moves over HTTP.

Every builder uses random names, so tests never depend on each other.
"""

from __future__ import annotations

import asyncio
import time
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec
from litestar.testing import AsyncTestClient

from tests.conftest import OPERATOR_KEY

OPERATOR = {"Authorization": f"Bearer {OPERATOR_KEY}"}


class ProgramHandle(msgspec.Struct):
    id: str
    admin_key: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.admin_key}"}


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def random_ref(prefix: str = "ref") -> str:
    return f"{prefix}-{secrets.token_hex(6)}"


async def new_program(client: Any, **fields: Any) -> ProgramHandle:
    body = {"name": random_ref("program"), **fields}
    response = await client.post("/v1/programs", json=body, headers=OPERATOR)
    assert response.status_code == 201, response.text
    data = response.json()
    return ProgramHandle(id=data["program_id"], admin_key=data["admin_key"])


async def new_participant(client: Any, program: ProgramHandle, **fields: Any) -> dict[str, Any]:
    body = {"external_id": random_ref("ext"), "display_name": "Pat Seller", **fields}
    response = await client.post("/v1/participants", json=body, headers=program.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def tokens_for(client: Any, program: ProgramHandle, participant_id: str) -> dict[str, Any]:
    response = await client.post(f"/v1/participants/{participant_id}/tokens", headers=program.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def grant(client: Any, program: ProgramHandle, participant_id: str, points: int,
                key: str | None = None) -> Any:
    return await client.post(
        "/v1/points/grants",
        json={"participant_id": participant_id, "points": points, "reason": "test grant"},
        headers={**program.headers, "Idempotency-Key": key or random_ref("grant")},
    )


class HookListener:
    """A real HTTP listener on 127.0.0.1 that records each POST's headers (lower-cased) and body."""

    def __init__(self) -> None:
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        received: list[tuple[dict[str, str], bytes]] = []
        self.received = received

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = int(self.server.server_address[1])
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def __enter__(self) -> "HookListener":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


async def launched(client: Any, program: ProgramHandle, design: dict[str, Any]) -> str:
    """Creates the spin campaign `design` describes and launches it; answers its id."""
    created = await client.post("/v1/campaigns/spin", json=design, headers=program.headers)
    assert created.status_code == 201, created.text
    campaign_id = str(created.json()["id"])
    launch = await client.post(f"/v1/campaigns/{campaign_id}/launch", headers=program.headers)
    assert launch.status_code == 200, launch.text
    return campaign_id


async def launched_wheel(client: Any, program: ProgramHandle, cost_points: int = 1) -> str:
    """A launched spin campaign whose prizes need no budget (nothing, or a free spin)."""
    design = {"name": random_ref("wheel"), "cost_points": cost_points, "segments": [
        {"label": "Try again", "weight": 50, "prize": {"type": "nothing"}},
        {"label": "Free spin", "weight": 10, "prize": {"type": "free_spin"}},
        {"label": "So close", "weight": 40, "prize": {"type": "nothing"}},
    ]}
    return await launched(client, program, design)


async def fund(redis: Any, program: ProgramHandle, points: int) -> None:
    """Funds a program's budget through the wallet function (no Stripe)."""
    from wallet.store import Leg, WalletStore

    store = WalletStore(redis)
    outcome = await store.transfer(program.id, f"tx_fund_{program.id}", "funding",
                                   [Leg("acct:world", "acct:budget", points, "-")])
    assert outcome.ok


def later(seconds: float) -> str:
    """An ISO time `seconds` from now."""
    return (datetime.now(timezone.utc) + timedelta(seconds=seconds)).isoformat()


def sweepstakes_design(**overrides: Any) -> dict[str, Any]:
    return {"name": "Q4 dealer sweepstakes", "entry_cost_points": 10, "max_entries_per_participant": 5,
            "winners": 2, "alternates": 2, "closes_at": later(3600),
            "prizes": [{"type": "points", "points": 1000}, {"type": "points", "points": 500}], **overrides}


async def new_sweepstakes(client: Any, program: Any, **overrides: Any) -> dict[str, Any]:
    response = await client.post("/v1/sweepstakes", json=sweepstakes_design(**overrides), headers=program.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def buy_entries(client: Any, sweepstakes_id: str, headers: dict[str, str], count: int,
                      key: str | None = None) -> Any:
    return await client.post(f"/v1/me/sweepstakes/{sweepstakes_id}/entries", json={"count": count},
                             headers={**headers, "Idempotency-Key": key or random_ref("enter")})


async def spinning_participant(client: Any, program: ProgramHandle, points: int) -> tuple[str, dict[str, str]]:
    """A participant with `points` to spend and their bearer headers."""
    person = await new_participant(client, program)
    assert (await grant(client, program, person["id"], points)).status_code == 201
    return person["id"], bearer((await tokens_for(client, program, person["id"]))["access_token"])


async def set_program_status(client: Any, program: ProgramHandle, status: str) -> Any:
    """The operator suspends ("suspended") or reactivates ("active") a program."""
    response = await client.patch(f"/v1/programs/{program.id}", json={"status": status}, headers=OPERATOR)
    assert response.status_code == 200, response.text
    return response.json()


async def available(client: Any, program: ProgramHandle, participant_id: str) -> int:
    """A participant's available points, as the program admin reads them."""
    response = await client.get(f"/v1/participants/{participant_id}/wallet", headers=program.headers)
    assert response.status_code == 200, response.text
    return int(response.json()["available"])


async def fill_wallet(redis: Any, program_id: str, participant_id: str, points: int) -> None:
    """Funds the program from `world` and grants `points` to one wallet, through the real
    wallet function, in legs of at most 10^12 points: the way to reach balances near 2^53
    without thousands of requests. Journalled like any transaction, so the ledger agrees."""
    from kernel.money import MAX_MOVE
    from kernel.ids import new_id
    from wallet.store import Leg, WalletStore

    sizes = [MAX_MOVE] * (points // MAX_MOVE) + ([points % MAX_MOVE] if points % MAX_MOVE else [])
    legs = [Leg("acct:world", "acct:budget", size, "-") for size in sizes]
    legs += [Leg("acct:budget", "w1:available", size, "0") for size in sizes]
    outcome = await WalletStore(redis).transfer(program_id, new_id("tx"), "grant", legs, wallets=[participant_id],
                                                participant_id=participant_id, lifetime="earn")
    assert outcome.ok, outcome
    assert outcome.available is not None and outcome.available >= points


async def away_from_a_window_edge(window: int, margin: float = 10.0) -> None:
    """Waits, when the current fixed rate-limit window (`window` seconds, counted from the
    epoch) ends within `margin` seconds, for the next one: counts start again at each window,
    so requests that straddle its edge would be counted apart and a limit seem not to hold."""
    left = window - time.time() % window
    if left < margin:
        await asyncio.sleep(left + 0.2)


def admin_idem(program_id: str) -> Any:
    """A fresh admin Idempotency-Key, for a wallet call a test makes without HTTP."""
    from kernel import keys as kernel_keys
    from kernel.idempotency import Idem

    return Idem(key=kernel_keys.idempotency(program_id, "admin", random_ref()), fingerprint="f")


class FixedClock:
    """A wallet store's clock (nanoseconds) that stands where the test puts `now`."""

    def __init__(self) -> None:
        self.now = datetime(2025, 1, 10, tzinfo=timezone.utc)

    def __call__(self) -> int:
        return int(self.now.timestamp() * 1_000_000_000)


async def expiry_program(redis: Any, months: int = 12) -> tuple[Any, FixedClock, Any]:
    """A program whose points expire after `months`, its wallet store on a FixedClock, and
    participant "rep"'s wallet open."""
    from programs.programs import NewProgram, ProgramChanges, create_program, update_program
    from wallet.store import WalletStore

    program, _ = await create_program(NewProgram(name=random_ref("expiry")))
    clock = FixedClock()
    store = WalletStore(redis, clock=clock)
    await store.load_functions()
    program = await update_program(store, program.id, ProgramChanges(points_expire_months=months))
    await store.open_wallet(program.id, "rep")
    return program, clock, store


async def three_months_of_points(redis: Any, store: Any, program_id: str, clock: FixedClock) -> None:
    """Participant "rep" of an `expiry_program` earns 100 points on 10 January 2025 and 50 on
    10 February, and spends 30 on 10 March (from January's lot, oldest first); the journal is
    projected."""
    from wallet import accounts

    clock.now = datetime(2025, 1, 10, tzinfo=timezone.utc)
    await accounts.grant(store, program_id, "rep", 100, "January sales", admin_idem(program_id))
    clock.now = datetime(2025, 2, 10, tzinfo=timezone.utc)
    await accounts.grant(store, program_id, "rep", 50, "February sales", admin_idem(program_id))
    clock.now = datetime(2025, 3, 10, tzinfo=timezone.utc)
    await accounts.deduct(store, program_id, "rep", 30, "spent", admin_idem(program_id))
    await projected(redis, program_id)


async def projected(redis: Any, program_id: str, consumer: str = "test") -> None:
    """The program's journal in SQL now: projected by this test, or by another projector on
    the session's stores (a live server's runs for every program) that took the entries
    first; either way they leave the journal only once their rows are committed. Projecting
    and reading SQL at once raced such a projector: the test's read found no entries to
    project while the other had not committed them yet (an expiry sweep then found nothing)."""
    from wallet.journal import JournalProjector
    from wallet.keys import journal

    for _ in range(200):
        await JournalProjector(redis, consumer=consumer, claim_idle_ms=0).project_program(program_id)
        if await redis.xlen(journal(program_id)) == 0:
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the journal was never projected")


async def wait_until(read: Any, wanted: Any, timeout: float = 30.0) -> Any:
    """Polls `read()` until it answers `wanted` (then answers it) or `timeout` passes (then
    answers what it saw last): for what the journal projector writes a moment later."""
    import time

    deadline = time.monotonic() + timeout
    seen = None
    while time.monotonic() < deadline:
        seen = await read()
        if seen == wanted:
            break
        await asyncio.sleep(0.05)
    return seen


def wait_ready(base: str, process: Any = None, seconds: float = 90) -> None:
    """Waits until a server we started answers `/ready` (and fails early if it died)."""
    import time

    import httpx

    deadline = time.monotonic() + seconds
    while True:
        try:
            if httpx.get(base + "/ready", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline and (process is None or process.poll() is None), "serve did not start"
        time.sleep(0.1)


async def leaderboard(client: Any, program: ProgramHandle, **spec: Any) -> dict[str, Any]:
    """A leaderboard (an all-time points board of participants unless `spec` says otherwise)."""
    body = {"name": random_ref("lb"), "period": "all_time", **spec}
    response = await client.post("/v1/leaderboards", json=body, headers=program.headers)
    assert response.status_code == 201, response.text
    return response.json()


async def standings_of(client: Any, program: ProgramHandle, board_id: str) -> list[tuple[str, int]]:
    """The board's top entries now, as (member id, score), over HTTP."""
    response = await client.get(f"/v1/leaderboards/{board_id}", params={"limit": 50}, headers=program.headers)
    assert response.status_code == 200, response.text
    return [(e["id"], e["score"]) for e in response.json()["top"]]


async def points_wheel(client: Any, program: ProgramHandle, points: int, cost_points: int = 0) -> str:
    """A launched spin campaign whose only prize is `points` (every spin wins it)."""
    design = {"name": random_ref("wheel"), "cost_points": cost_points, "segments": [
        {"label": f"{points} points", "weight": 1, "prize": {"type": "points", "points": points}}]}
    return await launched(client, program, design)


async def spin(client: Any, campaign_id: str, headers: dict[str, str], key: str | None = None) -> Any:
    """One spin by the participant whose bearer `headers` are given."""
    return await client.post(f"/v1/me/campaigns/{campaign_id}/spins",
                             headers={**headers, "Idempotency-Key": key or random_ref("spin")})


async def won_sweepstakes(client: Any, program: ProgramHandle, headers: dict[str, str], points: int) -> dict[str, Any]:
    """A sweepstakes whose one prize is `points`, entered (one ticket, for 10 points the
    participant must hold) only by the participant of `headers`, closed and drawn: they win."""
    from datetime import datetime, timedelta, timezone

    body = {"name": random_ref("sweep"), "entry_cost_points": 10, "max_entries_per_participant": 1, "winners": 1,
            "alternates": 0, "closes_at": (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat(),
            "prizes": [{"type": "points", "points": points}]}
    created = await client.post("/v1/sweepstakes", json=body, headers=program.headers)
    assert created.status_code == 201, created.text
    sweep = created.json()
    entered = await client.post(f"/v1/me/sweepstakes/{sweep['id']}/entries", json={"count": 1},
                                headers={**headers, "Idempotency-Key": random_ref("enter")})
    assert entered.status_code == 201, entered.text
    closed = await client.post(f"/v1/sweepstakes/{sweep['id']}/close", headers=program.headers)
    assert closed.status_code == 200, closed.text
    beacon = {"source": "test beacon", "round": 1, "value": random_ref("beacon")}
    drawn = await client.post(f"/v1/sweepstakes/{sweep['id']}/draw", json={"beacon": beacon}, headers=program.headers)
    assert drawn.status_code == 200, drawn.text
    return dict(sweep)


async def catalog_item(client: Any, program: ProgramHandle, face_value: int = 500) -> dict[str, Any]:
    """A fixed-value item a participant can redeem (the program's first partner routes it)."""
    partner = await client.post("/v1/fulfillment/partners", json={"name": random_ref("partner")},
                                headers=program.headers)
    assert partner.status_code == 201, partner.text
    item = await client.post("/v1/catalog/items", headers=program.headers, json={
        "brand": "Amazon", "name": random_ref("card"), "face_value": {"amount": face_value, "currency": "USD"},
        "sku": random_ref("sku")})
    assert item.status_code == 201, item.text
    return dict(item.json())


@asynccontextmanager
async def another_worker(settings: Any, **changes: Any) -> AsyncIterator[AsyncTestClient]:
    """A second app on the same stores: its own key and token caches, like another worker."""
    from api.app import create_app

    tuned = msgspec.structs.replace(settings, journal_consumer=False, background_tasks=False, **changes)
    async with AsyncTestClient(app=create_app(tuned), base_url="http://rw.test") as client:
        yield client


HANDSHAKE = ("HELLO", "CLIENT", "AUTH", "SELECT")


async def commands_of(url: str, call: Callable[[], Awaitable[Any]]) -> list[str]:
    """Every command clients (not Lua) sent to the Valkey at `url` while `call` ran."""
    import redis.asyncio as aioredis

    watcher = aioredis.Redis.from_url(url)
    marker = aioredis.Redis.from_url(url)
    try:
        async with watcher.monitor() as monitor:
            await call()
            await marker.echo("gate-test-end")
            seen = []
            while True:
                info = await asyncio.wait_for(monitor.next_command(), timeout=10)
                if info["command"] == "ECHO gate-test-end":
                    return seen
                # Not a request's: the handshake of a connection the pool opens.
                if info["client_type"] != "lua" and info["command"].split(" ")[0] not in HANDSHAKE:
                    seen.append(info["command"])
    finally:
        await watcher.aclose()
        await marker.aclose()


# A shop: a program with a partner, an item, and funded participants (fulfillment tests and others).
async def shop(client: Any, face_value: int = 2500, **program_fields: Any) -> tuple[ProgramHandle, dict, dict]:
    """A program, its default partner (with key), and one fixed-value item."""
    program = await new_program(client, **program_fields)
    partner = (await client.post("/v1/fulfillment/partners", json={"name": random_ref("partner")},
                                 headers=program.headers)).json()
    item = (await client.post("/v1/catalog/items", headers=program.headers, json={
        "brand": "Amazon", "name": f"Amazon ${face_value // 100} gift card",
        "face_value": {"amount": face_value, "currency": "USD"}, "sku": random_ref("sku")})).json()
    return program, partner, item


async def upload_codes(client: Any, program: ProgramHandle, item_id: str, codes: list[str]) -> None:
    """Gift-card codes uploaded for the item: it is served from the built-in pool."""
    answer = await client.post(f"/v1/catalog/items/{item_id}/codes", json={"csv": "code\n" + "\n".join(codes)},
                               headers=program.headers)
    assert answer.status_code in (200, 201), answer.text


async def shopper(client: Any, program: ProgramHandle, points: int) -> tuple[dict, dict[str, str]]:
    person = await new_participant(client, program)
    if points:
        assert (await grant(client, program, person["id"], points)).status_code == 201
    token = (await tokens_for(client, program, person["id"]))["access_token"]
    return person, bearer(token)


async def claim_orders(client: Any, partner_key: dict[str, str], **body: Any) -> Any:
    """A partner claims up to 10 orders under a 60-second lease (or what `body` says)."""
    return await client.post("/v1/fulfillment/orders/claim", json={"limit": 10, "lease_seconds": 60, **body},
                             headers=partner_key)


async def redeem(client: Any, headers: dict[str, str], item_id: str, key: str | None = None, **extra: Any) -> Any:
    return await client.post("/v1/me/redemptions", json={"item_id": item_id, **extra},
                             headers={**headers, "Idempotency-Key": key or random_ref("redeem")})
