"""Close plus draw of a large sweepstakes through the real API: 1,000,000 entrants holding
10,000,000 tickets.

A throwaway stack (embedded Valkey, SQLite, one uvicorn process: bench/harness.py) gets a
program and a sweepstakes over HTTP; the entrants' tickets are then seeded straight into the
sweepstakes' Redis hashes with pipelined HSETs (the state a million entry calls would
leave: tickets per public id, owners, totals). Then, over HTTP and timed:

- `POST /v1/sweepstakes/{id}/close`: stops entries in Redis, reads every entrant's tickets
  (HSCAN), builds the canonical entries file, hashes it, stores it in SQL;
- `POST /v1/sweepstakes/{id}/draw` with a beacon: reads the file back, parses it, draws
  winners and alternates, records and answers the proof.

The server's peak RSS is its VmHWM (/proc/<pid>/status), before and after. Targets: close
plus draw under 10 s, peak under 1 GB. The proof is then verified offline as an auditor would.

    .venv/bin/python bench/sweepstakes.py [--entrants 1000000] [--tickets 10000000]
                                          [--winners 10] [--alternates 10]
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
import redis.asyncio as aioredis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.fairness_draw import draw_arguments  # noqa: E402
from bench.harness import api_stack  # noqa: E402
from games.sweepstakes import keys as swkeys  # noqa: E402
from games.fairness import verify_sweepstakes_proof  # noqa: E402
from games.sweepstakes.entries import public_id_of  # noqa: E402

CHUNK = 10_000
BEACON = {"source": "bench", "round": 1, "value": "drand-quicknet-round-9999999:bench"}


def server_pid(port: int) -> int:
    """The uvicorn process listening on the port (one worker runs the app in that process)."""
    import psutil

    for connection in psutil.net_connections(kind="tcp"):
        if connection.laddr and connection.laddr.port == port and connection.status == "LISTEN" and connection.pid:
            return int(connection.pid)
    raise RuntimeError("no process listens on the API port")


def vm_hwm_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM")


async def seed(redis_url: str, program_id: str, sweepstakes_id: str, entrants: int, tickets: int) -> None:
    """Entrant i holds 1 + i % 19 tickets, the first one the rest (the shape of bench/fairness_draw.py)."""
    client = aioredis.Redis.from_url(redis_url)
    config = swkeys.config(program_id, sweepstakes_id)
    key = (await client.hget(config, "pidk")).decode()
    counts = [1 + i % 19 for i in range(entrants)]
    held = sum(counts)
    if held > tickets:
        raise SystemExit(f"{entrants} entrants hold at least {held} tickets; ask for more tickets")
    counts[0] += tickets - held
    for start in range(0, entrants, CHUNK):
        tickets_map, owners_map = {}, {}
        for i in range(start, min(entrants, start + CHUNK)):
            participant = f"ptc_bench{i:09d}"
            public_id = public_id_of(key, participant)
            tickets_map[public_id] = counts[i]
            owners_map[public_id] = participant
        pipe = client.pipeline(transaction=False)
        pipe.hset(swkeys.tickets(program_id, sweepstakes_id), mapping=tickets_map)
        pipe.hset(swkeys.owners(program_id, sweepstakes_id), mapping=owners_map)
        await pipe.execute()
    await client.hset(config, mapping={"tickets": tickets, "entrants": entrants, "paid": tickets})
    await client.aclose()


def main() -> None:
    args = draw_arguments(__doc__)
    with api_stack() as stack:
        http = httpx.Client(base_url=stack.url, timeout=600)
        program = http.post("/v1/programs", json={"name": "bench"}, headers=stack.operator).json()
        admin = {"Authorization": f"Bearer {program['admin_key']}"}
        closes_at = (datetime.now(timezone.utc) + timedelta(hours=1)).isoformat()
        created = http.post("/v1/sweepstakes", headers=admin, json={
            "name": "bench", "entry_cost_points": 1, "max_entries_per_participant": args.tickets,
            "winners": args.winners, "alternates": args.alternates, "closes_at": closes_at})
        assert created.status_code == 201, created.text
        sid = created.json()["id"]
        started = time.perf_counter()
        asyncio.run(seed(stack.valkey.url, program["program_id"], sid, args.entrants, args.tickets))
        print(f"seeded {args.entrants:,} entrants / {args.tickets:,} tickets into Valkey in "
              f"{time.perf_counter() - started:.1f} s", flush=True)
        pid = server_pid(int(stack.url.rsplit(":", 1)[1]))
        before = vm_hwm_mb(pid)
        print(f"server peak RSS before close       {before:8.1f} MB", flush=True)

        started = time.perf_counter()
        closed = http.post(f"/v1/sweepstakes/{sid}/close", headers=admin)
        close_s = time.perf_counter() - started
        assert closed.status_code == 200, closed.text
        print(f"close (HTTP)               {close_s:8.3f} s   server peak RSS {vm_hwm_mb(pid):8.1f} MB", flush=True)
        started = time.perf_counter()
        drawn = http.post(f"/v1/sweepstakes/{sid}/draw", headers=admin, json={"beacon": BEACON})
        draw_s = time.perf_counter() - started
        assert drawn.status_code == 200, drawn.text
        peak = vm_hwm_mb(pid)
        print(f"draw (HTTP)                {draw_s:8.3f} s   server peak RSS {peak:8.1f} MB", flush=True)
        print(f"close + draw               {close_s + draw_s:8.3f} s   (target < 10 s); server peak RSS "
              f"{peak:.1f} MB (target < 1024 MB)", flush=True)

        proof = drawn.json()
        entries = http.get(f"/v1/public/sweepstakes/{sid}/entries.csv").content
        assert hashlib.sha256(entries).hexdigest() == closed.json()["entries_hash"] == proof["entries_hash"]
        assert (proof["entrants"], proof["total_tickets"]) == (args.entrants, args.tickets)
        started = time.perf_counter()
        result = verify_sweepstakes_proof(proof, entries)
        print(f"offline verification       {time.perf_counter() - started:8.3f} s   ok={result.ok} "
              f"{result.problems[:3]}", flush=True)
        print(f"entries file               {len(entries) / 1e6:8.1f} MB; winners {proof['winners'][:3]}...")
        if not result.ok or close_s + draw_s >= 10 or peak >= 1024:
            raise SystemExit(1)


if __name__ == "__main__":
    main()
