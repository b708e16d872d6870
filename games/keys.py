"""The games' Redis keys (sweepstakes' own: games/sweepstakes/keys.py) and their part of the
function library: the spin choice, sweepstakes entries, spins and seed pairs. Every key
carries its program's hash tag (kernel/keys.py)."""

from __future__ import annotations

from kernel.keys import tag
from kernel.lua_library import LuaPart

LUA_PART = LuaPart(package="games", files=("spin_choice.lua", "sweepstakes/sweepstakes.lua", "spins.lua", "seeds.lua"),
                   uses=frozenset({
                       "absent_wallet", "balance_refusal", "board_section", "BOARDS",
                       "fail", "hget_int", "hincrby", "idem_check", "idem_record", "idem_store", "int_s", "journal",
                       "missing_wallet", "move_refusal", "owed_credit", "register_gateable", "spend_refusal",
                       "suspended_program", "suspension", "to_json", "too_large", "wallet_account"}))


def campaign(program_id: str, campaign_id: str) -> str:
    return f"{tag(program_id)}:camp:{campaign_id}"


def seed_pair(program_id: str, participant_id: str) -> str:
    return f"{tag(program_id)}:seed:{participant_id}"


def spin_day(program_id: str, campaign_id: str, participant_id: str, day: str) -> str:
    """A participant's spins on a campaign on one day of the program's calendar."""
    return f"{tag(program_id)}:spins:{campaign_id}:{participant_id}:{day}"


def spin_order(program_id: str, transaction_id: str) -> str:
    """Pins the order id of a spin's item prize, so a retry or the sweep makes the same one."""
    return f"{tag(program_id)}:spin-order:{transaction_id}"
