"""What start-up builds lives as long as the process: the collector leaves it alone."""

from __future__ import annotations

import gc
from typing import Any

from tests.factories import another_worker


async def test_start_up_objects_are_frozen_while_the_app_runs_and_released_at_its_end(settings: Any,
                                                                                      migrated: None) -> None:
    # A full collection walked every module, route and schema the app built, each time the
    # collector ran under load: about a tenth of a wallet read's CPU and most of its p99
    # (bench/ab.py, README "Performance").
    gc.unfreeze()
    async with another_worker(settings) as app:
        assert (await app.get("/health")).status_code == 200
        assert gc.get_freeze_count() > 10_000
    assert gc.get_freeze_count() == 0
