"""The ledger's Redis keys and its part of the function library (wallet/functions.lua).
Every key carries its program's hash tag (kernel/keys.py)."""

from __future__ import annotations

from kernel.keys import tag
from kernel.lua_library import LuaPart

LUA_PART = LuaPart(package="wallet", files=("functions.lua", "pending.lua"), uses=frozenset({
    "absent_wallet", "balance_digits", "balance_refusal", "balance_reply", "board_section", "BOARDS", "budget_refusal", "fail", "hget_int",
    "hincrby", "idem_check", "idem_record", "idem_store", "int_s", "journal", "journal_digits", "missing_wallet",
    "move_refusal", "one_leg_digits",
    "owed_credit", "register_gateable", "spend_refusal", "suspended_program", "suspension", "to_json", "too_large",
    "wallet_account"}))


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


def wallet_pattern(program_id: str) -> str:
    return f"{tag(program_id)}:w:*"


def lots(program_id: str, participant_id: str) -> str:
    """A participant's pending lots (wallet/pending.lua). Not under `w:`: reconcile scans
    `w:*` for wallets."""
    return f"{tag(program_id)}:pl:{participant_id}"


def closed_lots(program_id: str, participant_id: str) -> str:
    """The participant's lots already released or cancelled, so a lot leaves once."""
    return f"{tag(program_id)}:plx:{participant_id}"


def due_lots(program_id: str) -> str:
    """The program's dated lots by when they release (the worker's index)."""
    return f"{tag(program_id)}:lots:due"


def reversal(program_id: str, activity_id: str) -> str:
    """A returned sale's record: its first result, answered again to any later reversal."""
    return f"{tag(program_id)}:rev:{activity_id}"


def awarded(program_id: str, activity_id: str) -> str:
    """The transactions that paid a sale's awards in the last day (a set), so a return racing
    an award is told to read the awards again (wallet/pending.lua rw_reverse)."""
    return f"{tag(program_id)}:aw:{activity_id}"
