"""Secrets at rest (gift-card credentials, webhook secrets, signing keys, unpublished server
seeds), sealed with the settings' key (`RW_ENCRYPTION_KEY`, a Fernet key).

One format is written and two are read:
- `s2.` and the URL-safe base64 of a random 12-byte nonce, then AES-256-GCM-SIV's ciphertext
  and tag (RFC 8452), under a key derived once from the settings' key (HKDF-SHA256). Written
  because opening a Fernet token cost 27-110 us of CPU on this project's machines (a new HMAC
  and cipher context each; up to 8% of a code-pool redemption's API CPU), an `s2.` token 4-6
  times less (bench/sealing.py). GCM-SIV, not GCM: every refresh seals its successor token, and
  with random nonces GCM asks a key to seal fewer than 2^32 values, which a large deployment
  could reach; a repeated nonce under GCM-SIV gives away only that two values were equal.
- a Fernet token, as earlier builds wrote (they begin `gAAAAA`): still opened, never written.

A token sealed under another key, or changed, does not open (ValueError).
"""

from __future__ import annotations

import base64
import binascii
import os
from typing import Any

import msgspec
from cryptography.exceptions import InvalidTag
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCMSIV
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

PREFIX = "s2."
_NONCE = 12
# Names what the derived key is for, so no other use of the settings' key can share it.
_INFO = b"reward-wallet sealing s2: AES-256-GCM-SIV"


def _derived_key(fernet_key: str) -> bytes:
    raw = base64.urlsafe_b64decode(fernet_key.encode())
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(raw)


class Sealer:
    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode())  # also checks the key: 32 URL-safe base64 bytes
        self._aead = AESGCMSIV(_derived_key(key))

    def seal(self, value: Any) -> str:
        nonce = os.urandom(_NONCE)
        sealed = nonce + self._aead.encrypt(nonce, msgspec.json.encode(value), None)
        return PREFIX + base64.urlsafe_b64encode(sealed).decode()

    def open(self, token: str) -> Any:
        if token.startswith(PREFIX):
            try:
                sealed = base64.urlsafe_b64decode(token[len(PREFIX):].encode())
                plain = self._aead.decrypt(sealed[:_NONCE], sealed[_NONCE:], None)
            except (InvalidTag, binascii.Error, ValueError):
                raise ValueError("sealed with another key") from None
            return msgspec.json.decode(plain)
        try:
            return msgspec.json.decode(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            raise ValueError("sealed with another key") from None
