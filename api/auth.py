"""Who is calling: `Authorization: Bearer <secret>` resolved to a Principal.

- operator key (`rwo_...`): compared in constant time with the SHA-256 from settings.
- admin and partner keys (`rwk.<id>.<secret>`): the row is found by id (SQL, cached in
  Redis under the key's own hash tag) and the secret's hash compared in constant time.
  Revocation marks the cache entry `revoked`, and a cache fill never clears that mark,
  so a revoked key fails on the very next request on every API machine.
- partner keys also fail while their partner is disabled: disabling marks every one of the
  partner's cache entries `disabled` (enabling removes the mark), and a cache fill checks the
  partner in SQL and caches nothing while it is disabled.
- participant access tokens: short-lived JWTs (Litestar's `Token`), HS256, that also
  pass a check of the participant's wallet state, so deactivation stops them at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

import msgspec
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.middleware import AbstractAuthenticationMiddleware, AuthenticationResult
from litestar.security.jwt import Token

from fulfillment.partners import partner_active
from programs.credentials import load_key, secret_matches, split_key
from programs.programs import ensure_active
from wallet.replies import reply_text
from wallet.store import WalletStore

PrincipalKind = Literal["operator", "admin", "partner", "participant"]
JWT_ALGORITHM = "HS256"
JWT_AUDIENCE = "rw-participant"


class Principal(msgspec.Struct, frozen=True):
    kind: PrincipalKind
    program_id: str | None = None
    subject_id: str = "operator"  # key id, participant id, or "operator"
    partner_id: str | None = None

    @property
    def idempotency_scope(self) -> str:
        """Keys are remembered per calling principal: a program's admins share one scope."""
        if self.kind == "participant":
            return f"pt:{self.subject_id}"
        if self.kind == "partner":
            return f"fp:{self.partner_id}"
        return self.kind


def key_cache_name(key_id: str) -> str:
    return f"rw:{{k:{key_id}}}"


class Authenticator:
    def __init__(self, client: Any, wallets: WalletStore, jwt_secret: str, operator_key_sha256: str | None,
                 access_ttl: int) -> None:
        self.client = client
        self.wallets = wallets
        self.jwt_secret = jwt_secret
        self.operator_hash = operator_key_sha256
        self.access_ttl = access_ttl

    async def authenticate(self, presented: str) -> Principal:
        if presented.startswith("rwo_"):
            digest = hashlib.sha256(presented.encode()).hexdigest()
            if self.operator_hash and hmac.compare_digest(digest, self.operator_hash):
                return Principal(kind="operator")
            raise NotAuthorizedException("unknown or revoked key")
        parts = split_key(presented)
        if parts is not None:
            return await self._api_key(*parts)
        return await self._participant(presented)

    async def _api_key(self, key_id: str, secret: str) -> Principal:
        name = key_cache_name(key_id)
        cached = {reply_text(k): reply_text(v) for k, v in (await self.client.hgetall(name)).items()}
        if cached.get("revoked") == "1":
            raise NotAuthorizedException("unknown or revoked key")
        if "h" not in cached:
            record = await load_key(key_id)
            if record is None:
                raise NotAuthorizedException("unknown or revoked key")
            if record.revoked:
                await self.client.hset(name, "revoked", "1")
                raise NotAuthorizedException("unknown or revoked key")
            if record.kind == "partner" and not await partner_active(record.partner_id or ""):
                raise NotAuthorizedException("unknown or revoked key")
            cached = {"h": record.key_hash, "program": record.program_id, "kind": record.kind,
                      "partner": record.partner_id or ""}
            # HSET of these fields only: a concurrent revocation's mark survives the fill.
            await self.client.hset(name, mapping=cached)
            if await self.client.hget(name, "revoked") in (b"1", "1"):
                raise NotAuthorizedException("unknown or revoked key")
        if not secret_matches(secret, cached["h"]):
            raise NotAuthorizedException("unknown or revoked key")
        if cached.get("disabled") == "1":
            raise NotAuthorizedException("this partner is disabled")
        kind = "partner" if cached.get("kind") == "partner" else "admin"
        return Principal(kind=kind, program_id=cached["program"], subject_id=key_id,
                         partner_id=cached.get("partner") or None)

    async def mark_revoked(self, key_id: str) -> None:
        await self.client.hset(key_cache_name(key_id), "revoked", "1")

    async def mark_disabled(self, key_ids: list[str], disabled: bool) -> None:
        """Marks (or unmarks) a disabled partner's keys on every API machine at once. Set after
        SQL says so: a concurrent cache fill writes other fields and leaves this one be."""
        for key_id in key_ids:
            if disabled:
                await self.client.hset(key_cache_name(key_id), "disabled", "1")
            else:
                await self.client.hdel(key_cache_name(key_id), "disabled")

    async def _participant(self, presented: str) -> Principal:
        token = Token.decode(presented, secret=self.jwt_secret, algorithm=JWT_ALGORITHM, audience=JWT_AUDIENCE,
                             require_claims=["exp", "sub"])
        program_id = token.extras.get("prg")
        if not isinstance(program_id, str):
            raise NotAuthorizedException("invalid token")
        state, generation = await self.wallets.token_state(program_id, token.sub)
        if state != "active":
            raise NotAuthorizedException("participant is not active")
        # A token minted before a deactivation stays dead after the reactivation.
        if token.extras.get("gen", 0) != generation:
            raise NotAuthorizedException("this access token was revoked; refresh or sign in again")
        return Principal(kind="participant", program_id=program_id, subject_id=token.sub)

    async def mint_access_token(self, program_id: str, participant_id: str) -> str:
        """An access token of the participant's current token generation."""
        _, generation = await self.wallets.token_state(program_id, participant_id)
        return self.access_token(program_id, participant_id, generation)

    def access_token(self, program_id: str, participant_id: str, generation: int = 0) -> str:
        now = datetime.now(timezone.utc)
        token = Token(
            exp=now + timedelta(seconds=self.access_ttl),
            sub=participant_id,
            iat=now,
            aud=JWT_AUDIENCE,
            jti=secrets.token_hex(8),
            extras={"prg": program_id, "gen": generation},
        )
        return token.encode(secret=self.jwt_secret, algorithm=JWT_ALGORITHM)


class BearerAuthMiddleware(AbstractAuthenticationMiddleware):
    async def authenticate_request(self, connection: ASGIConnection[Any, Any, Any, Any]) -> AuthenticationResult:
        header = connection.headers.get("authorization", "")
        scheme, _, presented = header.partition(" ")
        presented = presented.strip()
        if scheme.lower() != "bearer" or not presented:
            raise NotAuthorizedException("send Authorization: Bearer <key or access token>")
        if len(presented) > 4096 or not presented.isascii():
            raise NotAuthorizedException("unknown or revoked key")
        authenticator: Authenticator = connection.app.state.authenticator
        principal = await authenticator.authenticate(presented)
        connection.scope.setdefault("state", {})["principal"] = principal.kind
        return AuthenticationResult(user=principal, auth=None)


def _requires(*kinds: PrincipalKind):  # type: ignore[no-untyped-def]
    allowed = set(kinds)

    # Async: Litestar runs a sync guard in a thread pool, one hop per request.
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = connection.user
        if not isinstance(principal, Principal) or principal.kind not in allowed:
            raise PermissionDeniedException(f"this endpoint is for {' or '.join(sorted(allowed))} credentials")

    return guard


operator_only = _requires("operator")
admin_only = _requires("admin")
participant_only = _requires("participant")
partner_only = _requires("partner")


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    principal = connection.user
    assert isinstance(principal, Principal)
    return principal


admin_or_participant = _requires("admin", "participant")


async def active_program(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard for what a suspended program may not do (409 program_suspended): read from
    Redis on every request, so a suspension holds at once on every worker."""
    principal = connection.user
    if isinstance(principal, Principal) and principal.program_id:
        await ensure_active(connection.app.state.wallets, principal.program_id)
