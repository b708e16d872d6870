"""Prometheus metrics at `GET /metrics`.

- `rw_http_requests_total`, `rw_http_request_duration_seconds`, `rw_http_requests_in_progress`,
  `rw_http_requests_error_total`: Litestar's `PrometheusMiddleware`, labelled by method,
  route template (`/v1/me/redemptions/{order_id:str}`, never a raw path with ids) and status.
- `rw_wallet_operations_total{kind, outcome}`: every wallet Redis function call (`kind` is the
  function, e.g. `grant`, `hold`; `outcome` is `ok`, `replayed` or the refusal's error code).
- Read at scrape time, so they are true whichever worker answers: `rw_journal_pending_entries`
  and `rw_journal_oldest_pending_seconds` (consumer lag: journal entries not yet in the SQL
  ledger), `rw_journal_dead_letter_entries` (entries the ledger could not hold, set aside by
  the projector: see `reward-wallet reconcile`), `rw_fulfillment_orders{status}` (the queue: new, pending, claimed) and
  `rw_webhook_deliveries{status}` (pending, failed) plus `rw_webhook_deliveries_retrying`.

With several worker processes (`serve --workers N`), `serve` points PROMETHEUS_MULTIPROC_DIR
at `RW_DATA_DIR/metrics`, so counters are summed over all workers whichever one is scraped.

`/metrics` answers only `Authorization: Bearer <RW_METRICS_TOKEN>` or the operator key: the
numbers describe every program on the platform.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import time
from bisect import bisect_left
from collections.abc import Iterator
from typing import Any

import msgspec
from litestar import Request, Response, get
from litestar.exceptions import NotAuthorizedException
from litestar.plugins.prometheus import PrometheusConfig, PrometheusMiddleware
from litestar.types import Message, Receive, Scope, Send
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, Counter, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from wallet import keys

PREFIX = "rw_http"

WALLET_OPERATIONS = Counter(
    "rw_wallet_operations_total",
    "Wallet operations (one Redis function call each) by kind and outcome",
    ["kind", "outcome"],
)


class _Seen(msgspec.Struct):
    """The two fields of an outcome the counter needs; msgspec skips the rest unparsed."""

    ok: bool = False
    code: str | None = None
    replayed: int = 0
    s: int | None = None  # a record written before the typed reply


_decode_one = msgspec.json.Decoder(_Seen).decode
_decode_many = msgspec.json.Decoder(list[_Seen]).decode


def _outcome(seen: _Seen) -> str:
    if seen.replayed:
        return "replayed"
    if seen.ok or (seen.s is not None and seen.s < 300):
        return "ok"
    return seen.code or "refused"


# (function, outcome) -> its counter: `labels()` takes a lock and builds a key each call.
_operation_counters: dict[tuple[str, str], Any] = {}


def _count(function: str, outcome: str) -> None:
    counter = _operation_counters.get((function, outcome))
    if counter is None:
        counter = _operation_counters[(function, outcome)] = WALLET_OPERATIONS.labels(
            function.removeprefix("rw_"), outcome)
    counter.inc()


def observe_wallet(function: str, reply: Any) -> None:
    """WalletStore's observer: counts one call's outcome (each one of a batch's)."""
    try:
        if isinstance(reply, bytes) and reply[:1] == b"[":
            for seen in _decode_many(reply):
                _count(function, _outcome(seen))
        else:
            _count(function, _outcome(_decode_one(reply)))
    except (msgspec.DecodeError, TypeError):
        # A metric must never fail a wallet operation.
        _count(function, "unparsed")


class _Tally:
    """One series' finished requests since the last flush: plain numbers, so a request adds to
    them without prometheus_client's per-sample locks and bucket walk."""

    __slots__ = ("count", "seconds", "buckets", "bounds", "series")

    def __init__(self, series: tuple[Any, Any, Any]) -> None:
        self.series = series  # (requests counter, duration histogram, errors counter or None)
        self.bounds = tuple(series[1]._upper_bounds)  # the histogram's buckets, +Inf last
        self.count = 0
        self.seconds = 0.0
        self.buckets = [0] * len(self.bounds)


class RouteMetricsMiddleware(PrometheusMiddleware):
    """Litestar's middleware, counting errors raised by inner middleware at their status.

    Auth (401) and rate limits (429) raise from middleware; the exception passes through
    this layer and becomes a response only outside it, so the stock middleware would count
    those requests as 200s.

    Same metrics and labels as the stock one (method, route template, status, app name),
    without its per-request `Request` object and label look-ups. A request adds to plain
    tallies in this process (`_Tally`, and an integer per route in progress); they are moved
    into the Prometheus series by `flush_request_metrics`: before every scrape of this
    process, and a second after the first request since the last move (with several workers,
    another worker's scrape reads this one's figures at most that late). The per-sample
    locks, label and bucket work of prometheus_client were 12 us of every request."""

    _series: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}
    _running: dict[tuple[str, str], Any] = {}
    _tallies: dict[tuple[str, str, int], _Tally] = {}
    _in_flight: dict[tuple[str, str], int] = {}
    _flush_due: asyncio.AbstractEventLoop | None = None  # the loop a flush is armed on

    def _labels(self, method: str, path: str, status: int) -> dict[str, str | int | float]:
        return {"method": method, "path": path, "status_code": status, "app_name": self._config.app_name}

    def _in_progress(self, method: str, path: str) -> Any:
        gauge = self._running.get((method, path))
        if gauge is None:
            labels = self._labels(method, path, 200)
            gauge = self._running[(method, path)] = self.requests_in_progress(labels).labels(*labels.values())
        return gauge

    def _finished(self, method: str, path: str, status: int) -> tuple[Any, Any, Any]:
        series = self._series.get((method, path, status))
        if series is None:
            labels = self._labels(method, path, status)
            values = [*labels.values()]
            series = self._series[(method, path, status)] = (
                self.request_count(labels).labels(*values), self.request_time(labels).labels(*values),
                self.requests_error_count(labels).labels(*values) if status >= 500 else None)
        return series

    def _tally(self, method: str, path: str, status: int) -> _Tally:
        tally = self._tallies.get((method, path, status))
        if tally is None:
            tally = self._tallies[(method, path, status)] = _Tally(self._finished(method, path, status))
        return tally

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.measure(scope, receive, send)

    async def measure(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The layer itself; `__call__` is wrapped by Litestar (its exclusion checks), which
        the lean path's copies, never excluded, skip by calling this."""
        method = scope["method"] if scope["type"] == "http" else scope["type"]
        path = scope["path_template"]
        started = time.perf_counter()
        status = 0

        async def noting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        route = (method, path)
        in_flight = self._in_flight
        if route not in self._running:
            self._in_progress(method, path)
        in_flight[route] = in_flight.get(route, 0) + 1
        # Armed at the start too: with several workers, a long request shows in progress in
        # another worker's scrape within a second, not only once it ends.
        _arm_flush()
        try:
            await self.app(scope, receive, noting_send)
        except BaseException as exc:
            status = status or getattr(exc, "status_code", 500)
            raise
        finally:
            in_flight[route] -= 1
            tally = self._tally(method, path, status or 500)
            seconds = time.perf_counter() - started
            tally.count += 1
            tally.seconds += seconds
            # The first bucket whose upper bound holds it, as Histogram.observe picks.
            tally.buckets[bisect_left(tally.bounds, seconds)] += 1
            _arm_flush()


def _arm_flush() -> None:
    loop = asyncio.get_running_loop()
    if RouteMetricsMiddleware._flush_due is not loop:  # none armed on this loop
        RouteMetricsMiddleware._flush_due = loop
        loop.call_later(1.0, flush_request_metrics)


def flush_request_metrics() -> None:
    """Moves the requests tallied since the last call into the Prometheus series. A worker
    killed outright (SIGKILL, the OOM killer) takes at most its last second of tallies with
    it: the counters miss them, never count anything twice."""
    RouteMetricsMiddleware._flush_due = None
    for tally in RouteMetricsMiddleware._tallies.values():
        if not tally.count:
            continue
        # Taken out of the tally first: a series that fails to take them loses them rather
        # than adding them twice at the next flush.
        n, seconds, buckets = tally.count, tally.seconds, tally.buckets
        tally.count, tally.seconds, tally.buckets = 0, 0.0, [0] * len(buckets)
        count, duration, errors = tally.series
        count.inc(n)
        if errors is not None:
            errors.inc(n)
        # Histogram has no public way to add many observations; these are the values its
        # observe() adds to (the sum, and the one bucket each observation falls in).
        duration._sum.inc(seconds)
        for index, k in enumerate(buckets):
            if k:
                duration._buckets[index].inc(k)
    for route, n in RouteMetricsMiddleware._in_flight.items():
        RouteMetricsMiddleware._running[route].set(n)


def prometheus_config(exclude_metrics_path: bool = True) -> PrometheusConfig:
    """The app's metrics layer. The lean path's copies (api/lean.py) never see `/metrics`,
    so they run no exclusion pattern per request."""
    # group_path: label by route template, so ids in paths do not explode the series count.
    return PrometheusConfig(app_name="reward-wallet", prefix=PREFIX, group_path=True,
                            exclude=["^/metrics$"] if exclude_metrics_path else None,
                            middleware_class=RouteMetricsMiddleware)


class _Snapshot(Collector):
    """Gauges measured (asynchronously) just before this scrape."""

    def __init__(self, families: list[GaugeMetricFamily]) -> None:
        self.families = families

    def collect(self) -> Iterator[GaugeMetricFamily]:
        yield from self.families


async def _journal_lag(redis: Any, program_ids: list[str]) -> tuple[int, float]:
    if not program_ids:
        return 0, 0.0
    pipe = redis.pipeline(transaction=False)
    for program_id in program_ids:
        pipe.xlen(keys.journal(program_id))
    lengths = await pipe.execute()
    waiting = [p for p, n in zip(program_ids, lengths) if int(n)]
    oldest_ms: int | None = None
    if waiting:
        pipe = redis.pipeline(transaction=False)
        for program_id in waiting:
            pipe.xrange(keys.journal(program_id), count=1)
        for first in await pipe.execute():
            if first:
                raw = first[0][0]
                ms = int((raw.decode() if isinstance(raw, bytes) else str(raw)).split("-")[0])
                oldest_ms = ms if oldest_ms is None else min(oldest_ms, ms)
    age = max(0.0, time.time() - oldest_ms / 1000) if oldest_ms is not None else 0.0
    return sum(int(n) for n in lengths), age


async def _dead_letters(redis: Any, program_ids: list[str]) -> int:
    if not program_ids:
        return 0
    pipe = redis.pipeline(transaction=False)
    for program_id in program_ids:
        pipe.xlen(keys.dead_letters(program_id))
    return sum(int(n) for n in await pipe.execute())


async def _counts(sql: str) -> dict[str, int]:
    from fulfillment.tables import Order

    rows = await Order.raw(sql).run()
    return {str(r["status"]): int(r["n"]) for r in rows}


async def scrape_gauges(redis: Any) -> list[GaugeMetricFamily]:
    from programs.programs import list_program_ids

    program_ids = await list_program_ids()
    pending, age = await _journal_lag(redis, program_ids)
    dead = GaugeMetricFamily("rw_journal_dead_letter_entries",
                             "Journal entries the ledger could not hold, set aside by the projector")
    dead.add_metric([], await _dead_letters(redis, program_ids))
    lag = GaugeMetricFamily("rw_journal_pending_entries", "Journal entries not yet projected into the SQL ledger")
    lag.add_metric([], pending)
    oldest = GaugeMetricFamily("rw_journal_oldest_pending_seconds",
                               "Age of the oldest journal entry not yet projected (0 when none)")
    oldest.add_metric([], age)

    orders = await _counts("SELECT status, COUNT(*) AS n FROM orders "
                           "WHERE status IN ('new', 'pending', 'claimed') GROUP BY status")
    queue = GaugeMetricFamily("rw_fulfillment_orders", "Orders waiting for or held by a fulfillment partner",
                              labels=["status"])
    for status in ("new", "pending", "claimed"):
        queue.add_metric([status], orders.get(status, 0))

    deliveries = await _counts("SELECT status, COUNT(*) AS n FROM webhook_deliveries "
                               "WHERE status IN ('pending', 'failed') GROUP BY status")
    hooks = GaugeMetricFamily("rw_webhook_deliveries", "Webhook deliveries not delivered: pending or failed "
                              "for good", labels=["status"])
    for status in ("pending", "failed"):
        hooks.add_metric([status], deliveries.get(status, 0))
    retrying = await _counts("SELECT 'retrying' AS status, COUNT(*) AS n FROM webhook_deliveries "
                             "WHERE status = 'pending' AND attempts > 0")
    retry = GaugeMetricFamily("rw_webhook_deliveries_retrying", "Pending webhook deliveries that failed at least once")
    retry.add_metric([], retrying.get("retrying", 0))
    return [lag, oldest, dead, queue, hooks, retry]


def _allowed(request: Request[Any, Any, Any]) -> bool:
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    presented = presented.strip()
    if scheme.lower() != "bearer" or not presented or len(presented) > 4096:
        return False
    settings = request.app.state.settings
    if settings.metrics_token and hmac.compare_digest(presented.encode(), settings.metrics_token.encode()):
        return True
    digest = hashlib.sha256(presented.encode()).hexdigest()
    return bool(settings.operator_key_sha256) and hmac.compare_digest(digest, settings.operator_key_sha256)


@get("/metrics", operation_id="metrics", summary="Prometheus metrics", include_in_schema=True,
     description="Prometheus text exposition. Bearer RW_METRICS_TOKEN or the operator key.",
     tags=["operations"])
async def metrics(request: Request[Any, Any, Any]) -> Response[bytes]:
    if not _allowed(request):
        raise NotAuthorizedException("send Authorization: Bearer <RW_METRICS_TOKEN or operator key>")
    snapshot = CollectorRegistry()
    snapshot.register(_Snapshot(await scrape_gauges(request.app.state.redis)))
    flush_request_metrics()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        shared = CollectorRegistry()
        multiprocess.MultiProcessCollector(shared)
        body = generate_latest(shared)
    else:
        body = generate_latest(REGISTRY)
    return Response(body + generate_latest(snapshot), media_type=CONTENT_TYPE_LATEST)


def mark_worker_dead() -> None:
    """At a worker's exit: its last tallied requests go into the series (the other workers'
    scrapes read them from its files), and its live gauges (requests in progress) stop
    counting."""
    flush_request_metrics()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(os.getpid())


__all__ = ["metrics", "observe_wallet", "flush_request_metrics", "prometheus_config", "mark_worker_dead", "WALLET_OPERATIONS"]
