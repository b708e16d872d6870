"""Telling every process that a program changed (Redis pub/sub), so each drops its cached
view of it (programs/programs.py) at once instead of when the view expires.

An announcement is a hint, not the record: SQL is. A process that misses one (its
subscription was down) would keep an old view only until it expires, and it also drops every
view it holds each time it (re)subscribes, since what was announced meanwhile is lost.
Classic pub/sub reaches every node of a Redis Cluster, so the follower listens on a plain
connection to the node `REDIS_URL` names.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import RedisError

CHANNEL = "rw:program-changed"
log = logging.getLogger("rw.programs")


async def announce(client: Any, program_id: str) -> None:
    """After a change is in SQL. A failure is logged: views still expire on their own."""
    try:
        await client.publish(CHANNEL, program_id)
    except (RedisError, OSError):
        log.warning("program %s changed but the announcement failed; other processes see it when their "
                    "view expires", program_id, exc_info=True)


async def follow(url: str, stop: asyncio.Event, forget: Callable[[str], None], forget_all: Callable[[], None],
                 retry_seconds: float = 1.0) -> None:
    """Calls `forget` with each announced program until `stop` is set, and `forget_all` on
    every (re)subscription; reconnects after a failure."""
    while not stop.is_set():
        connection = aioredis.Redis.from_url(url)
        try:
            async with connection.pubsub() as pubsub:
                await pubsub.subscribe(CHANNEL)
                forget_all()  # announcements made while unsubscribed are lost
                while not stop.is_set():
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
                    if message is not None and message.get("type") == "message":
                        data = message["data"]
                        forget(data.decode() if isinstance(data, bytes) else str(data))
        except (RedisError, OSError):
            log.warning("program announcements: subscription lost; retrying", exc_info=True)
            try:
                await asyncio.wait_for(stop.wait(), timeout=retry_seconds)
            except asyncio.TimeoutError:
                pass
        finally:
            await connection.aclose()
