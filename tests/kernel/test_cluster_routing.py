"""The product's cluster client (kernel/cluster.py) routes a journal read by the stream it
names, as it routes a function call by its keys: no node is asked where the key lives
(redis-py asks with COMMAND GETKEYS, a round trip before each read of the projector's pass)."""

from __future__ import annotations

from typing import Any

import pytest
import redis.asyncio as aioredis

from kernel.redis_functions import connect
from tests.factories import random_ref
from wallet import keys


async def test_a_journal_read_on_the_cluster_asks_no_node_where_its_stream_lives(
        valkey_cluster_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client = connect(valkey_cluster_url, cluster=True)
    program = random_ref("prg")
    stream = keys.journal(program)
    try:
        await client.xadd(stream, {"n": "1"})
        await client.xgroup_create(stream, "routing", id="0")

        async def asked(self: Any, command: str, *args: Any) -> int:
            raise AssertionError(f"asked a node where the keys of {command} live")

        # The library's own routing, the one that asks a node, made to fail when used (redis-py
        # does not always take it for a stock client: the test asserts only that ours never does).
        monkeypatch.setattr(aioredis.RedisCluster, "_determine_slot", asked)
        [[name, messages]] = await client.xreadgroup("routing", "c", {stream: ">"}, count=10)
        assert name.decode() == stream and len(messages) == 1
        pipe = client.pipeline(transaction=False)
        pipe.xreadgroup("routing", "c", {stream: ">"}, count=10)
        assert await pipe.execute() == [[]]
    finally:
        monkeypatch.undo()
        await client.delete(stream)
        await client.aclose()
