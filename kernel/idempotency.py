"""Idempotency: where a call records its result (`Idem`), and operations of several steps
(an SQL write and a hold, a claim, a funding) run at most once per idempotency key, with ids
pinned per key.

Redis functions record their result inside the same call that applies them (the library's
prelude, kernel/prelude.lua: idem_check, idem_store), so a retry can never apply twice.
Operations of several steps use `once`: an atomic marker
(`in_flight`) makes a concurrent duplicate fail with `idempotency_key_in_flight` while the
first runs; the marker lives a few seconds and the running request keeps renewing it, so a
request that died (a crashed worker) blocks its retries for seconds, not a minute. An id
chosen once per key (`pinned_id`), before anything is written, lets a retry after such a
crash carry the same order or claim on instead of making a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import secrets
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

import msgspec

from kernel.errors import IdempotencyKeyInFlight, IdempotencyKeyReused
from kernel.ids import new_id
from kernel.replies import reply_text

T = TypeVar("T")


class Idem(msgspec.Struct, frozen=True):
    """Where a call records its result: the key (kernel/keys.py `idempotency`) and the
    request's fingerprint."""

    key: str = ""
    fingerprint: str = ""


NO_IDEM = Idem()

# How long an in-flight marker outlives the last sign of life of its request: a crashed
# request's retries wait at most this long. A live one renews it every third of it.
IN_FLIGHT_TTL_MS = 6_000
HEARTBEAT_SECONDS = IN_FLIGHT_TTL_MS / 3000
# Drop or renew a marker only while it is still this request's (never a recorded result,
# never a retry's marker that took over after this one lapsed).
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"

# Set once, then read: one round trip (SET NX GET needs Redis 7; this runs on any server).
_PIN = "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'EX', ARGV[2]) then return ARGV[1] end return redis.call('GET', KEYS[1])"


class Recorded(msgspec.Struct):
    fp: str
    r: dict[str, Any] | None = None
    inflight: int | None = None


def _marker(idem: Idem) -> bytes:
    # The random token tells this request's marker from an identical retry's.
    return msgspec.json.encode({"fp": idem.fingerprint, "inflight": 1, "t": secrets.token_hex(8)})


async def in_flight(client: Any, idem: Idem, marker: bytes | None = None) -> dict[str, Any] | None:
    """Claims the key for a multi-step operation.

    Answers None when this request may run, or the recorded result of an earlier
    identical request (to replay). Raises when the key is busy or was used differently.
    """
    marker = marker or _marker(idem)
    if await client.set(idem.key, marker, nx=True, px=IN_FLIGHT_TTL_MS):
        return None
    raw = await client.get(idem.key)
    if raw is None:  # the marker expired between the two calls: try once more
        if await client.set(idem.key, marker, nx=True, px=IN_FLIGHT_TTL_MS):
            return None
        raw = await client.get(idem.key)
    record = msgspec.json.decode(raw, type=Recorded)
    if record.fp != idem.fingerprint:
        raise IdempotencyKeyReused("this Idempotency-Key was used with a different request")
    if record.r is None:
        left_ms = await client.pttl(idem.key)
        retry_after = max(1, min(math.ceil(max(left_ms, 0) / 1000), math.ceil(IN_FLIGHT_TTL_MS / 1000)))
        raise IdempotencyKeyInFlight("a request with this Idempotency-Key is still running; retry shortly",
                                     retry_after=retry_after)
    return record.r


_HEARTBEATS: set[asyncio.Task[None]] = set()


async def _keep_alive(client: Any, idem: Idem, marker: bytes, done: asyncio.Event) -> None:
    """Renews the marker while the request runs; ends when the request is done or the
    marker is no longer ours. Never cancelled mid-command: a redis-py call cancelled
    while its reply is in flight can leave its connection waiting for good."""
    while True:
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(done.wait(), HEARTBEAT_SECONDS)
        if done.is_set() or not await client.eval(_RENEW, 1, idem.key, marker, IN_FLIGHT_TTL_MS):
            return


async def pinned_id(client: Any, idem: Idem, prefix: str, ttl: int, suffix: str = "id") -> str:
    """An id chosen once per idempotency key, before anything is written: a retry after a
    crash (its marker lapsed, nothing recorded) writes under the same id instead of a new one."""
    name = f"{idem.key}:{suffix}"  # same hash tag as the record
    return reply_text(await client.eval(_PIN, 1, name, new_id(prefix), ttl))


async def peek(client: Any, idem: Idem, suffix: str = "id") -> tuple[dict[str, Any] | None, str | None]:
    """What the key already holds, in one round trip, before any work: (the recorded result
    of an earlier identical request, or None; the id `pinned_id` chose for it, or None).
    Raises when the key was used differently, or an identical request is still running."""
    found, pinned, _ = await peek_with(client, idem, suffix)
    return found, pinned


async def peek_with(client: Any, idem: Idem, suffix: str = "id",
                    also: Sequence[str] = ()) -> tuple[dict[str, Any] | None, str | None, list[Any]]:
    """`peek`, reading the keys `also` (of the same hash tag) in the same round trip: their
    values come third (None where a key is missing)."""
    raw, pinned, *more = await client.mget([idem.key, f"{idem.key}:{suffix}", *also])
    if raw is not None:
        found = msgspec.json.decode(raw, type=Recorded)
        if found.fp != idem.fingerprint:
            raise IdempotencyKeyReused("this Idempotency-Key was used with a different request")
        if found.r is None:
            raise IdempotencyKeyInFlight("a request with this Idempotency-Key is still running; retry shortly",
                                         retry_after=1)
        return found.r, None, more
    return None, None if pinned is None else reply_text(pinned), more


async def record(client: Any, idem: Idem, result: dict[str, Any], ttl: int) -> None:
    await client.set(idem.key, msgspec.json.encode({"fp": idem.fingerprint, "r": result}), ex=ttl)


async def release(client: Any, idem: Idem, marker: bytes | None = None) -> None:
    """Drops an in-flight marker after a failure that changed nothing, so a retry may run.

    With `marker`, only that request's own marker (never a retry's that took over after it lapsed)."""
    if marker is not None:
        await client.eval(_RELEASE, 1, idem.key, marker)
        return
    raw = await client.get(idem.key)
    if raw is not None and msgspec.json.decode(raw, type=Recorded).r is None:
        await client.delete(idem.key)


async def once(client: Any, idem: Idem, ttl: int, action: Callable[[], Awaitable[T]], kind: type[T],
               recorded_as: Callable[[dict[str, Any]], Awaitable[T]] | None = None) -> tuple[T, bool]:
    """Runs a multi-step `action` at most once per key: answers (its result, replayed).

    A concurrent duplicate raises IdempotencyKeyInFlight; a failure that changed nothing
    releases the key so a retry may run; a success is recorded for replays (decoded as
    `kind`). A record some other way of answering the same key wrote (a Redis function's own
    reply) is read by `recorded_as`. No HTTP here: the caller picks the status its answer
    carries.
    """
    marker = _marker(idem)
    recorded = await in_flight(client, idem, marker)
    if recorded is not None:
        # Records written before this module hold the answer as {"status", "body"}.
        if "v" in recorded or "body" in recorded or recorded_as is None:
            return msgspec.convert(recorded["v"] if "v" in recorded else recorded.get("body"), kind), True
        return await recorded_as(recorded), True
    done = asyncio.Event()
    heartbeat = asyncio.create_task(_keep_alive(client, idem, marker, done))
    _HEARTBEATS.add(heartbeat)  # the loop keeps only a weak reference to a task
    heartbeat.add_done_callback(_HEARTBEATS.discard)
    try:
        result = await action()
    except Exception:
        await release(client, idem, marker)
        raise
    finally:  # also when the request is cancelled: a dead request's marker must lapse
        done.set()
    await record(client, idem, {"v": msgspec.to_builtins(result)}, ttl)
    return result, False
