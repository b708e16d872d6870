"""Participant sessions: refresh tokens that rotate on every use.

Each login starts a family. Using a refresh token spends it and issues the next one of the
family; presenting a spent token again means it was stolen or replayed, so the whole
family is revoked and the participant must log in again, unless it comes back within a few
seconds of its rotation: a client retrying after a timeout gets the same next token.
"""

from __future__ import annotations

import asyncio
import secrets
from datetime import datetime, timedelta, timezone

import msgspec

from fulfillment.sealing import Sealer
from programs.credentials import hash_secret
from programs.programs import ensure_active
from programs.tables import Participant, RefreshToken
from programs import keys as program_keys
from kernel.errors import NotFound, Unauthenticated
from kernel.ids import new_id
from kernel.clock import utc
from kernel.replies import reply_text
from wallet.store import WalletStore

REFRESH_PREFIX = "rwr."
# How long a rotated refresh token may be presented again (a client retrying after a
# timeout) and answer the same next token instead of revoking the login.
REUSE_GRACE_SECONDS = 10


class SessionSubject(msgspec.Struct, frozen=True):
    program_id: str
    participant_id: str


async def _insert(program_id: str, participant_id: str, family_id: str, ttl: timedelta) -> str:
    secret = REFRESH_PREFIX + secrets.token_urlsafe(32)
    now = datetime.now(timezone.utc)
    await RefreshToken.insert(
        RefreshToken(
            id=new_id("rt"),
            program_id=program_id,
            participant_id=participant_id,
            family_id=family_id,
            token_hash=hash_secret(secret),
            created_at=now,
            expires_at=now + ttl,
        )
    ).run()
    return secret


async def start_session(program_id: str, participant_id: str, ttl: timedelta) -> str:
    """Answers a new refresh token in a new family, for an active participant of the program."""
    row = await Participant.select(Participant.status).where(
        (Participant.id == participant_id) & (Participant.program_id == program_id)
    ).first().run()
    if row is None:
        raise NotFound("no such participant")
    if row["status"] != "active":
        raise NotFound("no such participant")
    return await _insert(program_id, participant_id, new_id("fam"), ttl)


async def rotate(refresh_token: str, ttl: timedelta, store: WalletStore, sealer: Sealer,
                 grace_seconds: int = REUSE_GRACE_SECONDS) -> tuple[SessionSubject, str]:
    """Spends a refresh token and answers its subject and the family's next token.

    Presented again within `grace_seconds` of its rotation (a retry after a timeout), it
    answers the same next token (kept sealed in Redis for that window only). Later, the
    reuse revokes the whole family. A suspended program refreshes nothing (409) and the
    token stays unspent."""
    token_hash = hash_secret(refresh_token)
    found = await RefreshToken.select(RefreshToken.program_id).where(RefreshToken.token_hash == token_hash) \
        .first().run()
    if found is None:
        raise Unauthenticated("refresh token is invalid, expired or already used")
    await ensure_active(store, found["program_id"])
    now = datetime.now(timezone.utc)
    # One conditional UPDATE decides the race between two uses of the same token.
    spent = (
        await RefreshToken.update({RefreshToken.used_at: now})
        .where(
            (RefreshToken.token_hash == token_hash)
            & RefreshToken.used_at.is_null()
            & RefreshToken.revoked_at.is_null()
        )
        .returning(RefreshToken.program_id, RefreshToken.participant_id, RefreshToken.family_id, RefreshToken.expires_at)
        .run()
    )
    if not spent:
        return await _retry_or_revoke(store, sealer, token_hash, grace_seconds)
    record = spent[0]
    if utc(record["expires_at"]) <= now:
        raise Unauthenticated("refresh token is invalid, expired or already used")
    status = await Participant.select(Participant.status).where(Participant.id == record["participant_id"]).first().run()
    if status is None or status["status"] != "active":
        await revoke_family(record["family_id"])
        raise Unauthenticated("participant is not active")
    new_token = await _insert(record["program_id"], record["participant_id"], record["family_id"], ttl)
    if grace_seconds > 0:
        await store.client.set(program_keys.refresh_successor(record["program_id"], token_hash), sealer.seal(new_token),
                               ex=grace_seconds)
    return SessionSubject(program_id=record["program_id"], participant_id=record["participant_id"]), new_token


async def _retry_or_revoke(store: WalletStore, sealer: Sealer, token_hash: str,
                           grace_seconds: int) -> tuple[SessionSubject, str]:
    """A spent (or revoked) token presented again: the retry of a rotation still inside its
    grace window answers that rotation's token; anything else revokes the family."""
    row = await RefreshToken.select().where(RefreshToken.token_hash == token_hash).first().run()
    if row is None:  # pruned since the caller found it
        raise Unauthenticated("refresh token is invalid, expired or already used")
    used_at = utc(row["used_at"]) if row["used_at"] is not None else None
    within = (row["revoked_at"] is None and used_at is not None
              and datetime.now(timezone.utc) - used_at <= timedelta(seconds=grace_seconds))
    if within:
        # The first use may still be inserting the successor: wait for it a moment.
        for _ in range(40):
            sealed = await store.client.get(program_keys.refresh_successor(row["program_id"], token_hash))
            if sealed is not None:
                subject = SessionSubject(program_id=row["program_id"], participant_id=row["participant_id"])
                return subject, str(sealer.open(reply_text(sealed)))
            await asyncio.sleep(0.05)
        # The first use never finished: refuse this one, but it was no theft.
        raise Unauthenticated("refresh token is invalid, expired or already used")
    await revoke_family(row["family_id"])
    raise Unauthenticated("refresh token is invalid, expired or already used")


async def revoke_family(family_id: str) -> None:
    await RefreshToken.update({RefreshToken.revoked_at: datetime.now(timezone.utc)}).where(
        (RefreshToken.family_id == family_id) & RefreshToken.revoked_at.is_null()
    ).run()


async def revoke_participant_sessions(participant_id: str) -> None:
    await RefreshToken.update({RefreshToken.revoked_at: datetime.now(timezone.utc)}).where(
        (RefreshToken.participant_id == participant_id) & RefreshToken.revoked_at.is_null()
    ).run()


async def sign_out(refresh_token: str) -> None:
    """Ends the login the refresh token belongs to: every token of its family is revoked.
    An unknown token ends nothing and is no error (signing out twice is fine)."""
    row = await RefreshToken.select(RefreshToken.family_id).where(
        RefreshToken.token_hash == hash_secret(refresh_token)).first().run()
    if row is not None:
        await revoke_family(row["family_id"])
