"""Admission control: past what one process can answer in time, answer 503 at once.

Requests arrive at whatever rate phones send them (a launch at a dealer meeting, a CRM
pushing a backlog); a process answers a fixed number a second. Without a bound, every
request beyond that rate waits in the event loop behind the others, so past capacity the
latency of every request grows until phones time out and retry, which adds load: the
open-loop mix in bench/load.py collapsed that way (most answers later than 10 s). With a
bound on the requests in flight, those beyond it get a problem document (503
`unavailable`, `Retry-After: 1`) in a fraction of a millisecond, and the ones admitted keep
the latency the process has at capacity. A shed request did nothing, so retrying it, with
the same `Idempotency-Key` where the route takes one, is always safe.

`/health`, `/ready` and `/metrics` are always admitted: a load balancer and Prometheus must
see a busy process as alive.
"""

from __future__ import annotations

import logging
import time

from litestar import Litestar
from litestar.types import ASGIApp, Receive, Scope, Send
from prometheus_client import Counter

from api.problems import problem_response

log = logging.getLogger("rw.admission")

SHED = Counter("rw_requests_shed_total", "Requests answered 503 at once because the process was at its "
               "in-flight bound (RW_MAX_IN_FLIGHT)")
ALWAYS_ADMITTED = frozenset({"/health", "/ready", "/metrics"})


def admission(app: Litestar, inner: ASGIApp, max_in_flight: int) -> ASGIApp:
    """`inner` behind a bound of `max_in_flight` HTTP requests at once in this process."""
    in_flight = 0
    warned_at = 0.0

    async def admit(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal in_flight, warned_at
        if scope["type"] != "http" or scope["path"] in ALWAYS_ADMITTED:
            await inner(scope, receive, send)
            return
        if in_flight >= max_in_flight:
            SHED.inc()
            now = time.monotonic()
            if now - warned_at >= 10.0:  # one line per 10 s, not one per shed request
                warned_at = now
                log.warning("shedding load: %d requests in flight (RW_MAX_IN_FLIGHT=%d)", in_flight, max_in_flight)
            request = app.request_class(scope=scope, receive=receive, send=send)
            response = problem_response(request, 503, "unavailable",
                                        "the server is at capacity; nothing was done, retry in a second",
                                        headers={"Retry-After": "1"})
            await response.to_asgi_response(app=None, request=request)(scope, receive, send)
            return
        in_flight += 1
        try:
            await inner(scope, receive, send)
        finally:
            in_flight -= 1

    return admit
