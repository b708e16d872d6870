"""The `Idempotency-Key` header, as CONTRACT.md fixes it, for every point-moving POST.

The header is validated here and turned into an `Idem`: where the result is recorded
(per calling principal, under the program's hash tag) and the request's fingerprint
(method, path and the body in canonical JSON, so whitespace or key order do not matter).

Wallet operations record their result inside the same Redis function that applies them,
so a retry can never apply twice. Operations of several steps (an SQL write and a hold)
use `in_flight` first: an atomic marker that makes a concurrent duplicate answer 409
`idempotency_key_in_flight` (with `Retry-After`) while the first is running. The marker
lives a few seconds and the running request keeps renewing it, so a request that died
(a crashed worker) blocks its retries for seconds, not a minute.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import re
import secrets
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

import msgspec
from litestar import Request
from litestar.exceptions import ValidationException
from litestar.params import Parameter

from api.auth import Principal
from wallet import keys
from wallet.ids import new_id
from wallet.replies import reply_text
from wallet.errors import IdempotencyKeyInFlight, IdempotencyKeyReused
from wallet.store import Idem

HEADER = "Idempotency-Key"
_VALID = re.compile(r"^[\x20-\x7e]{1,255}$")
# How long an in-flight marker outlives the last sign of life of its request: a crashed
# request's retries wait at most this long. A live one renews it every third of it.
IN_FLIGHT_TTL_MS = 6_000
HEARTBEAT_SECONDS = IN_FLIGHT_TTL_MS / 3000
# Drop or renew a marker only while it is still this request's (never a recorded result,
# never a retry's marker that took over after this one lapsed).
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"
_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"


def fingerprint(method: str, path: str, body: bytes) -> str:
    try:
        canonical = msgspec.json.encode(msgspec.json.decode(body), order="sorted") if body else b""
    except (msgspec.DecodeError, RecursionError):
        # Not JSON (or nested too deep to decode): the bytes themselves are the request;
        # the body's own decoding answers the caller why.
        canonical = body
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + canonical).hexdigest()


def header_value(request: Request[Any, Any, Any]) -> str:
    value = request.headers.get(HEADER)
    if value is None:
        raise ValidationException(
            f"the {HEADER} header is required on this endpoint",
            extra=[{"key": HEADER, "source": "header", "message": "required (1..255 printable ASCII)"}],
        )
    if not _VALID.match(value):
        raise ValidationException(
            f"{HEADER} must be 1..255 printable ASCII characters",
            extra=[{"key": HEADER, "source": "header", "message": "must be 1..255 printable ASCII"}],
        )
    return value


def idem_for(principal: Principal, value: str, method: str, path: str, body: bytes) -> Idem:
    program = principal.program_id or "operator"
    return Idem(key=keys.idempotency(program, principal.idempotency_scope, value),
                fingerprint=fingerprint(method, path, body))


async def provide_idem(
    request: Request[Any, Any, Any],
    idempotency_key: Annotated[
        str,
        Parameter(header=HEADER, min_length=1, max_length=255, pattern=r"^[\x20-\x7e]+$",
                  description="1..255 printable ASCII; a retry with the same key and body replays the first "
                              "answer (remembered for at least 24 hours)"),
    ],
) -> Idem:
    """Dependency for point-moving POSTs: the validated header as an `Idem`."""
    value = header_value(request)
    principal = request.user
    assert isinstance(principal, Principal)
    return idem_for(principal, value, request.method, request.url.path, await request.body())


def item_idem(principal: Principal, scope: str, item_key: str, body: bytes) -> Idem:
    """An idempotency record for one item of a batch, keyed by the item's own id."""
    program = principal.program_id or "operator"
    return Idem(key=keys.idempotency(program, f"{principal.idempotency_scope}:{scope}", item_key),
                fingerprint=hashlib.sha256(body).hexdigest())


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


async def pinned_id(client: Any, idem: Idem, prefix: str, ttl: int) -> str:
    """An id chosen once per idempotency key, before anything is written: a retry after a
    crash (its marker lapsed, nothing recorded) writes under the same id instead of a new one."""
    name = idem.key + ":id"  # same hash tag as the record
    await client.set(name, new_id(prefix), nx=True, ex=ttl)
    return reply_text(await client.get(name))


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


async def once(client: Any, idem: Idem, ttl: int, action: Callable[[], Awaitable[tuple[int, Any]]]
               ) -> tuple[int, Any, bool]:
    """Runs a multi-step `action` at most once per key: answers (status, body, replayed).

    A concurrent duplicate gets 409 in flight; a failure that changed nothing releases the
    key so a retry may run; a success is recorded with its status and body for replays.
    """
    marker = _marker(idem)
    recorded = await in_flight(client, idem, marker)
    if recorded is not None:
        return int(recorded["status"]), recorded["body"], True
    done = asyncio.Event()
    heartbeat = asyncio.create_task(_keep_alive(client, idem, marker, done))
    _HEARTBEATS.add(heartbeat)  # the loop keeps only a weak reference to a task
    heartbeat.add_done_callback(_HEARTBEATS.discard)
    try:
        status, body = await action()
    except Exception:
        await release(client, idem, marker)
        raise
    finally:  # also when the request is cancelled: a dead request's marker must lapse
        done.set()
    await record(client, idem, {"status": status, "body": msgspec.to_builtins(body)}, ttl)
    return status, body, False
