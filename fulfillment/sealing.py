"""Secrets at rest (gift-card credentials, webhook secrets): Fernet with the settings' key."""

from __future__ import annotations

from typing import Any

import msgspec
from cryptography.fernet import Fernet, InvalidToken


class Sealer:
    def __init__(self, key: str) -> None:
        self._fernet = Fernet(key.encode())

    def seal(self, value: Any) -> str:
        return self._fernet.encrypt(msgspec.json.encode(value)).decode()

    def open(self, token: str) -> Any:
        try:
            return msgspec.json.decode(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            raise ValueError("sealed with another key") from None
