"""Fulfillment under real concurrency, against a live server."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from tests.factories import OPERATOR, random_ref

pytestmark = pytest.mark.sql

# The client lets an idle connection go after 1 s, well before the live server closes it
# (60 s, tests/conftest.py): with both at 5 s, a request sent on a connection the server
# was closing failed as a ReadError.
POOL = httpx.Limits(max_connections=64, keepalive_expiry=1.0)
# These tests prove exactly-once outcomes under contention, not latency: on a loaded 2-core
# machine a few of 500 racing redemptions have waited past 60 s on SQLite's one writer (a
# latency bug the hot-path work owns), so the client waits as long as it takes.
CORRECTNESS_TIMEOUT = 300


async def live_shop(http: httpx.AsyncClient, webhook_url: str | None = None) -> tuple[dict[str, str], dict, dict]:
    created = (await http.post("/v1/programs", json={"name": random_ref("live")}, headers=OPERATOR)).json()
    admin = {"Authorization": f"Bearer {created['admin_key']}"}
    partner = (await http.post("/v1/fulfillment/partners", headers=admin,
                               json={"name": "Acme Rewards", **({"webhook_url": webhook_url} if webhook_url else {})})).json()
    item = (await http.post("/v1/catalog/items", headers=admin, json={
        "brand": "Amazon", "name": "Amazon $5", "face_value": {"amount": 500, "currency": "USD"}})).json()
    return admin, partner, item


async def funded_participants(http: httpx.AsyncClient, admin: dict[str, str], count: int,
                              points: int) -> list[dict[str, str]]:
    tokens = []
    for i in range(count):
        person = (await http.post("/v1/participants", json={"external_id": f"p{i}", "display_name": f"P{i}"},
                                  headers=admin)).json()
        await http.post("/v1/points/grants", headers={**admin, "Idempotency-Key": f"seed-{i}"},
                        json={"participant_id": person["id"], "points": points, "reason": "seed"})
        token = (await http.post(f"/v1/participants/{person['id']}/tokens", headers=admin)).json()["access_token"]
        tokens.append({"Authorization": f"Bearer {token}"})
    return tokens


async def gather_limited(limit: int, calls: list[Any]) -> list[Any]:
    semaphore = asyncio.Semaphore(limit)

    async def run(call: Any) -> Any:
        async with semaphore:
            return await call

    return await asyncio.gather(*[run(c) for c in calls])


# The same races as 1,000 orders (4 clients claiming 25 at a time against each other) in
# 60% of the time: CI runs this on SQLite and on Postgres.
ORDERS = 400


async def test_four_partner_clients_fulfil_400_orders_each_exactly_once(live_server) -> None:  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(base_url=live_server.url, timeout=CORRECTNESS_TIMEOUT,
                                 limits=httpx.Limits(max_connections=32, keepalive_expiry=1.0)) as http:
        admin, partner, item = await live_shop(http)
        people = await funded_participants(http, admin, 20, 500 * 30)
        logged = live_server.log_size()
        answers = await gather_limited(16, [redeem_as_a_phone(http, people[i % 20], item["id"], f"r{i}")
                                            for i in range(ORDERS)])
        assert not (failures := server_failures(live_server, logged)), "\n".join(failures)
        assert [a.status_code for a in answers].count(201) == ORDERS
        key = {"Authorization": f"Bearer {partner['api_key']}"}
        fulfilled: list[str] = []

        async def worker(name: str) -> None:
            while True:
                batch = (await http.post("/v1/fulfillment/orders/claim", json={"limit": 25, "lease_seconds": 120},
                                         headers=key)).json()["items"]
                if not batch:
                    return
                for order in batch:
                    done = await http.post(f"/v1/fulfillment/orders/{order['id']}/fulfill", headers=key, json={
                        "lease_id": order["lease_id"], "credentials": {"code": f"{name}-{order['id']}"}})
                    assert done.status_code == 200, done.text
                    fulfilled.append(order["id"])

        await asyncio.gather(*[worker(f"client{i}") for i in range(4)])
        assert len(fulfilled) == ORDERS and len(set(fulfilled)) == ORDERS
        orders = []
        cursor = None
        while True:
            page = (await http.get("/v1/orders", params={"limit": 200, **({"cursor": cursor} if cursor else {})},
                                   headers=admin)).json()
            orders += page["items"]
            cursor = page["next_cursor"]
            if not cursor:
                break
        assert len(orders) == ORDERS and {o["status"] for o in orders} == {"fulfilled"}
        budget = (await http.get("/v1/program/budget", headers=admin)).json()
        assert budget["redeemed"]["points"] == 500 * ORDERS


async def redeem_as_a_phone(http: httpx.AsyncClient, me: dict[str, str], item_id: str, key: str) -> httpx.Response:
    """A phone's redemption: a request whose connection broke before its answer is sent again
    with the same Idempotency-Key, twice at most; the answer (or its replay) is the outcome."""
    for attempt in range(3):
        try:
            return await http.post("/v1/me/redemptions", json={"item_id": item_id},
                                   headers={**me, "Idempotency-Key": key})
        except httpx.TransportError:
            if attempt == 2:
                raise
    raise AssertionError("not reached")


def server_failures(live_server: Any, since: int) -> list[str]:
    """The server's error lines since `since`: a retried request is the phone's business (a
    connection broken before its answer, seen as a ReadError with nothing in the server's log,
    about one run in many), the server failing one is not."""
    return [line for line in live_server.problems(since=since) if '"level":"error"' in line or "Traceback" in line]


async def test_500_redemptions_race_for_a_pool_of_300_codes(live_server) -> None:  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(base_url=live_server.url, timeout=CORRECTNESS_TIMEOUT,
                                 limits=POOL) as http:
        admin, _, item = await live_shop(http)
        codes = "code,pin\n" + "".join(f"GC-{i:05d},{i:04d}\n" for i in range(300))
        upload = (await http.post(f"/v1/catalog/items/{item['id']}/codes", json={"csv": codes}, headers=admin)).json()
        assert upload["added"] == 300 and upload["available"] == 300
        people = await funded_participants(http, admin, 50, 500 * 10)
        logged = live_server.log_size()
        answers = await gather_limited(64, [redeem_as_a_phone(http, people[i % 50], item["id"], f"pool-{i}")
                                            for i in range(500)])
        assert not (failures := server_failures(live_server, logged)), "\n".join(failures)
        statuses = [a.status_code for a in answers]
        assert statuses.count(201) == 300 and statuses.count(409) == 200, sorted(set(statuses))
        assert {a.json()["code"] for a in answers if a.status_code == 409} == {"out_of_stock"}
        assert {a.json()["status"] for a in answers if a.status_code == 201} == {"fulfilled"}
        delivered = []
        for token in people:
            for order in (await http.get("/v1/me/redemptions", params={"status": "fulfilled", "limit": 200},
                                         headers=token)).json()["items"]:
                delivered.append(order["credentials"]["code"])
        assert len(delivered) == 300 and len(set(delivered)) == 300
        wallets = [(await http.get("/v1/me/wallet", headers=t)).json() for t in people]
        assert sum(w["held"] for w in wallets) == 0
        assert sum(w["available"] for w in wallets) == 50 * 5000 - 300 * 500  # every failed order's points back
        stock = (await http.get("/v1/catalog/stock", headers=admin)).json()
        assert stock["items"] == [{"item_id": item["id"], "item_name": "Amazon $5", "available": 0, "used": 300,
                          "low_stock": True}]


class Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []
    fail_first = 1

    def do_POST(self) -> None:  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        if type(self).fail_first > 0:
            type(self).fail_first -= 1
            self.send_response(500)
        else:
            self.send_response(200)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def verify(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    parts = dict(p.split("=", 1) for p in header.split(","))
    timestamp = int(parts["t"])
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return abs(time.time() - timestamp) <= tolerance and hmac.compare_digest(expected, parts["v1"])


async def test_new_orders_are_pushed_signed_and_retried_after_a_500(live_server) -> None:  # type: ignore[no-untyped-def]
    Receiver.received, Receiver.fail_first = [], 1
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/hooks/orders"
        async with httpx.AsyncClient(base_url=live_server.url, timeout=30, limits=POOL) as http:
            admin, partner, item = await live_shop(http, webhook_url=url)
            secret = partner["webhook_secret"]
            [token] = await funded_participants(http, admin, 1, 1000)
            order = (await http.post("/v1/me/redemptions", json={"item_id": item["id"]},
                                     headers={**token, "Idempotency-Key": "hook"})).json()
            deadline = time.monotonic() + 20
            while len(Receiver.received) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            assert len(Receiver.received) == 2, "expected a failed attempt and a retry"
            for headers, body in Receiver.received:
                assert verify(secret, headers["rw-signature"], body)
                assert json.loads(body)["order"]["id"] == order["id"]
            headers, body = Receiver.received[-1]
            assert not verify(secret, headers["rw-signature"], body + b" ")  # tampering is detected
            assert not verify("whsec_wrong", headers["rw-signature"], body)
            partner_key = {"Authorization": f"Bearer {partner['api_key']}"}
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                log = (await http.get("/v1/fulfillment/deliveries", headers=partner_key)).json()["items"]
                if log and log[0]["status"] == "delivered":
                    break
                await asyncio.sleep(0.2)
            assert log[0]["status"] == "delivered" and log[0]["attempts"] == 2 and log[0]["last_status_code"] == 200
            admin_log = (await http.get("/v1/fulfillment/webhook-deliveries", headers=admin)).json()["items"]
            assert [d["id"] for d in admin_log] == [log[0]["id"]]
            assert "whsec" not in (await http.get("/v1/fulfillment/partners", headers=admin)).text
    finally:
        server.shutdown()
