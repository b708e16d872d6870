"""What start-up builds lives as long as the process: the collector leaves it alone."""

from __future__ import annotations

import gc
from typing import Any

import msgspec
from litestar.testing import AsyncTestClient

from api.app import create_app
from kernel import heap
from tests.factories import another_worker


async def test_start_up_objects_are_frozen_while_the_app_runs_and_released_at_its_end(settings: Any,
                                                                                      migrated: None) -> None:
    # A full collection walked every module, route and schema the app built, each time the
    # collector ran under load: most of a wallet read's p99 (kernel/heap.py, bench/HISTORY.md).
    gc.unfreeze()
    before = gc.get_threshold()
    tuned = msgspec.structs.replace(settings, journal_consumer=False, background_tasks=False)
    # As a uvicorn worker builds it (api/asgi.py): the process's only app.
    async with AsyncTestClient(app=create_app(tuned, owns_process=True), base_url="http://rw.test") as app:
        assert (await app.get("/health")).status_code == 200
        assert gc.get_freeze_count() > 10_000
        assert gc.get_threshold()[0] == heap.YOUNG
    assert gc.get_freeze_count() == 0
    assert gc.get_threshold() == before


async def test_an_app_that_shares_its_process_leaves_the_collector_alone(settings: Any, migrated: None) -> None:
    # A test session starts hundreds of apps in one process: settling each would be a full
    # collection of everything the session holds.
    gc.unfreeze()
    before = gc.get_threshold()
    async with another_worker(settings) as app:
        assert (await app.get("/health")).status_code == 200
        assert gc.get_freeze_count() == 0
        assert gc.get_threshold() == before
