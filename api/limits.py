"""Rate limits and response hardening: per-IP and per-principal request budgets counted in
Redis, and the security headers every answer carries.

Why not Litestar's `RateLimitMiddleware` as is: it keeps a JSON list of every request's
timestamp per client (a 12,000-request budget means decoding and re-encoding 12,000 numbers
on each request), serialises every request of a process behind one lock, and reads then
writes the list, so N workers can each let the full budget through. Here one pipelined
`INCR` + `EXPIRE NX` per budget counts a fixed window atomically on the shared Redis: every
worker and machine sees the same count, and the cost is one round trip whatever the limit.
The answer keeps Litestar's conventions: `TooManyRequestsException` (a `429 rate_limited`
problem document through api/problems.py) with `Retry-After` and the draft `RateLimit-*`
headers.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from litestar.exceptions import TooManyRequestsException
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import Principal

KEY_PREFIX = "rw:rl:"


@dataclass(frozen=True)
class Budget:
    """`limit` requests per `window` seconds for each identifier `identify` answers (None: not counted)."""

    name: str
    limit: int
    window: int
    identify: Callable[[Scope], str | None]


def client_ip(scope: Scope) -> str | None:
    # uvicorn has already replaced this with X-Forwarded-For when the peer is a trusted proxy
    # (FORWARDED_ALLOW_IPS); the header itself is never trusted here.
    client = scope.get("client")
    return client[0] if client else "unknown"


def principal_id(scope: Scope) -> str | None:
    user = scope.get("user")
    if not isinstance(user, Principal):
        return None
    return user.kind if user.kind == "operator" else f"{user.kind}:{user.subject_id}"


def only_path(pattern: str, identify: Callable[[Scope], str | None]) -> Callable[[Scope], str | None]:
    compiled = re.compile(pattern)

    def for_path(scope: Scope) -> str | None:
        return identify(scope) if compiled.search(scope["path"]) else None

    return for_path


class RateLimiter:
    """Counts requests against budgets in Redis; answers 429 once a budget is spent."""

    def __init__(self, budgets: list[Budget], exclude: list[str] | None = None) -> None:
        self.budgets = [b for b in budgets if b.limit > 0]
        self.exclude = re.compile("|".join(exclude)) if exclude else None

    def middleware(self, app: ASGIApp) -> ASGIApp:
        if not self.budgets:
            return app

        async def limit(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or (self.exclude and self.exclude.search(scope["path"])):
                await app(scope, receive, send)
                return
            redis = scope["litestar_app"].state.redis
            now = time.time()
            counted: list[tuple[Budget, str, int]] = []
            pipe = redis.pipeline(transaction=False)
            for budget in self.budgets:
                identifier = budget.identify(scope)
                if identifier is None:
                    continue
                window = int(now // budget.window)
                key = f"{KEY_PREFIX}{budget.name}:{budget.window}:{identifier}:{window}"
                pipe.incr(key)
                # NX: the first request of a window sets its end; later ones leave it.
                pipe.expire(key, budget.window + 1, nx=True)
                counted.append((budget, key, window))
            if not counted:
                await app(scope, receive, send)
                return
            replies = await pipe.execute()
            tightest: tuple[int, int, float] | None = None  # remaining, limit, reset seconds
            for index, (budget, _key, window) in enumerate(counted):
                used = int(replies[2 * index])
                reset = (window + 1) * budget.window - now
                if used > budget.limit:
                    retry_after = max(1, math.ceil(reset))
                    raise TooManyRequestsException(
                        detail=f"more than {budget.limit} requests in {budget.window} s ({budget.name}); "
                               f"retry after {retry_after} s",
                        headers={
                            "Retry-After": str(retry_after),
                            "RateLimit-Limit": str(budget.limit),
                            "RateLimit-Remaining": "0",
                            "RateLimit-Reset": str(retry_after),
                            "RateLimit-Policy": f"{budget.limit};w={budget.window}",
                        },
                    )
                remaining = budget.limit - used
                if tightest is None or remaining < tightest[0]:
                    tightest = (remaining, budget.limit, reset)
            assert tightest is not None
            headers = [
                (b"ratelimit-limit", str(tightest[1]).encode()),
                (b"ratelimit-remaining", str(tightest[0]).encode()),
                (b"ratelimit-reset", str(max(1, math.ceil(tightest[2]))).encode()),
            ]

            async def send_with_headers(message: Message) -> None:
                if message["type"] == "http.response.start":
                    existing = list(message.get("headers", []))
                    # Two limiters (address, principal) answer one set of headers: the tighter.
                    theirs = next((int(v) for k, v in existing if k == b"ratelimit-remaining"), None)
                    if theirs is None or tightest[0] < theirs:
                        existing = [(k, v) for k, v in existing if not k.startswith(b"ratelimit-")]
                        existing += headers
                    message["headers"] = existing
                await send(message)

            await app(scope, receive, send_with_headers)

        return limit


# --- security headers ---------------------------------------------------------------------

API_CSP = b"default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
# The /schema pages (Swagger UI, Scalar) load their script and styles from jsDelivr/unpkg.
DOCS_CSP = (b"default-src 'none'; script-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://unpkg.com; "
            b"style-src 'self' 'unsafe-inline' https://cdn.jsdelivr.net https://unpkg.com https://fonts.googleapis.com; "
            b"img-src 'self' data: https:; font-src 'self' data: https://fonts.gstatic.com https://cdn.jsdelivr.net; "
            b"connect-src 'self'; frame-ancestors 'none'; base-uri 'none'")


def security_headers(hsts_seconds: int) -> Callable[[Message, Scope], Any]:
    """A `before_send` hook (it sees every answer, 404s of unknown paths included)."""
    fixed = [
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
        (b"cross-origin-resource-policy", b"same-origin"),
    ]
    if hsts_seconds:
        fixed.append((b"strict-transport-security", f"max-age={hsts_seconds}; includeSubDomains".encode()))

    async def add_headers(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start" or scope["type"] != "http":
            return
        headers = list(message.get("headers", []))
        present = {name.lower() for name, _ in headers}
        docs = scope["path"].startswith("/schema")
        headers += [(name, value) for name, value in fixed if name not in present]
        if b"content-security-policy" not in present:
            headers.append((b"content-security-policy", DOCS_CSP if docs else API_CSP))
        # An answer for a bearer of credentials is theirs alone: no shared or browser cache.
        # Routes that choose their own policy (the catalog's ETag revalidation) keep it.
        if b"cache-control" not in present and _has_authorization(scope):
            headers.append((b"cache-control", b"no-store"))
        message["headers"] = headers

    return add_headers


def _has_authorization(scope: Scope) -> bool:
    return any(name == b"authorization" for name, _ in scope.get("headers", ()))


__all__ = ["Budget", "RateLimiter", "client_ip", "principal_id", "only_path", "security_headers"]
