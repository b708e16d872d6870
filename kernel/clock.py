"""Instants as the stores give them back: SQLite answers naive datetimes (stored as UTC),
Postgres aware ones. Everything the domain handles is aware and in UTC."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import overload


@overload
def utc(value: datetime) -> datetime: ...
@overload
def utc(value: None) -> None: ...


def utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=timezone.utc) if value.tzinfo is None else value.astimezone(timezone.utc)
