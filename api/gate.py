"""The request gate: one ASGI layer that gives every request its id and access-log line,
authenticates it from memory (api/auth.py) and, in one Redis function call
(programs/gate.py), checks the credential is still good and counts its rate limits.

Before it, four layers did this (request id, address limiter, Litestar's authentication
middleware, principal limiter) with up to three round trips before the handler's own: the
key cache or wallet state, the principal's counter, the suspension flag. Now:

- an authenticated request: one call (its principal's window, its key's marks or wallet's
  state and token generation, its program's suspension flag; one hash tag);
- a public request: one call counting its address (and the refresh budget), none when
  its budgets are off;
- a credential that fails: a second call, counting the failure against the address (an
  address is not a program: its counters have their own hash tag).
"""

from __future__ import annotations

import itertools
import logging
import secrets
import time
from typing import Any

from litestar.exceptions import NotAuthorizedException, TooManyRequestsException
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api.auth import Authenticator, Credential, Principal
from api.limits import Headers, RateLimits, Windows, client_ip
from api.logs import write_direct
from programs import gate
from wallet import keys
from kernel.gated import CARRIED, CarriedGate

access_log = logging.getLogger("rw.access")


class RequestIds:
    """A sane id the caller sent, or a new one: this process's random prefix and a counter
    (unique without a call to the OS's random source per request, as `token_hex` made)."""

    def __init__(self) -> None:
        self.prefix = secrets.token_hex(4)
        self.counter = itertools.count(1)

    def __call__(self, incoming: bytes) -> str:
        if 0 < len(incoming) <= 64:
            text = incoming.decode("latin-1")
            if text.isprintable():
                return text
        return f"{self.prefix}{next(self.counter):08x}"


def log_access(scope: Scope, status: int, started: float, request_id: str) -> None:
    """One line per request; straight to the configured handler when nothing else would see
    it (api/logs.py write_direct), else a record built without the logging module's caller
    lookup (a walk of the stack per line)."""
    if not access_log.isEnabledFor(logging.INFO):
        return
    user = scope.get("user")
    # `kind:id` (a key id or participant id), never the secret presented.
    principal = user.label if isinstance(user, Principal) else None
    message = f"{scope['method']} {scope['path']} {status} {(time.perf_counter() - started) * 1000:.1f}ms"
    if write_direct(access_log, message, request_id, principal):
        return
    record = access_log.makeRecord(access_log.name, logging.INFO, __file__, 0, message, None, None,
                                   extra={"request_id": request_id, "principal": principal})
    access_log.handle(record)


class Gate:
    """Litestar middleware (a factory of the ASGI layer, outermost but for metrics)."""

    def __init__(self, limits: RateLimits) -> None:
        self.limits = limits

    def __call__(self, app: ASGIApp) -> ASGIApp:
        limits = self.limits
        request_id_of = RequestIds()

        async def gate_layer(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await app(scope, receive, send)
                return
            authorization = incoming_id = b""
            for name, value in scope["headers"]:
                if name == b"authorization":
                    authorization = authorization or value
                elif name == b"x-request-id":
                    incoming_id = incoming_id or value
            request_id = request_id_of(incoming_id)
            state = scope.setdefault("state", {})
            state["request_id"] = request_id
            added: Headers = [(b"x-request-id", request_id.encode())]
            started = time.perf_counter()
            status = 0

            async def send_with_headers(message: Message) -> None:
                nonlocal status
                if message["type"] == "http.response.start":
                    status = message["status"]
                    message["headers"] = [*message.get("headers", ()), *added]
                await send(message)

            carried_token = None
            try:
                carried = await admit(scope, authorization, added)
                if carried is not None:
                    carried_token = CARRIED.set(carried)
                    send_with_headers = gate_before_start(scope, carried, send_with_headers)
                await app(scope, receive, send_with_headers)
            except BaseException as exc:
                if carried_token is not None and carried.open and isinstance(exc, Exception):
                    # The handler failed before any call carried the gate: a refused caller
                    # hears that refusal, not what its request would have met.
                    await pass_carried(scope, carried)
                # A refusal raised here (401, 429) is answered by Litestar outside this layer.
                status = status or getattr(exc, "status_code", 500)
                raise
            finally:
                if carried_token is not None:
                    carried.open = False  # not for a task the handler left running
                    CARRIED.reset(carried_token)
                log_access(scope, status, started, request_id)

        def gate_before_start(scope: Scope, carried: CarriedGate, send: Send) -> Send:
            """Passes a gate that no call carried (the handler failed, or answered without a
            gateable call) before the response starts: a refusal then replaces the response."""
            async def send_after_gate(message: Message) -> None:
                if message["type"] == "http.response.start" and carried.open:
                    await pass_carried(scope, carried)
                await send(message)

            return send_after_gate

        async def pass_carried(scope: Scope, carried: CarriedGate) -> None:
            """The carried gate alone (rw_gate); raises the refusal."""
            await carried.settle(scope["litestar_app"].state.redis.execute_command)

        async def admit(scope: Scope, authorization: bytes, added: Headers) -> CarriedGate | None:
            """Authenticates and counts the request, adding the RateLimit-* headers to
            `added`; raises 401 or 429. For a route that carries its gate into its first
            gateable call (opt `carry_gate`), answers that gate instead of passing it here."""
            path = scope["path"]
            redis = scope["litestar_app"].state.redis
            if limits.unlimited.search(path):
                return None
            handler = scope.get("route_handler")
            if limits.public.search(path) or (handler is not None and handler.opt.get("exclude_from_auth")):
                added += await limits.count_alone(redis, limits.public_windows(path, client_ip(scope)))
                return None
            address = client_ip(scope)
            limits.refuse_blocked(address)
            if scope["method"] == "OPTIONS":  # preflights carry no credentials
                return None
            authenticator: Authenticator = scope["litestar_app"].state.authenticator
            try:
                credential = await authenticator.resolve(presented_of(authorization))
                windows = limits.principal_windows(credential.principal)
                program_id = credential.principal.program_id
                if (handler is not None and handler.opt.get("carry_gate") and credential.check != "-"
                        and program_id):
                    carried = carry_gate(redis, credential, windows, address, scope, added)
                else:
                    carried = None
                    passage = await pass_gate(redis, credential, windows)
            except NotAuthorizedException:
                # Counted only now: a request that authenticates never touches this budget.
                await limits.count_failure(redis, address)
                raise
            scope["user"] = credential.principal
            scope["auth"] = None
            state = scope["state"]
            state["principal"] = credential.principal.kind
            if carried is None and passage is not None:
                state["program_suspended"] = passage.suspended
                added += limits.settle(windows, passage.counts)
            return carried

        def carry_gate(redis: Any, credential: Credential, windows: Windows, address: str, scope: Scope,
                       added: Headers) -> CarriedGate:
            """The gate for the handler's first gateable call (kernel/gated.py). Suspension is
            not read: the gateable operations refuse a suspended program themselves."""
            key_list, args = gate.gate_call(windows.names, windows.ttls, credential.check, credential.liveness,
                                            credential.generation, limits=[b.limit for b in windows.budgets])

            async def judge(verdict: int, suspended: bool, counts: list[int]) -> None:
                if verdict == gate.OVER_BUDGET:
                    limits.settle(windows, counts)  # raises the 429 with its Retry-After
                    raise TooManyRequestsException("rate limit exceeded")
                if verdict != gate.LET_IN:
                    await limits.count_failure(redis, address)
                    raise Authenticator.refusal(credential, verdict)
                added.extend(limits.settle(windows, counts))

            return CarriedGate(key_list, args, judge)

        async def pass_gate(redis: Any, credential: Credential, windows: Any) -> gate.Passage | None:
            program_id = credential.principal.program_id
            if credential.check == "-" and not windows.names:
                return None  # the operator, without a budget: nothing to check in Redis
            passage = await gate.pass_gate(
                redis, windows.names, windows.ttls, credential.check, credential.liveness, credential.generation,
                config=keys.config(program_id) if program_id else "")
            if passage.verdict != gate.LET_IN:
                raise Authenticator.refusal(credential, passage.verdict)
            return passage

        return gate_layer


def presented_of(authorization: bytes) -> str:
    """The credential of `Authorization: Bearer <credential>`; 401 when there is none."""
    scheme, _, presented = authorization.decode("latin-1").partition(" ")
    presented = presented.strip()
    if scheme.lower() != "bearer" or not presented:
        raise NotAuthorizedException("send Authorization: Bearer <key or access token>")
    if len(presented) > 4096 or not presented.isascii():
        raise NotAuthorizedException("unknown or revoked key")
    return presented
