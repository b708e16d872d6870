"""The catalog's Redis keys. Every key carries its program's hash tag (kernel/keys.py)."""

from __future__ import annotations

from kernel.keys import tag


def catalog_version(program_id: str) -> str:
    return f"{tag(program_id)}:catalog"
