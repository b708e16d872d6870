"""Rate limits and response hardening: per-IP and per-principal request budgets counted in
Redis, and the security headers every answer carries.

Why not Litestar's `RateLimitMiddleware` as is: it keeps a JSON list of every request's
timestamp per client (a 12,000-request budget means decoding and re-encoding 12,000 numbers
on each request), serialises every request of a process behind one lock, and reads then
writes the list, so N workers can each let the full budget through. Here one small Lua
script (`INCR`, `EXPIRE` on a window's first request) counts fixed windows atomically on the
shared Redis: every worker and machine sees the same count, and the cost is one round trip
whatever the limit.
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

from litestar.exceptions import NotAuthorizedException, TooManyRequestsException
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import Principal

KEY_PREFIX = "rw:rl:"

# KEYS: one counter per budget, all of one client (same hash tag). ARGV: each one's TTL.
# Answers the counts after this request. The counters are not written to the AOF nor sent
# to replicas (REPL_NONE): with `appendfsync always` every replicated write waits for an
# fsync (counting with replicated writes, a worker served 600-700 requests/s where it served
# 1,050 without limits); a budget that restarts from zero after a Redis restart is harmless.
COUNT_LUA = """
redis.set_repl(redis.REPL_NONE)
local counts = {}
for i, key in ipairs(KEYS) do
  local n = redis.call('INCR', key)
  if n == 1 then redis.call('EXPIRE', key, ARGV[i]) end
  counts[i] = n
end
return counts
"""


@dataclass(frozen=True)
class Budget:
    """`limit` requests per `window` seconds for each client (0: no limit)."""

    name: str
    limit: int
    window: int


def client_ip(scope: Scope) -> str:
    # uvicorn has already replaced this with X-Forwarded-For when the peer is a trusted proxy
    # (FORWARDED_ALLOW_IPS); the header itself is never trusted here.
    client = scope.get("client")
    return client[0] if client else "unknown"


def principal_id(scope: Scope) -> str | None:
    """`kind:id` of an authenticated caller: a key id or participant id, never a secret."""
    user = scope.get("user")
    if not isinstance(user, Principal):
        return None
    return user.kind if user.kind == "operator" else f"{user.kind}:{user.subject_id}"


class RateLimits:
    """One budget per request, one Redis round trip: an authenticated request counts against
    its principal (an address shared by many consoles or a CRM's NAT is not one client);
    a public request (no credentials needed) counts against the client address, a request
    whose credentials fail against the address's small budget of failures, and the refresh
    endpoint also against its own tight budget.

    `before_auth` wraps the authentication middleware and `after_auth` sits inside it.
    Failed credentials are counted once they fail; an address over its budget is then
    refused in this process before authentication runs, until its window ends, without a
    Redis call (each worker learns it from the shared count at its next failure)."""

    def __init__(self, *, per_ip: Budget, per_principal: Budget, refresh: Budget, refresh_path: str,
                 public_paths: list[str], unlimited_paths: list[str], failures: Budget | None = None) -> None:
        self.per_ip = per_ip
        # Failing credentials: a budget of its own, small (guessing keys), where per_ip is
        # sized for public reads.
        self.failures = failures or per_ip
        self.per_principal = per_principal
        self.refresh = refresh
        self.refresh_path = re.compile(refresh_path)
        self.public = re.compile("|".join(public_paths))
        self.unlimited = re.compile("|".join(unlimited_paths))
        self.blocked: dict[str, float] = {}  # address -> when its window ends (time.time())
        self._script: Any = None  # registered on first use (it needs the app's client)

    def before_auth(self, app: ASGIApp) -> ASGIApp:
        async def limit_addresses(scope: Scope, receive: Receive, send: Send) -> None:
            path = scope["path"]
            if scope["type"] != "http" or self.unlimited.search(path):
                await app(scope, receive, send)
                return
            address = client_ip(scope)
            if self.public.search(path):
                budgets = [self.per_ip]
                if self.refresh_path.search(path):
                    budgets.append(self.refresh)
                send = await self._count(scope, send, address, budgets)
                await app(scope, receive, send)
                return
            until = self.blocked.get(address)
            if until is not None:
                if until > time.time():
                    raise self._refusal(self.failures, until - time.time())
                del self.blocked[address]
            try:
                await app(scope, receive, send)
            except NotAuthorizedException:
                # Counted only now: a request that authenticates never touches this budget.
                await self._count(scope, send, address, [self.failures], failure=True)
                raise

        return limit_addresses if self.per_ip.limit or self.refresh.limit or self.failures.limit else app

    def after_auth(self, app: ASGIApp) -> ASGIApp:
        async def limit_principals(scope: Scope, receive: Receive, send: Send) -> None:
            principal = principal_id(scope) if scope["type"] == "http" else None
            if principal is not None and not self.unlimited.search(scope["path"]):
                send = await self._count(scope, send, principal, [self.per_principal])
            await app(scope, receive, send)

        return limit_principals if self.per_principal.limit else app

    async def _count(self, scope: Scope, send: Send, client: str, budgets: list[Budget],
                     failure: bool = False) -> Send:
        """Counts one request of `client` against `budgets`; raises 429 if one is spent, else
        answers `send` wrapped to add the tightest budget's RateLimit-* headers."""
        budgets = [b for b in budgets if b.limit]
        if not budgets:
            return send
        redis = scope["litestar_app"].state.redis
        if self._script is None:
            self._script = redis.register_script(COUNT_LUA)
        now = time.time()
        windows = [int(now // b.window) for b in budgets]
        # The client is the hash tag: one request's counters share a cluster slot.
        names = [f"{KEY_PREFIX}{{{client}}}:{b.name}:{b.window}:{w}" for b, w in zip(budgets, windows)]
        counts = await self._script(keys=names, args=[b.window + 1 for b in budgets], client=redis)
        tightest: tuple[int, Budget, float] | None = None  # remaining, budget, seconds to reset
        for budget, window, used in zip(budgets, windows, counts):
            reset = (window + 1) * budget.window - now
            if int(used) > budget.limit:
                if failure:
                    self._block(client, now + reset)
                raise self._refusal(budget, reset)
            remaining = budget.limit - int(used)
            if tightest is None or remaining < tightest[0]:
                tightest = (remaining, budget, reset)
        assert tightest is not None
        headers = [
            (b"ratelimit-limit", str(tightest[1].limit).encode()),
            (b"ratelimit-remaining", str(tightest[0]).encode()),
            (b"ratelimit-reset", str(max(1, math.ceil(tightest[2]))).encode()),
        ]

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        return send_with_headers

    def _block(self, address: str, until: float) -> None:
        if len(self.blocked) > 10_000:  # bounded: forget the expired, or everyone if need be
            now = time.time()
            self.blocked = {a: t for a, t in self.blocked.items() if t > now}
            if len(self.blocked) > 10_000:
                self.blocked.clear()
        self.blocked[address] = until

    @staticmethod
    def _refusal(budget: Budget, reset: float) -> TooManyRequestsException:
        retry_after = str(max(1, math.ceil(reset)))
        return TooManyRequestsException(
            detail=f"more than {budget.limit} requests in {budget.window} s ({budget.name}); "
                   f"retry after {retry_after} s",
            headers={
                "Retry-After": retry_after,
                "RateLimit-Limit": str(budget.limit),
                "RateLimit-Remaining": "0",
                "RateLimit-Reset": retry_after,
                "RateLimit-Policy": f"{budget.limit};w={budget.window}",
            },
        )


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


__all__ = ["Budget", "RateLimits", "client_ip", "principal_id", "security_headers"]
