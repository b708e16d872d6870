"""A program's Ed25519 key, which signs its ledger checkpoints.

Made the first time a program needs one (its first checkpoint, statement or published
list) and kept for good: a checkpoint signed years ago still verifies with the key the
program publishes. The private key is sealed at rest the way every secret of the project
is (with the settings' encryption key, fulfillment/sealing.py; the caller hands its
sealer in, so this package imports nothing of fulfillment's); the public key and its id
(the first 16 hex digits of its SHA-256) are public.

Two processes making the first key at once: the table's unique program id keeps one, and
both read it back.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any, Protocol

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat

from wallet.tables import SigningKey

ALGORITHM = "ed25519"


class Sealing(Protocol):
    def seal(self, value: Any) -> str: ...

    def open(self, token: str) -> Any: ...


class PublicKey(msgspec.Struct, frozen=True):
    """What a verifier needs: the algorithm, the raw public key in hex, and its id."""

    algorithm: str
    key: str
    key_id: str


class ProgramKey(msgspec.Struct, frozen=True):
    public: PublicKey
    private: Ed25519PrivateKey

    def sign(self, message: bytes) -> str:
        return self.private.sign(message).hex()


def key_id_of(public_hex: str) -> str:
    return hashlib.sha256(bytes.fromhex(public_hex)).hexdigest()[:16]


def verify_signature(public: PublicKey, message: bytes, signature_hex: str) -> bool:
    """Whether `signature_hex` is the key's Ed25519 signature of `message` (any malformed
    part is simply a signature that does not hold)."""
    try:
        if public.algorithm != ALGORITHM:
            return False
        Ed25519PublicKey.from_public_bytes(bytes.fromhex(public.key)).verify(bytes.fromhex(signature_hex), message)
        return True
    except (InvalidSignature, ValueError, TypeError):
        return False


def _public_hex(private: Ed25519PrivateKey) -> str:
    return private.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw).hex()


async def program_key(program_id: str, sealer: Sealing) -> ProgramKey:
    """The program's key, made and stored on first need."""
    row = await SigningKey.select().where(SigningKey.program_id == program_id).first().run()
    if row is None:
        private = Ed25519PrivateKey.generate()
        raw = private.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption()).hex()
        public = _public_hex(private)
        await SigningKey.insert(SigningKey(
            program_id=program_id, algorithm=ALGORITHM, public_key=public, key_id=key_id_of(public),
            private_key=sealer.seal(raw), created_at=datetime.now(timezone.utc),
        )).on_conflict(action="DO NOTHING").run()
        row = await SigningKey.select().where(SigningKey.program_id == program_id).first().run()
        assert row is not None
    private = Ed25519PrivateKey.from_private_bytes(bytes.fromhex(sealer.open(row["private_key"])))
    if _public_hex(private) != row["public_key"]:
        raise ValueError(f"program {program_id}: the sealed signing key does not match its public key")
    return ProgramKey(public=PublicKey(algorithm=row["algorithm"], key=row["public_key"], key_id=row["key_id"]),
                      private=private)


async def public_key(program_id: str) -> PublicKey | None:
    """The program's published key, or None before it has one (read only: nothing is made)."""
    row = await SigningKey.select(SigningKey.algorithm, SigningKey.public_key, SigningKey.key_id).where(
        SigningKey.program_id == program_id).first().run()
    return None if row is None else PublicKey(algorithm=row["algorithm"], key=row["public_key"], key_id=row["key_id"])
