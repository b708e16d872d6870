"""The application factory. Nothing connects at import time: `create_app` lists the app's
parts (routes, middleware, dependencies, limits, CORS, OpenAPI, the lifespan), and the
lifespan opens the stores, starts the background tasks the settings ask for
(api/background.py), and at the end stops them and closes the stores."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.types import ASGIApp

from api import background, projection, schema_pages
from api.auth import Authenticator
from api.admin_audit import admin_audit
from api.gate import Gate
from api.json_body import JsonRequest
from api.admission import admission
from api.lean import lean_routes
from api.limits import Budget, RateLimits, security_headers
from api.metrics import RouteMetricsMiddleware, mark_worker_dead, metrics, observe_wallet, prometheus_config
from api.problems import exception_handlers
from api.routes import ROUTES
from console.manager import ROUTES as console_routes
from api.settings import Settings
from api.sql import open_sql
from fulfillment.sealing import Sealer
from programs.programs import keep_views_for
from programs.stripe_gateway import StripeGateway, StripeSettings
from wallet.store import WalletStore
from kernel import heap
from kernel.mail import Mailer, mailer
from kernel.redis_functions import connect, journal_synced
from kernel.sqlite_pool import trust_journal

log = logging.getLogger("rw.api")
access_log = logging.getLogger("rw.access")

PUBLIC_PATHS = ["^/health$", "^/ready$", "^/schema", "^/v1/public/", "^/v1/auth/", "^/v1/stripe/webhooks$",
                # The phone app's shell and files: public; its script signs in (api/routes/sessions.py).
                "^/app/",
                # /metrics checks its own bearer (RW_METRICS_TOKEN or the operator key).
                "^/metrics$",
                # The console's pages authenticate their own session cookie (console/manager/web.py).
                "^/console$", "^/console/"]
# Probes and scrapes come often from a few addresses and must never be turned away.
UNLIMITED_PATHS = ["^/health$", "^/ready$", "^/metrics$"]


def create_app(settings: Settings, *, owns_process: bool = False) -> Litestar:
    """The app, part by part: each function below wires one. `owns_process`: the app is its
    process's only one (a uvicorn worker, api/asgi.py), so its lifespan settles the collector
    (kernel/heap.py); an app that shares its process (a test session starts hundreds) leaves
    the collector as it found it: each settle is a full collection of the whole process,
    half a second in a test session's heap."""
    check(settings)
    projection.wire()  # what the journal projector writes besides the ledger (spin rows, feed lines)
    gate = Gate(rate_limits(settings))
    app = Litestar(
        route_handlers=[*ROUTES, metrics, schema_pages.assets_router(), *console_routes],
        lifespan=[lifespan(settings, owns_process)],
        # Request id, access log, authentication and rate limits: one layer, one Redis call.
        # Then, inside the gate: every admin change through the API onto the audit log.
        middleware=[prometheus_config().middleware, gate, admin_audit],
        before_send=[security_headers(settings.hsts_seconds)],
        dependencies=dependencies(),
        exception_handlers=exception_handlers,
        # Every JSON body is decoded through it: 415 for another media type, 400 when too deep,
        # and strictly (points are JSON integers, never "100", "1e3" or 1.0).
        request_class=JsonRequest,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=openapi_config(),
        cors_config=cors(settings),
        # Logging is ours (api/logs.py: JSON lines with request ids), not Litestar's default.
        logging_config=None,
        debug=False,
    )
    if settings.lean_routes:
        lean(app, gate, settings)
    if settings.max_in_flight:
        # Outermost: a request past the bound is answered before anything else runs.
        app.asgi_handler = admission(app, app.asgi_handler, settings.max_in_flight)
    return app


def check(settings: Settings) -> None:
    assert settings.jwt_secret is not None, "resolve_secrets(settings) first"
    if settings.redis_url is None:
        raise RuntimeError("REDIS_URL is unset: `reward-wallet serve` starts the embedded Valkey and sets it")


# --- stores and background tasks: the lifespan -------------------------------------------------


def lifespan(settings: Settings, owns_process: bool) -> Callable[[Litestar], contextlib.AbstractAsyncContextManager[None]]:
    """Opens the stores and services, starts the background tasks the settings ask for
    (api/background.py), and at the end stops them and closes the stores."""

    @contextlib.asynccontextmanager
    async def run(app: Litestar) -> AsyncIterator[None]:
        close_sql = await open_sql(settings)
        client = await open_stores(app.state, settings)
        add_services(app.state, settings)
        ctx = background.context(settings, settings.redis_url or "", client, app.state.wallets, app.state.sealer)
        running = background.start(ctx, background.api_tasks(settings))
        # Start-up's objects out of the collector's way (kernel/heap.py).
        collector = heap.settle() if owns_process else None
        try:
            yield
        finally:
            # Litestar leaves the lifespan inside a cancelled scope: shield the cleanup, or the
            # journal would not be drained and the connections not closed. uvicorn runs this
            # after the in-flight requests have finished (or its graceful timeout passed), so
            # no request can journal anything after an in-process drain.
            with anyio.CancelScope(shield=True):
                await running.stop()
                if collector is not None:
                    heap.unsettle(collector)
                mark_worker_dead()
                await client.aclose()
                await close_sql()

    return run


async def open_stores(state: State, settings: Settings) -> Any:
    """Redis and the wallet store (its functions loaded) on the app's state; answers the
    Redis client."""
    client = connect(settings.redis_url or "", cluster=settings.redis_cluster, coalesce=settings.redis_coalesce)
    wallets = WalletStore(client, idempotency_ttl=settings.idempotency_ttl_seconds, observe=observe_wallet,
                          coalesce=settings.redis_coalesce)
    await wallets.load_functions()
    # A redemption's order rows may skip SQLite's fsync only while Redis syncs the journal.
    trust_journal(await journal_synced(client))
    state.redis = client
    state.wallets = wallets
    state.settings = settings
    return client


def add_services(state: State, settings: Settings) -> None:
    """The authenticator, the sealer, the Stripe gateway (when configured) and the program
    view cache, on the app's state."""
    state.authenticator = Authenticator(
        state.redis, state.wallets, settings.jwt_secret or "", settings.operator_key_sha256,
        settings.access_token_ttl_seconds,
    )
    state.sealer = Sealer(settings.encryption_key or "")
    state.mailer = mailer(settings.smtp_url, settings.mail_from, settings.outbox_path)
    state.stripe = None
    if settings.stripe_api_key and settings.stripe_webhook_secret:
        state.stripe = StripeGateway(StripeSettings(
            api_key=settings.stripe_api_key, webhook_secret=settings.stripe_webhook_secret,
            api_base=settings.stripe_api_base))
    keep_views_for(settings.program_cache_seconds)


# --- requests: dependencies, limits, CORS, the lean routes -------------------------------------


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


def provide_mailer(state: State) -> Mailer:
    return state.mailer


def dependencies() -> dict[str, Provide]:
    return {
        "wallets": Provide(provide_wallets, sync_to_thread=False),
        "redis": Provide(provide_redis, sync_to_thread=False),
        "settings": Provide(provide_settings, sync_to_thread=False),
        "authenticator": Provide(provide_authenticator, sync_to_thread=False),
        "sealer": Provide(provide_sealer, sync_to_thread=False),
        "mailer": Provide(provide_mailer, sync_to_thread=False),
    }


def rate_limits(settings: Settings) -> RateLimits:
    window = settings.rate_limit_window_seconds
    return RateLimits(
        per_ip=Budget("ip", settings.rate_limit_per_ip, window),
        per_principal=Budget("principal", settings.rate_limit_per_principal, window),
        # Public and login-like: its own tight budget per address.
        refresh=Budget("refresh", settings.rate_limit_refresh, window),
        failures=Budget("auth_failures", settings.rate_limit_auth_failures, window),
        # Refreshing (by body or by the app's cookie): a tight budget per address. Email codes
        # count their own sends per client address and per address asked for.
        refresh_path=r"^/v1/auth/(refresh|resume)$",
        public_paths=PUBLIC_PATHS,
        unlimited_paths=UNLIMITED_PATHS,
    )


def origins_of(settings: Settings) -> list[str]:
    return [o.strip() for o in (settings.cors_origins or "").split(",") if o.strip()]


def cors(settings: Settings) -> CORSConfig | None:
    """Bearer tokens, not cookies: browsers never need to send credentials cross-origin. No
    origin allowed: no CORS layer at all (it parsed every request's headers to find an Origin
    it would refuse anyway; a browser refuses an answer without CORS headers)."""
    origins = origins_of(settings)
    if not origins:
        return None
    return CORSConfig(
        allow_origins=origins,
        allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "If-None-Match", "X-Request-ID"],
        expose_headers=["X-Request-ID", "Idempotent-Replayed", "ETag", "Retry-After", "RateLimit-Limit",
                        "RateLimit-Remaining", "RateLimit-Reset"],
        allow_credentials=False,
        max_age=600,
    )


def lean(app: Litestar, gate: Gate, settings: Settings) -> None:
    """The hot routes skip Litestar's per-request machinery (api/lean.py), with the same
    metrics and gate layers around the same answers."""
    def metrics(inner: ASGIApp) -> ASGIApp:
        return RouteMetricsMiddleware(app=inner, config=prometheus_config(exclude_metrics_path=False)).measure

    app.asgi_handler = lean_routes(app, app.asgi_handler, gate, metrics, settings.max_body_bytes,
                                   cors=bool(origins_of(settings)))


# --- the OpenAPI document ----------------------------------------------------------------------


def openapi_config() -> OpenAPIConfig:
    return OpenAPIConfig(
        title="reward-wallet",
        version="1.0.0",
        description=(
            "Points wallets, earning, redemption and provably-fair games for channel-sales incentive "
            "programs. Errors are RFC 9457 problem documents with a stable `code`."
        ),
        path="/schema",
        render_plugins=schema_pages.render_plugins(),
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
