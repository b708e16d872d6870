"""The test session's SQL store stays up for the whole session.

On the Postgres pass, a Postgres whose data directory its own user could no longer reach
(the embedded Valkey made the shared session folder 0700) PANICked at its first checkpoint
and took every later test down with `Connection refused`.
"""

from __future__ import annotations

import os

import pytest

pytestmark = [
    pytest.mark.sql,
    pytest.mark.skipif(os.environ.get("RW_TEST_DB") != "postgres", reason="the Postgres pass"),
]


async def test_postgres_checkpoints_and_answers_after_the_app_has_started(client) -> None:  # type: ignore[no-untyped-def]
    from piccolo.engine import engine_finder

    engine = engine_finder()
    assert engine is not None
    await engine.run_ddl("CHECKPOINT")  # what the checkpointer does every five minutes, now
    assert [dict(row) for row in await engine.run_ddl("SELECT 1 AS alive")] == [{"alive": 1}]
    assert (await client.get("/ready")).status_code == 200
