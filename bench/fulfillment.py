"""Fulfillment throughput, in one run against one live API (one uvicorn worker, embedded
Valkey, SQLite):

- baseline: `GET /v1/me/wallet` per second from the same clients (redemption rates are
  also printed as a ratio of it, which is what to compare across runs on a noisy machine);
- redemptions of a code-pool item (fulfilled at once) from 64 clients racing for a pool
  smaller than the demand, and of an external partner's item from 16 clients: per second,
  p50/p99;
- orders claimed and fulfilled per second by 4 partner clients draining a queue;
- catalog list requests per second, plain and with `If-None-Match` (304), same clients.

    .venv/bin/python bench/fulfillment.py [--orders 600] [--pool-codes 300] [--catalog-requests 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import api_stack  # noqa: E402


async def limited(limit: int, calls: list) -> list:  # type: ignore[type-arg]
    semaphore = asyncio.Semaphore(limit)

    async def run(call):  # type: ignore[no-untyped-def]
        async with semaphore:
            return await call

    return await asyncio.gather(*[run(c) for c in calls])


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def timed_calls(limit: int, calls: list) -> tuple[float, list[float], list]:  # type: ignore[type-arg]
    """(calls per second, latencies in seconds, answers) of running `calls` `limit` at a time."""
    latencies: list[float] = []

    async def one(call):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        answer = await call
        latencies.append(time.perf_counter() - t)
        return answer

    started = time.perf_counter()
    answers = await limited(limit, [one(c) for c in calls])
    return len(calls) / (time.perf_counter() - started), latencies, answers


async def run(order_count: int, catalog_requests: int, pool_codes: int) -> None:
    with api_stack() as stack:
        # As long as the server takes (a redemption stuck behind SQLite's writer is what this
        # measures), and a connection per client so latency is the server's, not the pool's.
        async with httpx.AsyncClient(base_url=stack.url, timeout=600,
                                     limits=httpx.Limits(max_connections=64)) as http:
            created = (await http.post("/v1/programs", json={"name": "bench"}, headers=stack.operator)).json()
            admin = {"Authorization": f"Bearer {created['admin_key']}"}
            partner = (await http.post("/v1/fulfillment/partners", json={"name": "p"}, headers=admin)).json()
            key = {"Authorization": f"Bearer {partner['api_key']}"}
            items = []
            for i in range(40):
                items.append((await http.post("/v1/catalog/items", headers=admin, json={
                    "brand": f"Brand {i % 8}", "name": f"Card {i}",
                    "face_value": {"amount": 500 + 100 * i, "currency": "USD"}})).json())
            people = []
            for i in range(20):
                person = (await http.post("/v1/participants", json={"external_id": f"p{i}", "display_name": "P"},
                                          headers=admin)).json()
                await http.post("/v1/points/grants", headers={**admin, "Idempotency-Key": f"g{i}"},
                                json={"participant_id": person["id"], "points": 10_000_000, "reason": "seed"})
                token = (await http.post(f"/v1/participants/{person['id']}/tokens", headers=admin)).json()
                people.append({"Authorization": f"Bearer {token['access_token']}"})

            base_rate, base_lat, _ = await timed_calls(64, [
                http.get("/v1/me/wallet", headers=people[i % 20]) for i in range(pool_codes * 2)])

            # The built-in pool: a third more demand than codes, so out_of_stock is measured too.
            pooled = items[39]["id"]
            codes = "code,pin\n" + "".join(f"GC-{i:06d},{i:04d}\n" for i in range(pool_codes))
            (await http.post(f"/v1/catalog/items/{pooled}/codes", json={"csv": codes}, headers=admin)).raise_for_status()
            demand = pool_codes * 4 // 3
            pool_rate, pool_lat, pool_answers = await timed_calls(64, [
                http.post("/v1/me/redemptions", json={"item_id": pooled},
                          headers={**people[i % 20], "Idempotency-Key": f"pool{i}"}) for i in range(demand)])
            pool_statuses = sorted(a.status_code for a in pool_answers)
            assert pool_statuses.count(201) == pool_codes and pool_statuses.count(409) == demand - pool_codes, \
                set(pool_statuses)

            redeem_rate, redeem_lat, answers = await timed_calls(16, [
                http.post("/v1/me/redemptions", json={"item_id": items[i % 39]["id"]},
                          headers={**people[i % 20], "Idempotency-Key": f"r{i}"}) for i in range(order_count)])
            assert all(a.status_code == 201 for a in answers)

            done = 0

            async def partner_client() -> None:
                nonlocal done
                while True:
                    batch = (await http.post("/v1/fulfillment/orders/claim", json={"limit": 25, "lease_seconds": 120},
                                             headers=key)).json()["items"]
                    if not batch:
                        return
                    for order in batch:
                        response = await http.post(f"/v1/fulfillment/orders/{order['id']}/fulfill", headers=key,
                                                   json={"lease_id": order["lease_id"],
                                                         "credentials": {"code": order["id"]}})
                        response.raise_for_status()
                        done += 1

            started = time.perf_counter()
            await asyncio.gather(*[partner_client() for _ in range(4)])
            fulfil_seconds = time.perf_counter() - started
            assert done == order_count

            me = people[0]
            etag = (await http.get("/v1/catalog/items", headers=me)).headers["etag"]

            async def timed(headers: dict[str, str]) -> tuple[float, list[float]]:
                latencies: list[float] = []

                async def one() -> None:
                    t = time.perf_counter()
                    await http.get("/v1/catalog/items", headers=headers)
                    latencies.append(time.perf_counter() - t)

                t0 = time.perf_counter()
                await limited(16, [one() for _ in range(catalog_requests)])
                return catalog_requests / (time.perf_counter() - t0), latencies

            plain_rate, plain_lat = await timed(me)
            cached_rate, cached_lat = await timed({**me, "If-None-Match": etag})

    def p50(values: list[float]) -> float:
        return statistics.median(values) * 1000

    print("Fulfillment (one uvicorn worker, embedded Valkey, SQLite; shared 2-core machine: noisy)")
    print(f"  baseline GET /v1/me/wallet (64)   {base_rate:8.1f} req/s   p50 {p50(base_lat):6.1f} ms "
          f"p99 {pct(base_lat, 0.99):7.1f} ms")
    print(f"  redemptions, code pool (64)       {pool_rate:8.1f} req/s   p50 {p50(pool_lat):6.1f} ms "
          f"p99 {pct(pool_lat, 0.99):7.1f} ms   {pool_rate / base_rate:5.3f}x baseline "
          f"({pool_codes} fulfilled + {demand - pool_codes} out_of_stock)")
    print(f"  redemptions, partner (16)         {redeem_rate:8.1f} req/s   p50 {p50(redeem_lat):6.1f} ms "
          f"p99 {pct(redeem_lat, 0.99):7.1f} ms   {redeem_rate / base_rate:5.3f}x baseline")
    print(f"  claimed + fulfilled (4 partners)  {order_count / fulfil_seconds:8.1f} orders/s "
          f"({order_count} orders in {fulfil_seconds:.1f} s)")
    print(f"  catalog list, 50 items            {plain_rate:8.1f} req/s   p50 {p50(plain_lat):6.1f} ms")
    print(f"  catalog list, If-None-Match (304) {cached_rate:8.1f} req/s   p50 {p50(cached_lat):6.1f} ms")
    print(f"  304 / full                        {cached_rate / plain_rate:8.1f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=600)
    parser.add_argument("--catalog-requests", type=int, default=2000)
    parser.add_argument("--pool-codes", type=int, default=300, help="codes in the pool (demand is a third more)")
    args = parser.parse_args()
    asyncio.run(run(args.orders, args.catalog_requests, args.pool_codes))


if __name__ == "__main__":
    main()
