"""`reward-wallet worker` runs exactly the background tasks api/background.py declares, and
stopping it stops every one of them, the projector last (it drains what the others
journaled)."""

from __future__ import annotations

import asyncio
import time

from api import background
from api.worker import run_worker


async def test_the_worker_runs_every_declared_task_and_stops_them_all_the_projector_last(settings, migrated):  # type: ignore[no-untyped-def]
    before = asyncio.all_tasks()  # the session app's own tasks run on this loop too
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, settings.redis_url, stop, expiry_every=3600.0))

    def started() -> list[asyncio.Task[object]]:
        return [t for t in asyncio.all_tasks() - before if t.get_name().startswith("rw-")]

    deadline = time.monotonic() + 30  # a bound on waiting, not a figure under test
    while len(started()) < len(background.TASKS) and not worker.done() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    tasks = started()
    assert sorted(t.get_name() for t in tasks) == sorted(f"rw-{task.name}" for task in background.TASKS)
    ended: list[str] = []
    for task in tasks:
        task.add_done_callback(lambda t: ended.append(t.get_name()))

    stop.set()
    await asyncio.wait_for(worker, timeout=60)
    assert all(t.done() for t in tasks)
    assert started() == []  # none left running
    assert ended[-1] == "rw-projector" and sorted(ended) == sorted(t.get_name() for t in tasks)
