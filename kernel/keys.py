"""Redis key names every package shares. Every key of a program carries the hash tag
{p:<program_id>} (`tag`), so one function call can touch them all and a Redis Cluster keeps a
program on one shard. Each package names its own keys with it: wallet/keys.py (the ledger),
games/keys.py, programs/keys.py, catalog/keys.py, games/sweepstakes/keys.py."""

from __future__ import annotations

import hashlib


def tag(program_id: str) -> str:
    return f"rw:{{p:{program_id}}}"


def idempotency(program_id: str, scope: str, key: str) -> str:
    # Hashing keeps client-chosen bytes out of key names and bounds their length.
    digest = hashlib.sha256(key.encode()).hexdigest()[:40]
    return f"{tag(program_id)}:idem:{scope}:{digest}"


def no_record(program_id: str) -> str:
    """Stands in for an idempotency key when a call records no result (kernel/prelude.lua)."""
    return f"{tag(program_id)}:noidem"
