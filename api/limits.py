"""Rate limits and response hardening: per-IP and per-principal request budgets counted in
Redis, and the security headers every answer carries.

Why not Litestar's `RateLimitMiddleware` as is: it keeps a JSON list of every request's
timestamp per client (a 12,000-request budget means decoding and re-encoding 12,000 numbers
on each request), serialises every request of a process behind one lock, and reads then
writes the list, so N workers can each let the full budget through. Here fixed windows are
counted atomically on the shared Redis (`INCR`, `EXPIRE` on a window's first request) by
the request gate's one function call (programs/gate.lua, driven by api/gate.py): every
worker and machine sees the same count, and an authenticated request's counting shares the
round trip that checks its credentials are still good.
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
from litestar.types import Message, Scope

from api.auth import Principal
from programs import gate
from programs import keys as program_keys

KEY_PREFIX = "rw:rl:"
Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True)
class Budget:
    """`limit` requests per `window` seconds for each client (0: no limit)."""

    name: str
    limit: int
    window: int


@dataclass(frozen=True)
class Windows:
    """The counters one request counts: each budget's current window and its key."""

    budgets: list[Budget]
    numbers: list[int]
    names: list[str]
    now: float

    @property
    def ttls(self) -> list[int]:
        return [b.window + 1 for b in self.budgets]


NO_WINDOWS = Windows([], [], [], 0.0)


def client_ip(scope: Scope) -> str:
    # uvicorn has already replaced this with X-Forwarded-For when the peer is a trusted proxy
    # (FORWARDED_ALLOW_IPS); the header itself is never trusted here.
    client = scope.get("client")
    return client[0] if client else "unknown"


def principal_id(scope: Scope) -> str | None:
    """`kind:id` of an authenticated caller: a key id or participant id, never a secret."""
    user = scope.get("user")
    return user.label if isinstance(user, Principal) else None


class RateLimits:
    """One budget per request: an authenticated request counts against its principal (an
    address shared by many consoles or a CRM's NAT is not one client), in the gate's call
    that checks its credentials; a public request (no credentials needed) counts against the
    client address, a request whose credentials fail against the address's small budget of
    failures, and the refresh endpoint also against its own tight budget.

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

    def public_windows(self, path: str, address: str) -> Windows:
        """The windows a public request counts: its address's, and the refresh budget's."""
        budgets = [self.per_ip]
        if self.refresh_path.search(path):
            budgets.append(self.refresh)
        return self._windows(address, budgets)

    def principal_windows(self, principal: Principal) -> Windows:
        """The principal's window, under its program's hash tag (one slot with the gate's
        other keys); the operator, of no program, under its own."""
        budget = self.per_principal
        if not budget.limit:
            return NO_WINDOWS
        now = time.time()
        number = int(now // budget.window)
        if principal.program_id:
            name = program_keys.principal_counter(principal.program_id, principal.label, budget.name, budget.window, number)
        else:
            name = f"{KEY_PREFIX}{{{principal.label}}}:{budget.name}:{budget.window}:{number}"
        return Windows([budget], [number], [name], now)

    def _windows(self, client: str, budgets: list[Budget]) -> Windows:
        budgets = [b for b in budgets if b.limit]
        if not budgets:
            return NO_WINDOWS
        now = time.time()
        numbers = [int(now // b.window) for b in budgets]
        # The client is the hash tag: one request's counters share a cluster slot.
        names = [f"{KEY_PREFIX}{{{client}}}:{b.name}:{b.window}:{n}" for b, n in zip(budgets, numbers)]
        return Windows(budgets, numbers, names, now)

    def refuse_blocked(self, address: str) -> None:
        """429 for an address that spent its failures budget, until its window ends."""
        until = self.blocked.get(address)
        if until is not None:
            now = time.time()
            if until > now:
                raise self._refusal(self.failures, until - now)
            del self.blocked[address]

    async def count_alone(self, redis: Any, windows: Windows) -> Headers:
        """Counts windows that have no credentials to check (a public request, a failure)."""
        if not windows.names:
            return []
        passage = await gate.pass_gate(redis, windows.names, windows.ttls)
        return self.settle(windows, passage.counts)

    async def count_failure(self, redis: Any, address: str) -> None:
        """Counts a failed credential against the address; 429 (and blocked here) past its budget."""
        windows = self._windows(address, [self.failures])
        if windows.names:
            passage = await gate.pass_gate(redis, windows.names, windows.ttls)
            self.settle(windows, passage.counts, failure_of=address)

    def settle(self, windows: Windows, counts: list[int], failure_of: str | None = None) -> Headers:
        """Raises 429 if a budget is spent, else answers the tightest budget's RateLimit-* headers."""
        if not windows.budgets:
            return []
        now = windows.now
        tightest: tuple[int, Budget, float] | None = None  # remaining, budget, seconds to reset
        for budget, number, used in zip(windows.budgets, windows.numbers, counts):
            reset = (number + 1) * budget.window - now
            if used > budget.limit:
                if failure_of is not None:
                    self._block(failure_of, now + reset)
                raise self._refusal(budget, reset)
            remaining = budget.limit - used
            if tightest is None or remaining < tightest[0]:
                tightest = (remaining, budget, reset)
        assert tightest is not None
        return [
            (b"ratelimit-limit", str(tightest[1].limit).encode()),
            (b"ratelimit-remaining", str(tightest[0]).encode()),
            (b"ratelimit-reset", str(max(1, math.ceil(tightest[2]))).encode()),
        ]

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
# The /schema pages: Swagger UI's files come from this server (api/schema_pages.py); its
# page starts it with an inline script and styles, and shows images as data: URLs.
DOCS_CSP = (b"default-src 'none'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
            b"img-src 'self' data:; font-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; "
            b"base-uri 'none'")
# The console: pages, forms and scripts from this server only (no inline script or style).
CONSOLE_CSP = (b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
               b"connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
# The phone app: also its manifest, its service worker, and receipt photos previewed from
# the camera (blob:).
APP_CSP = (b"default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
           b"connect-src 'self'; manifest-src 'self'; worker-src 'self'; form-action 'self'; "
           b"frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
FACE_CSP = {"api": API_CSP, "docs": DOCS_CSP, "console": CONSOLE_CSP, "app": APP_CSP}
# The one exception to "nothing from another host" (UI.md): the console's card payment page
# runs Stripe.js from Stripe, whose card field is a frame of Stripe's talking to Stripe's API,
# so card data never touches this server. The sources Stripe's security guide lists for
# Elements (3-D Secure's challenge frame included).
STRIPE_SOURCES = {"script-src": ("https://js.stripe.com", "https://*.js.stripe.com"),
                  "frame-src": ("https://js.stripe.com", "https://*.js.stripe.com", "https://hooks.stripe.com"),
                  "connect-src": ("https://api.stripe.com",)}


def with_sources(policy: bytes, sources: dict[str, tuple[str, ...]]) -> bytes:
    """The policy with more sources for some directives (a directive it lacks is added)."""
    merged: dict[str, list[str]] = {}
    for directive in policy.decode().split(";"):
        name, *values = directive.split()
        merged[name] = values
    for name, extra in sources.items():
        values = merged.setdefault(name, [])
        values.extend(source for source in extra if source not in values)
    return "; ".join(" ".join([name, *values]) for name, values in merged.items()).encode()


def stripe_console_csp(stripe_js_url: str) -> bytes:
    """The console's CSP plus Stripe's hosts; plus the script's own origin when STRIPE_JS_URL
    names a stand-in (localstripe serves a fake Stripe.js that calls its own API)."""
    origin = "/".join(stripe_js_url.split("/", 3)[:3])
    extra = () if origin == "https://js.stripe.com" else (origin,)
    return with_sources(CONSOLE_CSP, {name: (*values, *extra) for name, values in STRIPE_SOURCES.items()})


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

    # What each face adds to an answer that set none of these itself (nearly every answer):
    # one precomputed list, extended in one step.
    own = {name for name, _ in fixed} | {b"content-security-policy", b"cache-control"}
    plain = {face: [*fixed, (b"content-security-policy", csp)] for face, csp in FACE_CSP.items()}
    no_store = (b"cache-control", b"no-store")

    async def add_headers(message: Message, scope: Scope) -> None:
        if message["type"] != "http.response.start" or scope["type"] != "http":
            return
        headers = list(message.get("headers", ()))
        face = web_face(scope["path"])
        present = {name.lower() for name, _ in headers}
        if present.isdisjoint(own):
            headers += plain[face]
        else:
            headers += [(name, value) for name, value in fixed if name not in present]
            if b"content-security-policy" not in present:
                headers.append((b"content-security-policy", FACE_CSP[face]))
        # An answer for a bearer of credentials is theirs alone: no shared or browser cache.
        # So is every console and app page (a cookie or a token in memory stands behind it);
        # their static files may be cached. Routes that choose their own policy (the
        # catalog's ETag revalidation, the static files) keep it.
        if b"cache-control" not in present and (face in _PRIVATE_FACES or _has_authorization(scope)):
            headers.append(no_store)
        message["headers"] = headers

    return add_headers


_PRIVATE_FACES = frozenset({"console", "app"})


def web_face(path: str) -> str:
    """Which face an answer belongs to: each has its own Content-Security-Policy."""
    if path.startswith("/schema"):
        return "docs"
    if path == "/console" or path.startswith("/console/"):
        return "console"
    if path.startswith("/app/"):
        return "app"
    return "api"


def _has_authorization(scope: Scope) -> bool:
    return any(name == b"authorization" for name, _ in scope.get("headers", ()))


__all__ = ["Budget", "RateLimits", "Windows", "client_ip", "principal_id", "security_headers", "stripe_console_csp"]
