"""Concurrent requests' Redis calls go out together (kernel/coalesce.py): one pipeline write
per turn of the event loop, and each caller still gets its own reply or its own error."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from redis.asyncio.connection import AbstractConnection
from redis.exceptions import ResponseError

from tests.factories import random_ref
from kernel.coalesce import Coalescer
from kernel.redis_functions import connect


@pytest.fixture
async def client(valkey_url: str) -> Any:
    redis = connect(valkey_url)
    yield redis
    await redis.aclose()


async def test_calls_made_in_one_turn_share_one_write_and_each_gets_its_reply(client, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    key = random_ref("coalesce")
    writes: list[int] = []
    send = AbstractConnection.send_packed_command

    async def counting(self: Any, command: Any, check_health: bool = True) -> None:
        # Only this test's writes: the session's app shares the loop (its projector polls).
        packed = b"".join(bytes(part) for part in (command if isinstance(command, list) else [command]))
        if key.encode() in packed:
            writes.append(packed.count(key.encode()))
        return await send(self, command, check_health)

    coalescer = Coalescer(client)
    await coalescer.execute("SET", key, 0)  # the pool's connection is open before counting
    monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
    replies = await asyncio.gather(*[coalescer.execute("INCR", key) for _ in range(50)])
    assert sorted(replies) == list(range(1, 51))
    assert writes == [50]  # one write holding the 50 commands


async def test_one_calls_error_is_its_own(client) -> None:  # type: ignore[no-untyped-def]
    key = random_ref("coalesce")
    coalescer = Coalescer(client)
    results = await asyncio.gather(coalescer.execute("INCR", key), coalescer.execute("FCALL", "rw_no_such", 0),
                                   coalescer.execute("INCR", key), return_exceptions=True)
    assert results[0] in (1, 2) and results[2] in (1, 2) and results[0] != results[2]
    assert isinstance(results[1], ResponseError)
    # Alone in its turn, an error is still the caller's, and the next call is unaffected.
    with pytest.raises(ResponseError):
        await coalescer.execute("FCALL", "rw_no_such", 0)
    assert await coalescer.execute("INCR", key) == 3


async def test_a_server_that_is_gone_fails_every_call_of_the_turn_with_the_connection_error() -> None:
    from redis.exceptions import ConnectionError

    broken = connect("redis://127.0.0.1:1/0")  # nothing listens there
    try:
        coalescer = Coalescer(broken)
        results = await asyncio.gather(*[coalescer.execute("PING") for _ in range(3)], return_exceptions=True)
        assert all(isinstance(r, (ConnectionError, OSError)) for r in results), results
    finally:
        await broken.aclose()
