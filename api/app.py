"""The application factory. Nothing connects at import time: `create_app` wires the stores
from settings, and the lifespan opens and closes them."""

from __future__ import annotations

import asyncio
import contextlib

import anyio
import logging
import secrets
import time
from collections.abc import AsyncIterator
from typing import Any

from litestar import Litestar
from litestar.config.cors import CORSConfig
from litestar.datastructures import State
from litestar.di import Provide
from litestar.middleware.base import DefineMiddleware
from litestar.openapi.config import OpenAPIConfig
from litestar.openapi.plugins import ScalarRenderPlugin, SwaggerRenderPlugin
from litestar.openapi.spec import Components, SecurityScheme
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from api import background, projection
from api.auth import Authenticator, BearerAuthMiddleware
from api.limits import Budget, RateLimits, principal_id, security_headers
from api.metrics import mark_worker_dead, metrics, observe_wallet, prometheus_config
from api.problems import exception_handlers
from api.routes import ROUTES
from api.settings import Settings
from api.strict_body import StrictRequest
from fulfillment.sealing import Sealer
from programs.stripe_gateway import StripeGateway, StripeSettings
from programs.programs import list_program_ids
from wallet.journal import JournalProjector
from wallet.store import WalletStore, connect

log = logging.getLogger("rw.api")
access_log = logging.getLogger("rw.access")

PUBLIC_PATHS = ["^/health$", "^/ready$", "^/schema", "^/v1/public/", "^/v1/auth/refresh$", "^/v1/stripe/webhooks$",
                # /metrics checks its own bearer (RW_METRICS_TOKEN or the operator key).
                "^/metrics$"]
# Probes and scrapes come often from a few addresses and must never be turned away.
UNLIMITED_PATHS = ["^/health$", "^/ready$", "^/metrics$"]


def request_id_middleware(app: ASGIApp) -> ASGIApp:
    """Gives every request an id (or keeps a sane one the caller sent), answers it in
    `X-Request-ID`, and logs one line per request: never a header or a body."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else secrets.token_hex(8)
        scope.setdefault("state", {})["request_id"] = request_id
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await app(scope, receive, send_with_id)
        except BaseException as exc:
            # Raised by a middleware inside (auth): Litestar answers it outside this wrapper.
            status = status or getattr(exc, "status_code", 500)
            raise
        finally:
            access_log.info(
                "%s %s %s %.1fms",
                scope["method"],
                scope["path"],
                status,
                (time.perf_counter() - started) * 1000,
                # `kind:id` (a key id or participant id), never the secret presented.
                extra={"request_id": request_id, "principal": principal_id(scope)},
            )

    return middleware


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
        pooled = isinstance(engine, PostgresEngine) and settings.sql_pool_size > 0
        if pooled:
            await engine.start_connection_pool(min_size=min(2, settings.sql_pool_size),
                                               max_size=settings.sql_pool_size)
        client = connect(settings.redis_url or "", cluster=settings.redis_cluster)
        wallets = WalletStore(client, idempotency_ttl=settings.idempotency_ttl_seconds, observe=observe_wallet)
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
        # Background tasks stop first: a settlement they finish may still journal a change,
        # and the projector's final drain must come after the last such write.
        stop = asyncio.Event()
        stop_projector = asyncio.Event()
        tasks = []
        if settings.background_tasks:
            tasks.append(asyncio.create_task(background.run(stop, wallets, app.state.sealer,
                                                            webhook_allow_private=settings.webhook_allow_private)))
        projecting = None
        if settings.journal_consumer:
            projector = JournalProjector(client, claim_idle_ms=settings.journal_claim_idle_ms)
            app.state.projector = projector
            projecting = asyncio.create_task(projector.run(stop_projector, list_program_ids))
        try:
            yield
        finally:
            # Litestar leaves the lifespan inside a cancelled scope: shield the cleanup, or the
            # journal would not be drained and the connections not closed.
            with anyio.CancelScope(shield=True):
                await shutdown(stop, tasks, stop_projector, projecting, client, engine, pooled)

    async def shutdown(stop: asyncio.Event, tasks: list[asyncio.Task[None]], stop_projector: asyncio.Event,
                       projecting: asyncio.Task[None] | None, client: Any, engine: Any, pooled: bool) -> None:
        from wallet.sqlite_pool import PooledSQLiteEngine

        # uvicorn runs this after the in-flight requests have finished (or its graceful
        # timeout passed), so no request can journal anything after the drain below.
        stop.set()
        for task in tasks:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=10)
        stop_projector.set()
        # Graceful: the projector drains what is waiting before it returns.
        if projecting is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(projecting, timeout=30)
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

    return Litestar(
        route_handlers=[*ROUTES, metrics],
        lifespan=[lifespan],
        middleware=[
            prometheus_config().middleware,
            request_id_middleware,
            limits.before_auth,
            DefineMiddleware(BearerAuthMiddleware, exclude=PUBLIC_PATHS),
            limits.after_auth,
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
        # Bodies decode strictly: points are JSON integers, never "100", "1e3" or 1.0.
        request_class=StrictRequest,
        request_max_body_size=settings.max_body_bytes,
        openapi_config=openapi_config(),
        # Bearer tokens, not cookies: browsers never need to send credentials cross-origin.
        cors_config=CORSConfig(
            allow_origins=origins,
            allow_methods=["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
            allow_headers=["Authorization", "Content-Type", "Idempotency-Key", "If-None-Match", "X-Request-ID"],
            expose_headers=["X-Request-ID", "Idempotent-Replayed", "ETag", "Retry-After", "RateLimit-Limit",
                            "RateLimit-Remaining", "RateLimit-Reset"],
            allow_credentials=False,
            max_age=600,
        ),
        # Logging is ours (api/logs.py: JSON lines with request ids), not Litestar's default.
        logging_config=None,
        debug=False,
    )


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
