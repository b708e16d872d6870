"""The fulfilment package's Redis keys and its part of the function library
(fulfillment/pool.lua: the built-in code pool's free codes; fulfillment/partner_orders.lua: an
external partner's order held and journalled in one call; fulfillment/taxes.lua: what each
participant's orders of a tax year add up to, at most). Every key carries its program's
hash tag (kernel/keys.py)."""

from __future__ import annotations

from kernel.keys import tag
from kernel.lua_library import LuaPart

LUA_PART = LuaPart(package="fulfillment", files=("taxes.lua", "pool.lua", "partner_orders.lua"), uses=frozenset({
    "balance_refusal", "fail", "hget_int", "hincrby", "idem_check", "idem_replace", "idem_store", "int_s", "journal",
    "missing_wallet", "move_refusal", "no_record", "register_gateable", "spend_refusal", "suspension", "to_json",
    "too_large", "wallet_account"}))


def _pool(program_id: str, item_id: str) -> str:
    return f"{tag(program_id)}:pool:{item_id}"


def pool_free(program_id: str, item_id: str) -> str:
    """The item's free codes' ids, by upload time."""
    return f"{_pool(program_id, item_id)}:free"


def pool_taken(program_id: str, item_id: str) -> str:
    """Code id -> order id, for every code the pool handed out."""
    return f"{_pool(program_id, item_id)}:taken"


def pool_orders(program_id: str, item_id: str) -> str:
    """Order id -> code id."""
    return f"{_pool(program_id, item_id)}:orders"


def pool_loaded(program_id: str, item_id: str) -> str:
    """Set once the item's free codes were loaded from SQL."""
    return f"{_pool(program_id, item_id)}:loaded"


def pool_keys(program_id: str, item_id: str) -> list[str]:
    """free, taken, orders, loaded: the order rw_pool_redeem and rw_pool_take take them in."""
    return [pool_free(program_id, item_id), pool_taken(program_id, item_id), pool_orders(program_id, item_id),
            pool_loaded(program_id, item_id)]


def pool_retaken(program_id: str) -> str:
    """Order id -> the order (JSON), for orders that took another code until the sweep saw
    their SQL row (fulfillment/pooled_orders.py `mend`)."""
    return f"{tag(program_id)}:pool:retaken"


def tax_counted(program_id: str, participant_id: str, year: int) -> str:
    """At least the face value of the participant's orders in the tax year, with the time zone
    and generation it counts under (fulfillment/taxes.lua)."""
    return f"{tag(program_id)}:tax:{participant_id}:{year}"


def tax_early(program_id: str, participant_id: str, year: int) -> str:
    """What was counted for the year while its counter was missing: added when it is set."""
    return f"{tax_counted(program_id, participant_id, year)}:early"
