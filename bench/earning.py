"""Activity ingestion: the batch endpoint against single-event posts, in one run.

Both paths run against the same live API (one uvicorn worker, embedded Valkey, SQLite),
with the same client concurrency and the same earning rule, so the ratio is what a CRM
connector gains by batching. Target: batch at least 10x single.

    .venv/bin/python bench/earning.py [--singles 400] [--batches 8] [--batch-size 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.harness import api_stack  # noqa: E402

CONCURRENCY = 8
START = datetime(2026, 1, 5, tzinfo=timezone.utc)


def activity(n: int, reps: int) -> dict:
    return {"external_id": f"INV-{n}", "type": "sale", "participant_external_id": f"rep-{n % reps}",
            "occurred_at": (START + timedelta(seconds=n)).isoformat(), "attributes": {"amount": 100 * (1 + n % 50)}}


async def run(singles: int, batches: int, batch_size: int, reps: int) -> None:
    with api_stack() as stack:
        async with httpx.AsyncClient(base_url=stack.url, timeout=300,
                                     limits=httpx.Limits(max_connections=CONCURRENCY)) as http:
            created = (await http.post("/v1/programs", json={"name": "bench"}, headers=stack.operator)).json()
            admin = {"Authorization": f"Bearer {created['admin_key']}"}
            for i in range(reps):
                await http.post("/v1/participants", json={"external_id": f"rep-{i}", "display_name": f"Rep {i}"},
                                headers=admin)
            await http.post("/v1/earning-rules", headers=admin, json={
                "name": "Sales", "activity_type": "sale",
                "award": {"type": "per_unit", "unit": 100, "points_per_unit": 1}})
            semaphore = asyncio.Semaphore(CONCURRENCY)

            async def post(events: list[dict]) -> int:
                async with semaphore:
                    response = await http.post("/v1/activities", json={"activities": events}, headers=admin)
                response.raise_for_status()
                return response.json()["new"]

            # Warm-up, not counted.
            await asyncio.gather(*[post([activity(10_000_000 + i, reps)]) for i in range(20)])

            started = time.perf_counter()
            new_single = sum(await asyncio.gather(*[post([activity(i, reps)]) for i in range(singles)]))
            single_seconds = time.perf_counter() - started

            offset = 1_000_000
            started = time.perf_counter()
            new_batched = sum(await asyncio.gather(*[
                post([activity(offset + b * batch_size + i, reps) for i in range(batch_size)]) for b in range(batches)
            ]))
            batch_seconds = time.perf_counter() - started
            budget = (await http.get("/v1/program/budget", headers=admin)).json()

    single_rate = new_single / single_seconds
    batch_rate = new_batched / batch_seconds
    print("Activity ingestion (one uvicorn worker, embedded Valkey, SQLite; shared 2-core machine: noisy)")
    print(f"  client concurrency            {CONCURRENCY}")
    print(f"  single-event posts            {new_single:>7} activities in {single_seconds:6.2f} s = {single_rate:8.0f}/s")
    print(f"  batches of {batch_size:<5}             {new_batched:>7} activities in {batch_seconds:6.2f} s = "
          f"{batch_rate:8.0f}/s")
    print(f"  batch / single                {batch_rate / single_rate:8.1f}x   (target >= 10x)")
    print(f"  points issued (check)         {budget['issued']['points']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--singles", type=int, default=400)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--participants", type=int, default=50)
    args = parser.parse_args()
    asyncio.run(run(args.singles, args.batches, args.batch_size, args.participants))


if __name__ == "__main__":
    main()
