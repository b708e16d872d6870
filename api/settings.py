"""Settings: one msgspec Struct read from the environment and validated at start.

In embedded mode (no `REDIS_URL` and no `DATABASE_URL`) the signing and encryption
secrets, and the embedded Valkey's password, are generated once into
`RW_DATA_DIR/secrets.json` (mode 0600); with external stores they must be given
explicitly, so that several API machines agree on them.
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import json
import os
import secrets
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated

import msgspec
from msgspec import Meta

# Struct field -> environment variable. The variable names are the public interface.
ENV_NAMES: dict[str, str] = {
    "data_dir": "RW_DATA_DIR",
    "redis_url": "REDIS_URL",
    "redis_cluster": "RW_REDIS_CLUSTER",
    "database_url": "DATABASE_URL",
    "operator_key": "RW_OPERATOR_KEY",
    "jwt_secret": "RW_JWT_SECRET",
    "encryption_key": "RW_ENCRYPTION_KEY",
    "access_token_ttl_seconds": "RW_ACCESS_TOKEN_TTL",
    "refresh_token_ttl_days": "RW_REFRESH_TOKEN_TTL_DAYS",
    "refresh_reuse_grace_seconds": "RW_REFRESH_REUSE_GRACE",
    "idempotency_ttl_seconds": "RW_IDEMPOTENCY_TTL",
    "journal_consumer": "RW_JOURNAL_CONSUMER",
    "background_tasks": "RW_BACKGROUND_TASKS",
    "sql_pool_size": "RW_SQL_POOL_SIZE",
    "journal_claim_idle_ms": "RW_JOURNAL_CLAIM_IDLE_MS",
    "log_level": "RW_LOG_LEVEL",
    "embedded_valkey": "RW_EMBEDDED_VALKEY",
    "valkey_allocator": "RW_VALKEY_ALLOCATOR",
    "stripe_api_key": "STRIPE_API_KEY",
    "stripe_webhook_secret": "STRIPE_WEBHOOK_SECRET",
    "stripe_api_base": "STRIPE_API_BASE",
    "stripe_publishable_key": "STRIPE_PUBLISHABLE_KEY",
    "stripe_js_url": "STRIPE_JS_URL",
    "drand_url": "RW_DRAND_URL",
    "rate_limit_window_seconds": "RW_RATE_LIMIT_WINDOW",
    "rate_limit_per_ip": "RW_RATE_LIMIT_IP",
    "rate_limit_per_principal": "RW_RATE_LIMIT_PRINCIPAL",
    "rate_limit_refresh": "RW_RATE_LIMIT_REFRESH",
    "rate_limit_auth_failures": "RW_RATE_LIMIT_AUTH_FAILURES",
    "trusted_proxies": "RW_TRUSTED_PROXIES",
    "max_body_bytes": "RW_MAX_BODY_BYTES",
    "cors_origins": "RW_CORS_ORIGINS",
    "hsts_seconds": "RW_HSTS_SECONDS",
    "metrics_token": "RW_METRICS_TOKEN",
    "webhook_allow_private": "RW_WEBHOOK_ALLOW_PRIVATE",
    "program_cache_seconds": "RW_PROGRAM_CACHE_SECONDS",
    "lean_routes": "RW_LEAN_ROUTES",
    "redis_coalesce": "RW_REDIS_COALESCE",
    "http_one_write": "RW_HTTP_ONE_WRITE",
    "max_in_flight": "RW_MAX_IN_FLIGHT",
    "public_url": "RW_PUBLIC_URL",
    "smtp_url": "RW_SMTP_URL",
    "mail_from": "RW_MAIL_FROM",
}


_BOOLEANS = {"lean_routes", "redis_coalesce", "http_one_write", "redis_cluster", "journal_consumer", "embedded_valkey", "background_tasks", "webhook_allow_private"}


class SettingsError(Exception):
    """A bad environment value; the message names the variable and what is wrong."""


class Settings(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    data_dir: str = "./var"
    redis_url: str | None = None
    redis_cluster: bool = False
    database_url: Annotated[str, Meta(pattern=r"^postgres(ql)?://")] | None = None
    operator_key: Annotated[str, Meta(min_length=24)] | None = None
    jwt_secret: Annotated[str, Meta(min_length=32)] | None = None
    encryption_key: Annotated[str, Meta(min_length=44, max_length=44)] | None = None
    access_token_ttl_seconds: Annotated[int, Meta(ge=10, le=900)] = 900
    refresh_token_ttl_days: Annotated[int, Meta(ge=1, le=365)] = 30
    # A rotated refresh token presented again within this many seconds (a retry after a
    # timeout) answers the same next token; later it revokes the login. 0: never.
    refresh_reuse_grace_seconds: Annotated[int, Meta(ge=0, le=60)] = 10
    idempotency_ttl_seconds: Annotated[int, Meta(ge=86_400)] = 172_800
    # The worker process (`serve` starts one beside its API workers; `reward-wallet worker`
    # elsewhere) runs the journal projector and the background tasks. These run a copy in
    # each API process too (the in-process test app does): the projector, and the webhook
    # deliveries with the order, orphan and spin sweeps. Off: the request loop runs neither.
    journal_consumer: bool = False
    background_tasks: bool = False
    # Postgres connections per API process; 0 opens one per query (no pool bound to a loop).
    sql_pool_size: Annotated[int, Meta(ge=0, le=200)] = 20
    # How long a journal entry may sit unacknowledged with a consumer before another claims it.
    journal_claim_idle_ms: Annotated[int, Meta(ge=0, le=3_600_000)] = 15_000
    log_level: Annotated[str, Meta(pattern=r"^(debug|info|warning|error)$")] = "info"
    stripe_api_key: Annotated[str, Meta(min_length=3)] | None = None
    stripe_webhook_secret: Annotated[str, Meta(min_length=3)] | None = None
    stripe_api_base: Annotated[str, Meta(pattern=r"^https?://")] | None = None
    # The console's card payments (its Funding page): Stripe.js runs in the browser with the
    # publishable key (`pk_...`) from this URL, the one script the console loads from another
    # host; a stand-in (localstripe's fake Stripe.js) is named here, and the page's CSP names it.
    stripe_publishable_key: Annotated[str, Meta(pattern=r"^pk_[A-Za-z0-9_]+$")] | None = None
    stripe_js_url: Annotated[str, Meta(pattern=r"^https?://[^/?#]+/[^?#]*$")] = "https://js.stripe.com/v3/"
    # A drand HTTP API (e.g. https://api.drand.sh/<chain hash>); when set, a sweepstakes draw
    # without a beacon in the request fetches the first round after the close.
    drand_url: Annotated[str, Meta(pattern=r"^https?://")] | None = None
    # Rate limits, requests per window (0 turns one off), counted in Redis so every worker
    # and machine shares them: per principal when authenticated, per address for public
    # requests and failing credentials. Generous by default (a CRM connector makes many
    # calls); the refresh endpoint (public, login-like) is tight.
    rate_limit_window_seconds: Annotated[int, Meta(ge=1, le=3600)] = 60
    rate_limit_per_ip: Annotated[int, Meta(ge=0)] = 30_000
    rate_limit_per_principal: Annotated[int, Meta(ge=0)] = 12_000
    rate_limit_refresh: Annotated[int, Meta(ge=0)] = 60
    # Failing credentials per address per window: a guesser gets this many tries, then the
    # address is refused (whatever it sends) until the window ends.
    rate_limit_auth_failures: Annotated[int, Meta(ge=0)] = 30
    # Comma-separated IPs or CIDRs of the reverse proxies whose X-Forwarded-For names the
    # client (the address the limits count). Unset: no proxy is trusted, the peer is the client.
    trusted_proxies: str | None = None
    # Larger request bodies answer 413 (a 1,000-grant batch is about 150 KB).
    max_body_bytes: Annotated[int, Meta(ge=1024, le=64 * 1024 * 1024)] = 2 * 1024 * 1024
    # Comma-separated origins allowed to call from a browser ("*" for any); unset: none.
    cors_origins: str | None = None
    # Strict-Transport-Security max-age; 0 leaves the header out (set it behind TLS only).
    hsts_seconds: Annotated[int, Meta(ge=0, le=63_072_000)] = 0
    # A bearer secret for Prometheus to scrape /metrics with (the operator key works too).
    metrics_token: Annotated[str, Meta(min_length=24)] | None = None
    # Partner webhooks may reach loopback, private and link-local addresses (a test listener,
    # a partner inside the same network). Off: such URLs answer 422 and are never delivered to.
    webhook_allow_private: bool = False
    # How long a process serves its cached view of a program before refreshing it from SQL.
    # A change is announced to every API process at once (Redis pub/sub); this bounds how
    # long a process that missed the announcement, or the worker, keeps the old view.
    program_cache_seconds: Annotated[float, Meta(ge=0, le=3600)] = 5.0
    # The hot routes (wallet read, grant, deduction, spin) answered by api/lean.py without
    # Litestar's per-request routing and handler machinery; off sends them through Litestar
    # (the same use cases and answers: for comparison in bench/, or to rule the path out).
    lean_routes: bool = True
    # Function calls of concurrent requests sent to Redis as one pipeline per turn of the
    # event loop (kernel/coalesce.py; a single server only). Off: one write per call.
    redis_coalesce: bool = True
    # `serve`'s uvicorn workers send a loop turn's HTTP answers together at its end, each in
    # one write (api/http_protocol.py); off: uvicorn's own protocol (for comparison in bench/).
    http_one_write: bool = True
    # Requests one API process works on at once; more answer 503 `unavailable` with
    # Retry-After at once instead of queueing past the phones' timeouts (api/admission.py).
    # 0: no bound. /health, /ready and /metrics are always admitted.
    max_in_flight: Annotated[int, Meta(ge=0, le=1_000_000)] = 256
    # The address people reach this server at: every link in an email or an answer (console
    # invites, sign-in links) starts with it, never with a request's Host header. `serve`
    # sets it to the address it listens on when unset.
    public_url: Annotated[str, Meta(pattern=r"^https?://[^/?#]+(/[^?#]*)?$")] = "http://127.0.0.1:8000"
    # smtp://[user:password@]host[:port] (smtps:// for TLS from the start; STARTTLS is used when
    # the server offers it). Unset: messages are written to RW_DATA_DIR/outbox/ as .eml files.
    smtp_url: Annotated[str, Meta(pattern=r"^smtps?://")] | None = None
    mail_from: Annotated[str, Meta(min_length=3)] = "Reward Wallet <no-reply@localhost>"
    # Set by `serve` for its workers: REDIS_URL then names the embedded server it started.
    embedded_valkey: bool = False
    # The embedded Valkey's malloc (api/embedded.py): `auto` preloads jemalloc when the
    # system has it, `libc` never does, an absolute path names the library to preload.
    valkey_allocator: Annotated[str, Meta(pattern=r"^(auto|libc|/.+)$")] = "auto"
    # Not from the environment: the hash of the operator key, filled in by `resolve_secrets`.
    operator_key_sha256: str | None = None

    @property
    def embedded(self) -> bool:
        return self.database_url is None and (self.redis_url is None or self.embedded_valkey)

    @property
    def data_path(self) -> Path:
        return Path(self.data_dir).resolve()

    @property
    def public_base(self) -> str:
        """RW_PUBLIC_URL without a trailing slash, to put paths after."""
        return self.public_url.rstrip("/")

    @property
    def outbox_path(self) -> Path:
        return self.data_path / "outbox"

    @property
    def trusted_proxy_list(self) -> list[str]:
        return trusted_networks(self.trusted_proxies)


def trusted_networks(value: str | None) -> list[str]:
    """RW_TRUSTED_PROXIES as a list of networks; raises ValueError naming a bad entry."""
    import ipaddress

    networks = []
    for part in (value or "").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            networks.append(str(ipaddress.ip_network(part, strict=False)))
        except ValueError:
            raise ValueError(f"{part!r} is not an IP address or CIDR network") from None
    return networks


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    raw: dict[str, object] = {}
    for field, name in ENV_NAMES.items():
        value = env.get(name)
        if value is not None and value.strip() != "":
            raw[field] = _parse_bool(value) if field in _BOOLEANS else value.strip()
    try:
        settings = msgspec.convert(raw, Settings, strict=False)
    except msgspec.ValidationError as exc:
        raise SettingsError(_explain(exc)) from None
    try:
        settings.trusted_proxy_list
    except ValueError as exc:
        raise SettingsError(f"RW_TRUSTED_PROXIES: {exc}") from None
    if settings.valkey_allocator.startswith("/") and not os.path.isfile(settings.valkey_allocator):
        raise SettingsError(f"RW_VALKEY_ALLOCATOR: no such file: {settings.valkey_allocator}")
    return settings


def _parse_bool(value: str) -> bool | str:
    lowered = value.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    return value  # left as a string so validation names the variable


def _explain(exc: msgspec.ValidationError) -> str:
    message = str(exc)
    for field, name in ENV_NAMES.items():
        if message.endswith(f"`$.{field}`"):
            reason = message.rsplit(" - at ", 1)[0]
            return f"{name}: {reason}"
    return message


def _with_secrets_file(data_path: Path, fill: Callable[[dict[str, str]], bool]) -> dict[str, str]:
    """The secrets kept in `secrets.json`, after `fill` has added any missing (it answers
    whether it did). Several processes (serve, its workers, a CLI command) may start at
    once: a lock on the data folder makes them agree on one value, and the file is
    replaced whole (mode 0600 from its creation), so no reader sees half of it."""
    data_path.mkdir(mode=0o700, parents=True, exist_ok=True)
    folder = os.open(data_path, os.O_RDONLY)
    try:
        fcntl.flock(folder, fcntl.LOCK_EX)
        path = data_path / "secrets.json"
        stored: dict[str, str] = json.loads(path.read_text()) if path.exists() else {}
        if fill(stored):
            draft = data_path / ".secrets.json.new"
            fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as handle:
                json.dump(stored, handle)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(draft, path)
        return stored
    finally:
        os.close(folder)  # releases the lock


def _add_valkey_password(stored: dict[str, str]) -> bool:
    if "valkey_password" in stored:
        return False
    stored["valkey_password"] = secrets.token_hex(32)  # hex: safe in a URL and in valkey.conf
    return True


def valkey_password(data_path: Path) -> str:
    """The embedded Valkey's password (`requirepass`), generated on first use."""
    return _with_secrets_file(data_path, _add_valkey_password)["valkey_password"]


def resolve_secrets(settings: Settings) -> tuple[Settings, str | None]:
    """Fill in signing/encryption secrets; answer the operator key if it was just generated.

    Embedded mode keeps them in `secrets.json` under the data dir (mode 0600), with the
    embedded Valkey's password. The operator key itself is never stored, only its SHA-256,
    so it is printed once.
    """
    new_operator_key: str | None = None
    if settings.embedded:
        generated: list[str] = []

        def fill(stored: dict[str, str]) -> bool:
            changed = _add_valkey_password(stored)
            if "jwt_secret" not in stored:
                stored["jwt_secret"] = secrets.token_urlsafe(48)
                changed = True
            if "encryption_key" not in stored:
                stored["encryption_key"] = base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
                changed = True
            if "operator_key_sha256" not in stored and settings.operator_key is None:
                generated.append("rwo_" + secrets.token_urlsafe(32))
                stored["operator_key_sha256"] = hashlib.sha256(generated[0].encode()).hexdigest()
                changed = True
            return changed

        stored = _with_secrets_file(settings.data_path, fill)
        new_operator_key = generated[0] if generated else None
        settings = msgspec.structs.replace(
            settings,
            jwt_secret=settings.jwt_secret or stored["jwt_secret"],
            encryption_key=settings.encryption_key or stored["encryption_key"],
            operator_key_sha256=stored.get("operator_key_sha256"),
        )
    else:
        missing = [ENV_NAMES[f] for f in ("jwt_secret", "encryption_key") if getattr(settings, f) is None]
        if missing:
            raise SettingsError(
                f"{', '.join(missing)} must be set when REDIS_URL or DATABASE_URL points at an "
                "external store (every API machine must share them)"
            )
    if settings.operator_key is not None:
        settings = msgspec.structs.replace(
            settings, operator_key_sha256=hashlib.sha256(settings.operator_key.encode()).hexdigest()
        )
    return settings, new_operator_key
