"""The application factory. Nothing connects at import time: `create_app` wires the stores
from settings, and the lifespan opens and closes them."""

from __future__ import annotations

import asyncio
import contextlib

import anyio
import logging
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme

from api import projection
from api.auth import Authenticator
from api.gate import Gate
from api.json_body import JsonRequest
from api.lean import lean_routes
from api.limits import Budget, RateLimits, security_headers
from api.metrics import RouteMetricsMiddleware, mark_worker_dead, metrics, observe_wallet, prometheus_config
from api.problems import exception_handlers
from api.routes import ROUTES
from api.settings import Settings
from api.worker import run_background
from fulfillment.sealing import Sealer
from programs.program_news import follow
from programs.programs import forget_every_program, forget_program, keep_views_for
from programs.stripe_gateway import StripeGateway, StripeSettings
from wallet.store import WalletStore
from kernel.redis_functions import connect

log = logging.getLogger("rw.api")
access_log = logging.getLogger("rw.access")

PUBLIC_PATHS = ["^/health$", "^/ready$", "^/schema", "^/v1/public/", "^/v1/auth/refresh$", "^/v1/stripe/webhooks$",
                # /metrics checks its own bearer (RW_METRICS_TOKEN or the operator key).
                "^/metrics$"]
# Probes and scrapes come often from a few addresses and must never be turned away.
UNLIMITED_PATHS = ["^/health$", "^/ready$", "^/metrics$"]


def provide_wallets(state: State) -> WalletStore:
    return state.wallets


def provide_redis(state: State) -> Any:
    return state.redis


def provide_settings(state: State) -> Settings:
    return state.settings


def provide_authenticator(state: State) -> Authenticator:
    return state.authenticator


def provide_sealer(state: State) -> Sealer:
    return state.sealer


def create_app(settings: Settings) -> Litestar:
    assert settings.jwt_secret is not None, "resolve_secrets(settings) first"
    if settings.redis_url is None:
        raise RuntimeError("REDIS_URL is unset: `reward-wallet serve` starts the embedded Valkey and sets it")
    projection.wire()  # what the journal projector writes besides the ledger (spin rows, feed lines)

    @contextlib.asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        from piccolo.engine import engine_finder
        from piccolo.engine.postgres import PostgresEngine

        engine = engine_finder()
        # An app owns the pool it starts, and only that one: another app on the same loop uses
        # the running pool and leaves it open when it stops (kernel/postgres_pool.py: a pool
        # per event loop).
        pooled = isinstance(engine, PostgresEngine) and settings.sql_pool_size > 0 and engine.pool is None
        if pooled:
            await engine.start_connection_pool(min_size=min(2, settings.sql_pool_size),
                                               max_size=settings.sql_pool_size)
        client = connect(settings.redis_url or "", cluster=settings.redis_cluster)
        wallets = WalletStore(client, idempotency_ttl=settings.idempotency_ttl_seconds, observe=observe_wallet,
                              coalesce=settings.redis_coalesce)
        await wallets.load_functions()
        app.state.redis = client
        app.state.wallets = wallets
        app.state.settings = settings
        app.state.authenticator = Authenticator(
            client, wallets, settings.jwt_secret or "", settings.operator_key_sha256,
            settings.access_token_ttl_seconds,
        )
        app.state.sealer = Sealer(settings.encryption_key or "")
        app.state.stripe = None
        if settings.stripe_api_key and settings.stripe_webhook_secret:
            app.state.stripe = StripeGateway(StripeSettings(
                api_key=settings.stripe_api_key, webhook_secret=settings.stripe_webhook_secret,
                api_base=settings.stripe_api_base))
        # Off by default: the worker process (`serve` starts one, `reward-wallet worker` runs
        # one elsewhere) runs these, so the request loop never shares its time with them. When
        # a setting turns them on here (tests, a single-process embedding), it is the very
        # same function, stopped after the requests have finished.
        stop = asyncio.Event()
        keep_views_for(settings.program_cache_seconds)
        # Another process's change to a program drops this one's view at once.
        following = asyncio.create_task(follow(settings.redis_url or "", stop, forget_program, forget_every_program),
                                        name="rw-program-news")
        running = None
        if settings.journal_consumer or settings.background_tasks:
            running = asyncio.create_task(run_background(
                client, wallets, app.state.sealer, stop,
                projector=settings.journal_consumer, tasks=settings.background_tasks,
                claim_idle_ms=settings.journal_claim_idle_ms,
                webhook_allow_private=settings.webhook_allow_private), name="rw-worker-in-process")
        try:
            yield
        finally:
            # Litestar leaves the lifespan inside a cancelled scope: shield the cleanup, or the
            # journal would not be drained and the connections not closed.
            with anyio.CancelScope(shield=True):
                await shutdown(stop, running, client, engine, pooled)
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await following

    async def shutdown(stop: asyncio.Event, running: asyncio.Task[None] | None, client: Any, engine: Any,
                       pooled: bool) -> None:
        from kernel.sqlite_pool import PooledSQLiteEngine

        # uvicorn runs this after the in-flight requests have finished (or its graceful
        # timeout passed), so no request can journal anything after an in-process drain.
        stop.set()
        if running is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await running
        mark_worker_dead()
        await client.aclose()
        if pooled:
            await engine.close_connection_pool()
        if isinstance(engine, PooledSQLiteEngine):
            await engine.close_pool()

    window = settings.rate_limit_window_seconds
    limits = RateLimits(
        per_ip=Budget("ip", settings.rate_limit_per_ip, window),
        per_principal=Budget("principal", settings.rate_limit_per_principal, window),
        # Public and login-like: its own tight budget per address.
        refresh=Budget("refresh", settings.rate_limit_refresh, window),
        failures=Budget("auth_failures", settings.rate_limit_auth_failures, window),
        refresh_path=r"^/v1/auth/refresh$",
        public_paths=PUBLIC_PATHS,
        unlimited_paths=UNLIMITED_PATHS,
    )
    origins = [o.strip() for o in (settings.cors_origins or "").split(",") if o.strip()]

    gate = Gate(limits)
    app = Litestar(
        route_handlers=[*ROUTES, metrics],
        lifespan=[lifespan],
        middleware=[
            prometheus_config().middleware,
            # Request id, access log, authentication and rate limits: one layer, one Redis call.
            gate,
        ],
        before_send=[security_headers(settings.hsts_seconds)],
        dependencies={
            "wallets": Provide(provide_wallets, sync_to_thread=False),
            "redis": Provide(provide_redis, sync_to_thread=False),
            "settings": Provide(provide_settings, sync_to_thread=False),
            "authenticator": Provide(provide_authenticator, sync_to_thread=False),
            "sealer": Provide(provide_sealer, sync_to_thread=False),
        },
        exception_handlers=exception_handlers,
        # Every JSON body is decoded through it: 415 for another media type, 400 when too deep,
        # and strictly (points are JSON integers, never "100", "1e3" or 1.0).
        request_class=JsonRequest,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=openapi_config(),
        # Bearer tokens, not cookies: browsers never need to send credentials cross-origin.
        # No origin allowed: no CORS layer at all (it parsed every request's headers to find
        # an Origin it would refuse anyway; a browser refuses an answer without CORS headers).
        cors_config=CORSConfig(
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "If-None-Match", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Idempotent-Replayed", "ETag", "Retry-After", "RateLimit-Limit",
                            "RateLimit-Remaining", "RateLimit-Reset"],
            allow_credentials=False,
            max_age=600,
        ) if origins else None,
        # Logging is ours (api/logs.py: JSON lines with request ids), not Litestar's default.
        logging_config=None,
        debug=False,
    )
    if settings.lean_routes:
        # The hot routes skip Litestar's per-request machinery (api/lean.py), with the same
        # metrics and gate layers around the same answers.
        app.asgi_handler = lean_routes(
            app, app.asgi_handler, gate, lambda inner: RouteMetricsMiddleware(app=inner, config=prometheus_config()),
            settings.max_body_bytes, cors=bool(origins))
    return app


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="reward-wallet",
        version="1.0.0",
        description=(
            "Points wallets, earning, redemption and provably-fair games for channel-sales incentive "
            "programs. Errors are RFC 9457 problem documents with a stable `code`."
        ),
        path="/schema",
        render_plugins=[SwaggerRenderPlugin(), ScalarRenderPlugin()],
        components=Components(
            security_schemes={
                "BearerAuth": SecurityScheme(
                    type="http",
                    scheme="bearer",
                    description="Operator key, program admin key, partner key, or participant access token",
                )
            }
        ),
        security=[{"BearerAuth": []}],
    )
