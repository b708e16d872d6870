"""Console sessions in Redis: an opaque random id in the browser's cookie (only its SHA-256
is a key here), the person, a CSRF token for their forms, idle and absolute expiry, and
"sign out everywhere". Failed sign-ins are counted per address and per email."""

from __future__ import annotations

import hmac
import secrets
import time
from typing import Any

import msgspec

from programs import keys
from programs.credentials import hash_secret

IDLE_SECONDS = 30 * 60
ABSOLUTE_SECONDS = 12 * 3600
# Failed sign-ins allowed per window, per address and per email; then every attempt is
# refused until the window ends, the right password included.
FAILURE_WINDOW = 15 * 60
FAILURES_PER_ADDRESS = 20
FAILURES_PER_EMAIL = 5


class ConsoleSession(msgspec.Struct, frozen=True):
    user_id: str
    csrf: str
    started: float


async def start(redis: Any, user_id: str) -> str:
    """A new session; answers the cookie value (shown to no one else, stored hashed)."""
    session_id = secrets.token_urlsafe(32)
    digest = hash_secret(session_id)
    key = keys.console_session(digest)
    await redis.hset(key, mapping={"user_id": user_id, "csrf": secrets.token_urlsafe(32),
                                   "started": repr(time.time())})
    await redis.expire(key, IDLE_SECONDS)
    await redis.sadd(keys.console_user_sessions(user_id), digest)
    await redis.expire(keys.console_user_sessions(user_id), ABSOLUTE_SECONDS)
    return session_id


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def load(redis: Any, session_id: str | None) -> ConsoleSession | None:
    """The live session behind a cookie value, its idle clock reset; None when unknown or
    expired (an expired one is deleted)."""
    if not session_id or len(session_id) > 200:
        return None
    key = keys.console_session(hash_secret(session_id))
    raw = await redis.hgetall(key)
    if not raw:
        return None
    fields = {_text(k): _text(v) for k, v in raw.items()}
    session = ConsoleSession(user_id=fields["user_id"], csrf=fields["csrf"], started=float(fields["started"]))
    left = session.started + ABSOLUTE_SECONDS - time.time()
    if left <= 0:
        await redis.delete(key)
        return None
    await redis.expire(key, max(1, int(min(IDLE_SECONDS, left))))
    return session


def csrf_ok(session: ConsoleSession, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(session.csrf.encode(), (presented or "").encode())


async def end(redis: Any, session_id: str | None) -> None:
    if not session_id or len(session_id) > 200:
        return
    digest = hash_secret(session_id)
    raw = await redis.hget(keys.console_session(digest), "user_id")
    await redis.delete(keys.console_session(digest))
    if raw:
        await redis.srem(keys.console_user_sessions(_text(raw)), digest)


async def end_all(redis: Any, user_id: str) -> int:
    """Ends every session of the person; answers how many were live."""
    members = await redis.smembers(keys.console_user_sessions(user_id))
    ended = 0
    for digest in members:
        ended += await redis.delete(keys.console_session(_text(digest)))
    await redis.delete(keys.console_user_sessions(user_id))
    return ended


def _failure_keys(address: str, email: str) -> list[tuple[str, int]]:
    number = int(time.time() // FAILURE_WINDOW)
    return [
        (keys.console_sign_in_failures("ip:" + hash_secret(address)[:32], FAILURE_WINDOW, number), FAILURES_PER_ADDRESS),
        (keys.console_sign_in_failures("em:" + hash_secret(email.strip().lower())[:32], FAILURE_WINDOW, number),
         FAILURES_PER_EMAIL),
    ]


async def sign_in_blocked(redis: Any, address: str, email: str) -> bool:
    """Whether the address or the email has used up its failed sign-ins for this window."""
    for key, limit in _failure_keys(address, email):
        count = await redis.get(key)
        if count is not None and int(count) >= limit:
            return True
    return False


async def count_failure(redis: Any, address: str, email: str) -> None:
    for key, _ in _failure_keys(address, email):
        if await redis.incr(key) == 1:
            await redis.expire(key, FAILURE_WINDOW + 1)


# Password-reset mails asked for, per window: enough for a lost first mail, too few to
# flood a person's inbox or to spam from one address.
RESETS_PER_EMAIL = 3
RESETS_PER_ADDRESS = 20


async def reset_allowed(redis: Any, address: str, email: str) -> bool:
    """Counts this request for a reset link and says whether it is within the limits."""
    number = int(time.time() // FAILURE_WINDOW)
    counters = [
        (keys.console_sign_in_failures("rip:" + hash_secret(address)[:32], FAILURE_WINDOW, number), RESETS_PER_ADDRESS),
        (keys.console_sign_in_failures("rem:" + hash_secret(email.strip().lower())[:32], FAILURE_WINDOW, number),
         RESETS_PER_EMAIL),
    ]
    allowed = True
    for key, limit in counters:
        count = await redis.incr(key)
        if count == 1:
            await redis.expire(key, FAILURE_WINDOW + 1)
        allowed = allowed and count <= limit
    return allowed
