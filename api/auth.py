"""Who is calling: `Authorization: Bearer <secret>` resolved to a Principal, from memory.

- operator key (`rwo_...`): compared in constant time with the SHA-256 from settings.
- admin and partner keys (`rwk.<id>.<secret>`): the key's record (hash, program, kind,
  partner) is read from SQL once per process and kept; it never changes. The secret's hash
  is compared in constant time. What does change lives in Redis under the program's hash
  tag and is read by the request gate (programs/gate.py) on every request: revocation
  marks the key `revoked` and disabling a partner marks each of its keys `disabled`
  (enabling removes the mark), so both hold on the very next request on every worker. A
  record read while SQL already says revoked, or while the partner is disabled, refuses.
- participant access tokens: short-lived JWTs (Litestar's `Token`), HS256. A verified
  token's claims are kept by the token string until it expires (the signature is checked
  once per process); the gate checks the wallet's state and the token's generation on
  every request, so deactivation and token revocation stop it at once.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, NamedTuple

import msgspec
from litestar.connection import ASGIConnection
from litestar.exceptions import NotAuthorizedException, PermissionDeniedException
from litestar.handlers.base import BaseRouteHandler
from litestar.security.jwt import Token

from fulfillment.partners import partner_active
from programs import gate
from programs import keys as program_keys
from programs.credentials import KeyRecord, load_key, secret_matches, split_key
from programs.programs import ensure_active, suspended_error
from wallet import keys
from kernel.bounded_map import BoundedMap
from wallet.store import WalletStore

PrincipalKind = Literal["operator", "admin", "partner", "participant"]
JWT_ALGORITHM = "HS256"
JWT_AUDIENCE = "rw-participant"
# Bounded: a full cache forgets its oldest entry (for tokens, the first to expire).
KEY_CACHE_SIZE = 4_096
TOKEN_CACHE_SIZE = 16_384


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

    @property
    def label(self) -> str:
        """`kind:id` for logs and rate-limit counters: a key id or participant id, never a secret."""
        return self.kind if self.kind == "operator" else f"{self.kind}:{self.subject_id}"


class Credential(NamedTuple):
    """A presented credential resolved from memory, and what the gate must still check in
    Redis: "k" an API key's marks, "p" a participant's wallet and token generation."""

    principal: Principal
    check: gate.Check = "-"
    liveness: str = ""
    generation: int = 0


class _Claims(NamedTuple):
    expires: float  # epoch seconds
    program_id: str
    subject: str
    generation: int


UNKNOWN_KEY = "unknown or revoked key"


class Authenticator:
    def __init__(self, client: Any, wallets: WalletStore, jwt_secret: str, operator_key_sha256: str | None,
                 access_ttl: int) -> None:
        self.client = client
        self.wallets = wallets
        self.jwt_secret = jwt_secret
        self.operator_hash = operator_key_sha256
        self.access_ttl = access_ttl
        self._keys: BoundedMap[str, KeyRecord] = BoundedMap(KEY_CACHE_SIZE)
        self._tokens: BoundedMap[str, _Claims] = BoundedMap(TOKEN_CACHE_SIZE)

    async def resolve(self, presented: str) -> Credential:
        """Who `presented` is, without Redis (SQL on an API key's first use in this process);
        raises NotAuthorizedException. The gate's verdict completes the check."""
        if presented.startswith("rwo_"):
            digest = hashlib.sha256(presented.encode()).hexdigest()
            if self.operator_hash and hmac.compare_digest(digest, self.operator_hash):
                return Credential(Principal(kind="operator"))
            raise NotAuthorizedException(UNKNOWN_KEY)
        parts = split_key(presented)
        if parts is not None:
            return await self._api_key(*parts)
        return self._participant(presented)

    async def authenticate(self, presented: str) -> Principal:
        """resolve() and the gate's liveness check, counting nothing (the request path counts
        in the same call: api/gate.py)."""
        credential = await self.resolve(presented)
        if credential.check != "-":
            passage = await gate.pass_gate(self.client, (), (), credential.check, credential.liveness,
                                           credential.generation)
            if passage.verdict != gate.LET_IN:
                raise self.refusal(credential, passage.verdict)
        return credential.principal

    @staticmethod
    def refusal(credential: Credential, verdict: int) -> NotAuthorizedException:
        if credential.check == "p":
            if verdict == gate.GENERATION_MOVED:
                # A token minted before a deactivation stays dead after the reactivation.
                return NotAuthorizedException("this access token was revoked; refresh or sign in again")
            return NotAuthorizedException("participant is not active")
        if verdict == gate.DISABLED:
            return NotAuthorizedException("this partner is disabled")
        return NotAuthorizedException(UNKNOWN_KEY)

    async def _api_key(self, key_id: str, secret: str) -> Credential:
        record = self._keys.get(key_id)
        if record is None:
            record = await load_key(key_id)
            if record is None:
                raise NotAuthorizedException(UNKNOWN_KEY)
            if not record.revoked and record.kind == "partner" and not await partner_active(record.partner_id or ""):
                # Not kept: enabling the partner again only removes the marks.
                raise NotAuthorizedException(UNKNOWN_KEY)
            self._keys.put(key_id, record)
        if record.revoked or not secret_matches(secret, record.key_hash):
            raise NotAuthorizedException(UNKNOWN_KEY)
        kind: PrincipalKind = "partner" if record.kind == "partner" else "admin"
        principal = Principal(kind=kind, program_id=record.program_id, subject_id=key_id,
                              partner_id=record.partner_id or None)
        return Credential(principal, "k", program_keys.key_marks(record.program_id, key_id))

    async def mark_revoked(self, program_id: str, key_id: str) -> None:
        """After SQL says so: every worker's gate refuses the key from the next request on."""
        await gate.mark_revoked(self.client, program_id, key_id)

    async def mark_disabled(self, program_id: str, key_ids: list[str], disabled: bool) -> None:
        """Marks (or unmarks) a disabled partner's keys on every API machine at once; set after
        SQL says so."""
        await gate.mark_disabled(self.client, program_id, key_ids, disabled)

    def _participant(self, presented: str) -> Credential:
        claims = self._tokens.get(presented)
        if claims is None or claims.expires <= time.time():
            if claims is not None:
                self._tokens.pop(presented)
            claims = self._verify(presented)
            self._tokens.put(presented, claims)
        principal = Principal(kind="participant", program_id=claims.program_id, subject_id=claims.subject)
        return Credential(principal, "p", keys.wallet(claims.program_id, claims.subject), claims.generation)

    def _verify(self, presented: str) -> _Claims:
        """The signature, audience and expiry checked (PyJWT); raises NotAuthorizedException."""
        token = Token.decode(presented, secret=self.jwt_secret, algorithm=JWT_ALGORITHM, audience=JWT_AUDIENCE,
                             require_claims=["exp", "sub"])
        program_id = token.extras.get("prg")
        generation = token.extras.get("gen", 0)
        if not isinstance(program_id, str) or not program_id or type(generation) is not int:
            raise NotAuthorizedException("invalid token")
        return _Claims(token.exp.timestamp(), program_id, token.sub, generation)

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


def admit_kinds(principal: Any, allowed: frozenset[str]) -> Principal:
    """The principal, if it is of an allowed kind; raises 403 otherwise."""
    if not isinstance(principal, Principal) or principal.kind not in allowed:
        raise PermissionDeniedException(f"this endpoint is for {' or '.join(sorted(allowed))} credentials")
    return principal


def _requires(*kinds: PrincipalKind):  # type: ignore[no-untyped-def]
    allowed = frozenset(kinds)

    # Async: Litestar runs a sync guard in a thread pool, one hop per request.
    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        admit_kinds(connection.user, allowed)

    guard.kinds = allowed  # type: ignore[attr-defined]  # read by api/lean.py
    return guard


operator_only = _requires("operator")
# Route opt for a handler whose first Redis call is a gateable operation (kernel/gated.py):
# its gate rides in that call, one round trip for the request. Not for a route guarded by
# `active_program` (the operations refuse a suspended program themselves).
CARRY_GATE = {"carry_gate": True}

admin_only = _requires("admin")
participant_only = _requires("participant")
partner_only = _requires("partner")


def principal_of(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    principal = connection.user
    assert isinstance(principal, Principal)
    return principal


admin_or_participant = _requires("admin", "participant")


async def active_program(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
    """Guard for what a suspended program may not do (409 program_suspended): the flag the
    gate read from Redis in this request's own call (or read here when the gate did not),
    so a suspension holds at once on every worker."""
    principal = connection.user
    if isinstance(principal, Principal) and principal.program_id:
        suspended = connection.scope.get("state", {}).get("program_suspended")
        if suspended is None:
            await ensure_active(connection.app.state.wallets, principal.program_id)
        elif suspended:
            raise suspended_error()
