"""The code pool's free codes in Redis (fulfillment/pool.lua): taking a code is part of the
call that takes the points, so a pool redemption is one round trip and one SQL transaction.

SQL stays the system of record of the codes (sealed, with the order each went to); Redis
knows which are free. An item's free codes are loaded from SQL when its codes are uploaded,
and lazily when a call finds the item never loaded (a Redis rebuilt, a pool from before this
module): the call answers `pool_unloaded`, the codes are loaded and the call is made again.
Loading skips every code Redis ever handed out, so a code whose SQL row does not name its
order yet is never free twice.
"""

from __future__ import annotations

from typing import Any

import msgspec

from fulfillment import keys, redemption_guard
from fulfillment.redemption_guard import Guard
from fulfillment.tables import PoolCode
from kernel.idempotency import Idem
from kernel.keys import no_record
from kernel.redis_functions import FunctionStore
from kernel.replies import Reply, reply_text
from wallet import keys as wallet_keys

LOAD_CHUNK = 1_000


class PoolReply(Reply, frozen=True):
    order: str | None = None
    code_id: str | None = None  # the code's id (its row in pool_codes)
    tx: str | None = None  # the capture's transaction; "" for an order of no points
    points: int | None = None  # recorded: what the order was charged
    meta: str | None = None  # recorded: the capture's metadata (the order's fields)
    tax: int | None = None  # 1: the call counted the order for its tax year (fulfillment/taxes.lua)
    waiting: int | None = None  # the journal's entries not yet projected, after the call


_decode = msgspec.json.Decoder(PoolReply).decode


class Redemption(msgspec.Struct, frozen=True):
    """What rw_pool_redeem is told, beyond the keys."""

    program_id: str
    item_id: str
    order_id: str
    participant_id: str
    points: int
    hold_tx: str
    capture_tx: str
    hold_meta: str
    capture_meta: str  # a JSON object; the call adds the code's id
    now_ms: str
    # The participant's tax-year counter and its arguments (fulfillment/taxes.py TaxCheck);
    # none: nothing counted.
    tax_keys: tuple[str, ...] = ()
    tax_args: tuple[Any, ...] = ()
    # A participant's redemption's guard (fulfillment/redemption_guard.py); it follows the
    # counter's keys and arguments, so it needs them.
    guard: Guard | None = None


async def load(store: FunctionStore, program_id: str, item_id: str) -> int:
    """Loads the item's free codes from SQL (oldest first) and marks it loaded; answers how
    many were added. Idempotent: a code already free, or ever taken, is left as it is."""
    rows = await PoolCode.select(PoolCode.id, PoolCode.created_at).where(
        (PoolCode.item_id == item_id) & PoolCode.order_id.is_null()).order_by(
        PoolCode.created_at).order_by(PoolCode.id).run()
    free, taken, _, loaded = keys.pool_keys(program_id, item_id)
    added = 0
    for start in range(0, max(len(rows), 1), LOAD_CHUNK):
        chunk = rows[start:start + LOAD_CHUNK]
        args: list[Any] = ["1" if start + LOAD_CHUNK >= len(rows) else "0"]
        for row in chunk:
            args += [int(row["created_at"].timestamp() * 1000), row["id"]]
        added += int(await store.fcall("rw_pool_load", [free, taken, loaded], args))
    return added


async def redeem(store: FunctionStore, r: Redemption, idem: Idem, ttl: int) -> PoolReply:
    """The points taken and a code taken for the order, in one call (see
    rw_pool_redeem); a refusal changed nothing. A guarded call raises what its guard found
    (redemption_guard.check)."""
    assert r.guard is None or r.tax_keys, "a guard follows the tax counter's keys"
    guard_keys, guard_args = (r.guard.call_keys(), r.guard.call_args()) if r.guard else ([], [])
    key_list = [idem.key or no_record(r.program_id), *_wallet_keys(r.program_id, r.participant_id, r.order_id),
                *keys.pool_keys(r.program_id, r.item_id), *r.tax_keys, *guard_keys]
    args = [idem.fingerprint, ttl, r.order_id, r.participant_id, r.points, r.hold_tx, r.capture_tx, r.hold_meta,
            r.capture_meta, r.now_ms, *r.tax_args, *guard_args]
    raw, reply = await _loaded_call(store, "rw_pool_redeem", key_list, args, r.program_id, r.item_id)
    if r.guard is not None:
        redemption_guard.check(raw, reply.code, reply.detail, reply.replayed)
    return reply


async def take(store: FunctionStore, program_id: str, item_id: str, order_id: str) -> str | None:
    """The code id the pool hands to an order already made (the same one on every call);
    None when the pool is empty."""
    _, reply = await _loaded_call(store, "rw_pool_take", keys.pool_keys(program_id, item_id), [order_id],
                                  program_id, item_id)
    return reply.code_id if reply.ok else None


async def _loaded_call(store: FunctionStore, function: str, key_list: list[str], args: list[Any], program_id: str,
                       item_id: str) -> tuple[bytes, PoolReply]:
    """The call, made again once the item's codes are loaded when it found them not loaded:
    its reply as sent and decoded."""
    raw = await store.fcall(function, key_list, args)
    reply = _decode(raw)
    if reply.code == "pool_unloaded":
        await load(store, program_id, item_id)
        raw = await store.fcall(function, key_list, args)
        reply = _decode(raw)
    return raw, reply


def _wallet_keys(program_id: str, participant_id: str, order_id: str) -> list[str]:
    return [wallet_keys.journal(program_id), wallet_keys.accounts(program_id), wallet_keys.config(program_id),
            wallet_keys.wallet(program_id, participant_id), wallet_keys.hold(program_id, order_id)]


async def retake(store: FunctionStore, program_id: str, item_id: str, order_id: str, bad_code: str,
                 order_json: str) -> str | None:
    """Another code for an order whose code SQL has on another order (rw_pool_retake); None
    when the pool is empty. The order is noted for the sweep until its SQL row is written."""
    reply = _decode(await store.fcall("rw_pool_retake", [*keys.pool_keys(program_id, item_id),
                                                         keys.pool_retaken(program_id)], [order_id, bad_code, order_json]))
    return reply.code_id if reply.ok else None


class Return(msgspec.Struct, frozen=True):
    """What rw_pool_return is told, beyond the keys."""

    program_id: str
    order_id: str
    participant_id: str
    tx: str
    meta: str
    now_ms: str


async def give_back(store: FunctionStore, r: Return, item_id: str, given_up: str, idem: Idem) -> str | None:
    """The order's captured points back to the participant, once, and no code ever taken for
    it again (rw_pool_return); the request's record becomes the out-of-stock refusal. Answers
    None, or the code the order holds when a concurrent attempt took another than `given_up`
    (nothing was returned: the caller tries that code)."""
    # rw_pool_redeem's keys less the config, in the positions every build has called it with.
    journal, accounts, _, wallet, hold = _wallet_keys(r.program_id, r.participant_id, r.order_id)
    key_list = [idem.key or no_record(r.program_id), journal, accounts, wallet, hold,
                keys.pool_orders(r.program_id, item_id)]
    reply = _decode(await store.fcall("rw_pool_return", key_list, [idem.fingerprint, r.order_id, r.participant_id,
                                                                   r.tx, r.meta, r.now_ms, given_up]))
    return reply.code_id if reply.code == "has_code" else None


RETURNED = "returned"  # what `held_code` answers for an order whose points went back


async def held_code(store: FunctionStore, program_id: str, item_id: str, order_id: str) -> str | None:
    """The code the pool holds for the order now (after a retake, not the journal's), or
    RETURNED."""
    found = await store.client.hget(keys.pool_orders(program_id, item_id), order_id)
    return None if found is None else reply_text(found)


async def retaken(store: FunctionStore, program_id: str) -> dict[str, str]:
    """The orders rw_pool_retake noted, not yet seen written: order id -> the order (JSON)."""
    found = await store.client.hgetall(keys.pool_retaken(program_id))
    return {reply_text(k): reply_text(v) for k, v in found.items()}


async def seen_written(store: FunctionStore, program_id: str, order_id: str) -> None:
    await store.client.hdel(keys.pool_retaken(program_id), order_id)
