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
                 retry_seconds: float = 1.0, poll_seconds: float = 1.0) -> None:
    """Calls `forget` with each announced program until `stop` is set, and `forget_all` on
    every (re)subscription; reconnects after a failure. Ends as soon as `stop` is set, not at
    the end of its wait for a message: every process, and every app of a test session, waited
    up to `poll_seconds` for it when stopping."""
    stopped = asyncio.ensure_future(stop.wait())
    try:
        while not stop.is_set():
            connection = aioredis.Redis.from_url(url)
            try:
                async with connection.pubsub() as pubsub:
                    await pubsub.subscribe(CHANNEL)
                    forget_all()  # announcements made while unsubscribed are lost
                    while not stop.is_set():
                        message = await _next_message(pubsub, stopped, poll_seconds)
                        if message is not None and message.get("type") == "message":
                            data = message["data"]
                            forget(data.decode() if isinstance(data, bytes) else str(data))
            except (RedisError, OSError):
                log.warning("program announcements: subscription lost; retrying", exc_info=True)
                await asyncio.wait({stopped}, timeout=retry_seconds)
            finally:
                await connection.aclose()
    finally:
        stopped.cancel()


async def _next_message(pubsub: Any, stopped: asyncio.Future[Any], poll_seconds: float) -> Any:
    """The next message, None after `poll_seconds` without one or once `stopped` is done (the
    read is then given up: its connection is closed next)."""
    reading = asyncio.ensure_future(pubsub.get_message(ignore_subscribe_messages=True, timeout=poll_seconds))
    # Its error is raised below, or dropped with the connection when this task is cancelled:
    # either way asyncio must not log it as never retrieved.
    reading.add_done_callback(lambda done: done.cancelled() or done.exception())
    try:
        await asyncio.wait({reading, stopped}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if not reading.done():
            reading.cancel()
            await asyncio.wait({reading})  # a cancel of this task itself still propagates
    return None if reading.cancelled() else reading.result()
