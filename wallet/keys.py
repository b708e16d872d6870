"""Redis key names. Every key of a program carries the hash tag {p:<program_id>} so one
function call can touch them all, and a Redis Cluster keeps a program on one shard."""

from __future__ import annotations

import hashlib


def tag(program_id: str) -> str:
    return f"rw:{{p:{program_id}}}"


def wallet(program_id: str, participant_id: str) -> str:
    return f"{tag(program_id)}:w:{participant_id}"


def accounts(program_id: str) -> str:
    return f"{tag(program_id)}:acct"


def config(program_id: str) -> str:
    return f"{tag(program_id)}:cfg"


def journal(program_id: str) -> str:
    return f"{tag(program_id)}:journal"


def dead_letters(program_id: str) -> str:
    """Journal entries the projector could not write to the ledger, set aside (journal.py)."""
    return f"{tag(program_id)}:journal:dead"


def hold(program_id: str, hold_id: str) -> str:
    return f"{tag(program_id)}:hold:{hold_id}"


def inactive(program_id: str) -> str:
    return f"{tag(program_id)}:inactive"


def idempotency(program_id: str, scope: str, key: str) -> str:
    # Hashing keeps client-chosen bytes out of key names and bounds their length.
    digest = hashlib.sha256(key.encode()).hexdigest()[:40]
    return f"{tag(program_id)}:idem:{scope}:{digest}"


def wallet_pattern(program_id: str) -> str:
    return f"{tag(program_id)}:w:*"


def no_record(program_id: str) -> str:
    """Stands in for an idempotency key when a call records no result (see functions.lua)."""
    return f"{tag(program_id)}:noidem"


def cap(program_id: str, rule_id: str, participant_id: str, period_key: str) -> str:
    return f"{tag(program_id)}:cap:{rule_id}:{participant_id}:{period_key}"


def catalog_version(program_id: str) -> str:
    return f"{tag(program_id)}:catalog"


def campaign(program_id: str, campaign_id: str) -> str:
    return f"{tag(program_id)}:camp:{campaign_id}"


def seed_pair(program_id: str, participant_id: str) -> str:
    return f"{tag(program_id)}:seed:{participant_id}"


def spin_day(program_id: str, campaign_id: str, participant_id: str, day: str) -> str:
    """A participant's spins on a campaign on one day of the program's calendar."""
    return f"{tag(program_id)}:spins:{campaign_id}:{participant_id}:{day}"
