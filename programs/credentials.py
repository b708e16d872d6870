"""API keys for program admins and fulfillment partners.

A key reads `rwk.<key id>.<secret>`; only SHA-256(secret) is stored and it is compared in
constant time. The key id lets a lookup find the row without scanning.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import datetime, timezone
from typing import Literal

import msgspec

from programs.tables import ApiKey
from kernel.errors import NotFound
from kernel.ids import new_id
from kernel.pages import decode_cursor, next_cursor

KeyKind = Literal["admin", "partner"]
KEY_PREFIX = "rwk."


class KeyRecord(msgspec.Struct, frozen=True):
    id: str
    program_id: str
    kind: str
    partner_id: str | None
    key_hash: str
    revoked: bool


class AdminKeyView(msgspec.Struct, frozen=True):
    id: str
    name: str
    created_at: datetime
    revoked_at: datetime | None = None


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def secret_matches(secret: str, expected_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), expected_hash)


def split_key(presented: str) -> tuple[str, str] | None:
    """(key id, secret) of a presented key, or None when it is not shaped like one of ours."""
    if not presented.startswith(KEY_PREFIX):
        return None
    parts = presented.split(".")
    if len(parts) != 3 or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


async def issue_key(
    program_id: str, kind: KeyKind, name: str = "", partner_id: str | None = None
) -> tuple[AdminKeyView, str]:
    key_id = new_id("key")
    secret = secrets.token_urlsafe(32)
    now = datetime.now(timezone.utc)
    await ApiKey.insert(
        ApiKey(
            id=key_id,
            program_id=program_id,
            kind=kind,
            partner_id=partner_id,
            name=name,
            key_hash=hash_secret(secret),
            created_at=now,
        )
    ).run()
    return AdminKeyView(id=key_id, name=name, created_at=now), f"{KEY_PREFIX}{key_id}.{secret}"


async def load_key(key_id: str) -> KeyRecord | None:
    row = await ApiKey.select().where(ApiKey.id == key_id).first().run()
    if row is None:
        return None
    return KeyRecord(
        id=row["id"],
        program_id=row["program_id"],
        kind=row["kind"],
        partner_id=row["partner_id"],
        key_hash=row["key_hash"],
        revoked=row["revoked_at"] is not None,
    )


async def list_admin_keys(program_id: str, limit: int = 50,
                          cursor: str | None = None) -> tuple[list[AdminKeyView], str | None]:
    """One page of the program's admin keys, newest first, and the next page's cursor."""
    after = decode_cursor(cursor)
    where = (ApiKey.program_id == program_id) & (ApiKey.kind == "admin")
    if after is not None:
        where &= ApiKey.id < after
    rows = (
        await ApiKey.select(ApiKey.id, ApiKey.name, ApiKey.created_at, ApiKey.revoked_at)
        .where(where)
        .order_by(ApiKey.id, ascending=False)
        .limit(limit + 1)
        .run()
    )
    return [AdminKeyView(**row) for row in rows[:limit]], next_cursor([r["id"] for r in rows], limit)


async def revoke_key(program_id: str, key_id: str, kind: KeyKind = "admin") -> None:
    """Marks the key revoked in SQL. The caller also tells the auth cache (see api/auth.py)."""
    updated = (
        await ApiKey.update({ApiKey.revoked_at: datetime.now(timezone.utc)})
        .where((ApiKey.id == key_id) & (ApiKey.program_id == program_id) & (ApiKey.kind == kind))
        .returning(ApiKey.id)
        .run()
    )
    if not updated:
        raise NotFound("no such key in this program")
