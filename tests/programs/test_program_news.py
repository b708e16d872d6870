"""The program-news follower: every process hears that a program changed, and stops at once
when its process does (every app stop waited for its poll before)."""

from __future__ import annotations

import asyncio

from kernel.redis_functions import connect
from programs.program_news import CHANNEL, announce, follow
from tests.factories import wait_until


async def test_the_follower_hears_a_change_and_ends_when_stopped_without_waiting_out_its_poll(
        private_valkey: str) -> None:
    heard: list[str] = []
    subscribed = asyncio.Event()
    stop = asyncio.Event()
    following = asyncio.create_task(follow(private_valkey, stop, heard.append, subscribed.set, poll_seconds=60))
    client = connect(private_valkey)
    async def subscribers() -> int:
        return int((await client.pubsub_numsub(CHANNEL))[0][1])

    try:
        await asyncio.wait_for(subscribed.wait(), timeout=30)
        assert await wait_until(subscribers, 1) == 1
        await announce(client, "prg_changed")

        async def what_was_heard() -> list[str]:
            return heard

        assert await wait_until(what_was_heard, ["prg_changed"]) == ["prg_changed"]
        stop.set()
        # Its poll would wait a minute: ended long before, its connection closed.
        await asyncio.wait_for(following, timeout=20)
        # Valkey drops a closed connection's subscription at its next turn.
        assert await wait_until(subscribers, 0) == 0
    finally:
        stop.set()
        following.cancel()
        await asyncio.gather(following, return_exceptions=True)
        await client.aclose()
