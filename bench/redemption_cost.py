"""What one redemption costs, without contention: the app in process (Litestar's test client,
no projector nor background tasks), embedded Valkey, SQLite, one redemption at a time.

Per redemption of a code-pool item and of an external partner's item, and per partner's
fulfil of those orders (claimed first): milliseconds, SQL write transactions (what queues
behind SQLite's one writer: tests/sql_writes.py counts them) and SQL statements; baseline:
`GET /v1/me/wallet` the same way, in the same run.

    .venv/bin/python bench/redemption_cost.py [--count 200]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


async def measure(count: int, operator_key: str) -> None:
    from litestar.testing import AsyncTestClient

    from api.asgi import app_factory
    from tests.sql_writes import sql_write_transactions

    operator = {"Authorization": f"Bearer {operator_key}"}
    async with AsyncTestClient(app=app_factory(), base_url="http://rw.bench") as http:
        created = (await http.post("/v1/programs", json={"name": "cost"}, headers=operator)).json()
        admin = {"Authorization": f"Bearer {created['admin_key']}"}
        partner = (await http.post("/v1/fulfillment/partners", json={"name": "p"}, headers=admin)).json()
        partner_key = {"Authorization": f"Bearer {partner['api_key']}"}
        items = [(await http.post("/v1/catalog/items", headers=admin, json={
            "brand": "Amazon", "name": f"Card {i}", "face_value": {"amount": 500, "currency": "USD"}})).json()["id"]
            for i in range(2)]
        codes = "code\n" + "".join(f"GC-{i:06d}\n" for i in range(count + 10))
        (await http.post(f"/v1/catalog/items/{items[0]}/codes", json={"csv": codes}, headers=admin)).raise_for_status()
        person = (await http.post("/v1/participants", json={"external_id": "p", "display_name": "P"},
                                  headers=admin)).json()
        await http.post("/v1/points/grants", headers={**admin, "Idempotency-Key": "seed"},
                        json={"participant_id": person["id"], "points": 10_000_000, "reason": "seed"})
        token = (await http.post(f"/v1/participants/{person['id']}/tokens", headers=admin)).json()["access_token"]
        me = {"Authorization": f"Bearer {token}"}

        async def run(label: str, call: Any) -> tuple[str, float, float, float]:
            for n in range(5):  # warm: caches, pools
                (await call(f"warm-{label}-{n}")).raise_for_status()
            with sql_write_transactions() as writes:
                started = time.perf_counter()
                for n in range(count):
                    answer = await call(f"{label}-{n}")
                    assert answer.status_code in (200, 201), answer.text
                elapsed = time.perf_counter() - started
            return label, elapsed / count * 1000, writes.transactions / count, len(writes.statements) / count

        def redeem(item_id: str) -> Any:
            return lambda key: http.post("/v1/me/redemptions", json={"item_id": item_id},
                                         headers={**me, "Idempotency-Key": key})

        rows = [await run("wallet read (baseline)", lambda key: http.get("/v1/me/wallet", headers=me)),
                await run("redemption, code pool", redeem(items[0])),
                await run("redemption, partner", redeem(items[1]))]
        leased: list[tuple[str, str]] = []  # the partner's orders (warm-up ones too), claimed
        while batch := (await http.post("/v1/fulfillment/orders/claim", json={"limit": 200, "lease_seconds": 3600},
                                        headers=partner_key)).json()["items"]:
            leased += [(order["id"], order["lease_id"]) for order in batch]

        def fulfil(key: str) -> Any:
            order_id, lease_id = leased.pop()
            return http.post(f"/v1/fulfillment/orders/{order_id}/fulfill", headers=partner_key,
                             json={"lease_id": lease_id, "credentials": {"code": key}})

        rows.append(await run("partner's fulfil", fulfil))
    base = rows[0][1]
    print(f"Redemption cost, in process, one at a time ({count} each; shared 2-core machine: noisy)")
    print(f"  {'':26} {'ms':>8} {'x baseline':>11} {'SQL write tx':>13} {'SQL writes':>11}")
    for label, ms, transactions, statements in rows:
        print(f"  {label:26} {ms:8.2f} {ms / base:11.2f} {transactions:13.2f} {statements:11.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    from api.embedded import EmbeddedValkey

    folder = Path(tempfile.mkdtemp(prefix="rw-bench-"))
    valkey = EmbeddedValkey(folder)
    valkey.start()
    operator_key = "rwo_" + secrets.token_urlsafe(24)
    try:
        # Before anything imports piccolo_conf: the engine is chosen from the environment.
        os.environ.update({"RW_DATA_DIR": str(folder), "REDIS_URL": valkey.url, "RW_EMBEDDED_VALKEY": "1",
                           "RW_OPERATOR_KEY": operator_key, "RW_LOG_LEVEL": "warning",
                           "RW_JOURNAL_CONSUMER": "false", "RW_BACKGROUND_TASKS": "false"})
        os.environ.pop("DATABASE_URL", None)
        subprocess.run([str(Path(sys.executable).parent / "reward-wallet"), "migrate"], check=True,
                       capture_output=True, cwd=ROOT)
        asyncio.run(measure(args.count, operator_key))
    finally:
        valkey.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
