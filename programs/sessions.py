"""Participant sessions: refresh tokens that rotate on every use.

Each login starts a family. Using a refresh token spends it and issues the next one of the
family; presenting a spent token again means it was stolen or replayed, so the whole
family is revoked and the participant must log in again.
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta, timezone

import msgspec

from programs.credentials import hash_secret
from programs.tables import Participant, RefreshToken
from wallet.errors import NotFound, Unauthenticated
from wallet.ids import new_id
from wallet.moments import utc

REFRESH_PREFIX = "rwr."


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


async def rotate(refresh_token: str, ttl: timedelta) -> tuple[SessionSubject, str]:
    """Spends a refresh token and answers its subject and the family's next token."""
    token_hash = hash_secret(refresh_token)
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
        row = await RefreshToken.select(RefreshToken.family_id).where(RefreshToken.token_hash == token_hash).first().run()
        if row is not None:
            await revoke_family(row["family_id"])
        raise Unauthenticated("refresh token is invalid, expired or already used")
    record = spent[0]
    if utc(record["expires_at"]) <= now:
        raise Unauthenticated("refresh token is invalid, expired or already used")
    status = await Participant.select(Participant.status).where(Participant.id == record["participant_id"]).first().run()
    if status is None or status["status"] != "active":
        await revoke_family(record["family_id"])
        raise Unauthenticated("participant is not active")
    new_token = await _insert(record["program_id"], record["participant_id"], record["family_id"], ttl)
    return SessionSubject(program_id=record["program_id"], participant_id=record["participant_id"]), new_token


async def revoke_family(family_id: str) -> None:
    await RefreshToken.update({RefreshToken.revoked_at: datetime.now(timezone.utc)}).where(
        (RefreshToken.family_id == family_id) & RefreshToken.revoked_at.is_null()
    ).run()


async def revoke_participant_sessions(participant_id: str) -> None:
    await RefreshToken.update({RefreshToken.revoked_at: datetime.now(timezone.utc)}).where(
        (RefreshToken.participant_id == participant_id) & RefreshToken.revoked_at.is_null()
    ).run()
