"""Reconcile Redis balances with the SQL ledger, and rebuild Redis from the ledger.

The ledger is the system of record: after a Redis loss, `rebuild` writes every wallet,
program account and open hold back from it.
"""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec
from piccolo.query.functions.aggregate import Sum

from wallet import keys
from wallet.ledger import account_sums
from kernel.replies import reply_text
from wallet.chain import restore_journal_floor
from wallet.tables import LedgerEntry


class Drift(msgspec.Struct, frozen=True):
    program_id: str
    account: str
    redis: int
    ledger: int


def stored_int(value: Any) -> int:
    """A balance as Redis holds it. Written before the bounds, a value may read "1e+14" or
    "9.2233720368547758e+18": it is read as the number it says (drift, not a crash)."""
    text = reply_text(value or "0").strip()
    try:
        return int(text)
    except ValueError:
        try:
            return int(Decimal(text))
        except (InvalidOperation, ValueError, OverflowError):
            return 0  # no number at all: shows as drift against the ledger


async def redis_accounts(client: Any, program_id: str) -> dict[str, int]:
    """Every account's balance in Redis, named as the ledger names them."""
    result: dict[str, int] = {}
    for field, value in (await client.hgetall(keys.accounts(program_id))).items():
        result[reply_text(field)] = stored_int(value)
    prefix = keys.wallet(program_id, "")
    async for key in client.scan_iter(match=keys.wallet_pattern(program_id), count=1000):
        name = reply_text(key)
        participant = name[len(prefix):]
        available, held, pending, owed = await client.hmget(name, "available", "held", "pending", "owed")
        result[f"available:{participant}"] = stored_int(available)
        result[f"held:{participant}"] = stored_int(held)
        if pending is not None:
            result[f"pending:{participant}"] = stored_int(pending)
        if owed is not None:
            result[f"owed:{participant}"] = stored_int(owed)
    return result


async def owed_from_ledger(program_id: str) -> dict[str, int]:
    """Points each participant owes according to the ledger: what returned sales left owing
    (a reversal's metadata `owed`) less what later credits paid (`owed_paid`). Owed points
    are a memo, not an account: nothing moved when they were recorded."""
    rows = (
        await LedgerEntry.select(LedgerEntry.participant_id, LedgerEntry.metadata)
        .where((LedgerEntry.program_id == program_id) & LedgerEntry.metadata.like('%"owed%'))
        .run()
    )
    owed: dict[str, int] = {}
    for row in rows:
        meta = msgspec.json.decode(row["metadata"] or "{}")
        if not isinstance(meta, dict) or not row["participant_id"]:
            continue
        delta = (meta.get("owed") if isinstance(meta.get("owed"), int) else 0) - \
            (meta.get("owed_paid") if isinstance(meta.get("owed_paid"), int) else 0)
        if delta:
            owed[row["participant_id"]] = owed.get(row["participant_id"], 0) + delta
    return owed


async def reconcile_program(client: Any, program_id: str) -> list[Drift]:
    ledger = await account_sums(program_id)
    ledger.update({f"owed:{p}": points for p, points in (await owed_from_ledger(program_id)).items()})
    live = await redis_accounts(client, program_id)
    drifts = []
    for account in sorted(set(ledger) | set(live)):
        if ledger.get(account, 0) != live.get(account, 0):
            drifts.append(Drift(program_id=program_id, account=account, redis=live.get(account, 0),
                                ledger=ledger.get(account, 0)))
    return drifts


async def rebuild_program(client: Any, program_id: str, participant_ids: list[str]) -> int:
    """Writes balances, lifetime counters and open holds from the ledger. Answers wallets written."""
    sums = await account_sums(program_id)
    lifetime_rows = (
        await LedgerEntry.select(
            LedgerEntry.participant_id, Sum(LedgerEntry.earned).as_alias("earned"),
            Sum(LedgerEntry.spent).as_alias("spent"),
        )
        .where(LedgerEntry.program_id == program_id)
        .group_by(LedgerEntry.participant_id)
        .run()
    )
    lifetime = {r["participant_id"]: (int(r["earned"] or 0), int(r["spent"] or 0)) for r in lifetime_rows}
    tokens = await free_spin_tokens(program_id)
    owed = await owed_from_ledger(program_id)
    program_fields = {a: p for a, p in sums.items() if not a.startswith(("available:", "held:", "pending:"))}
    pipe = client.pipeline(transaction=False)
    pipe.delete(keys.accounts(program_id))
    if program_fields:
        pipe.hset(keys.accounts(program_id), mapping=program_fields)
    for participant in participant_ids:
        earned, spent = lifetime.get(participant, (0, 0))
        pipe.hset(keys.wallet(program_id, participant), mapping={
            "open": 1,
            "available": sums.get(f"available:{participant}", 0),
            "held": sums.get(f"held:{participant}", 0),
            "earned": earned,
            "spent": spent,
            "free_spins": tokens.get(participant, 0),
            "pending": sums.get(f"pending:{participant}", 0),
            "owed": owed.get(participant, 0),
        })
    for hold_id, participant, points in await open_holds(program_id):
        pipe.hset(keys.hold(program_id, hold_id), mapping={
            "participant": participant, "points": points, "state": "held", "reference": hold_id,
        })
    await restore_lots(pipe, program_id)
    await pipe.execute()
    # A lost journal starts again after the chain's head, never behind it.
    await restore_journal_floor(client, program_id)
    return len(participant_ids)


async def free_spin_tokens(program_id: str) -> dict[str, int]:
    """Free-spin tokens per participant from the ledger: each gift (`free_spins`), each spin
    that used or won tokens and each returned sale that took an award's tokens back carries the
    change in its metadata's `tokens`."""
    rows = (
        await LedgerEntry.select(LedgerEntry.participant_id, LedgerEntry.metadata)
        .where((LedgerEntry.program_id == program_id) & LedgerEntry.kind.is_in(["free_spins", "spin", "reversal"]))
        .run()
    )
    tokens: dict[str, int] = {}
    for row in rows:
        meta = msgspec.json.decode(row["metadata"] or "{}")
        delta = meta.get("tokens") if isinstance(meta, dict) else None
        if isinstance(delta, int) and delta and row["participant_id"]:
            tokens[row["participant_id"]] = tokens.get(row["participant_id"], 0) + delta
    return tokens


async def open_holds(program_id: str) -> list[tuple[str, str, int]]:
    """Holds whose `hold` entry has no capture or void after it: (hold id, participant, points)."""
    rows = (
        await LedgerEntry.select(LedgerEntry.kind, LedgerEntry.reference, LedgerEntry.participant_id,
                                 LedgerEntry.points, LedgerEntry.legs)
        .where((LedgerEntry.program_id == program_id) & LedgerEntry.reference.is_not_null())
        .order_by(LedgerEntry.id)
        .run()
    )
    holds: dict[str, tuple[str, int]] = {}
    for row in rows:
        legs = msgspec.json.decode(row["legs"])
        into_held = [leg for leg in legs if leg[1].startswith("held:") and leg[0].startswith("available:")]
        out_of_held = [leg for leg in legs if leg[0].startswith("held:")]
        if into_held and row["reference"] not in holds:
            holds[row["reference"]] = (row["participant_id"], sum(leg[2] for leg in into_held))
        elif out_of_held:
            holds.pop(row["reference"], None)
    return [(hold_id, participant, points) for hold_id, (participant, points) in holds.items()]


async def restore_lots(pipe: Any, program_id: str) -> None:
    """Adds to `pipe` the pending lots, the closed ones and the returned sales' records, from
    the ledger: lots are opened by `pending_award` entries (the lot is the transaction),
    closed by `release` entries (reference: the lot) and `reversal` entries (metadata `lot`)."""
    rows = (
        await LedgerEntry.select(LedgerEntry.transaction_id, LedgerEntry.kind, LedgerEntry.participant_id,
                                 LedgerEntry.reference, LedgerEntry.metadata, LedgerEntry.legs)
        .where((LedgerEntry.program_id == program_id)
               & LedgerEntry.kind.is_in(["pending_award", "release", "reversal"]))
        .order_by(LedgerEntry.id)
        .run()
    )
    lots: dict[str, tuple[str, dict[str, Any]]] = {}
    closed: dict[str, tuple[str, str]] = {}
    reversals: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        meta = msgspec.json.decode(row["metadata"] or "{}")
        meta = meta if isinstance(meta, dict) else {}
        legs = msgspec.json.decode(row["legs"] or "[]")
        participant = row["participant_id"] or ""
        if row["kind"] == "pending_award":
            points = sum(leg[2] for leg in legs if leg[1].startswith("pending:"))
            releases = meta.get("releases_at")
            lot = {"points": points, "releases_at": releases if isinstance(releases, int) else None,
                   "reason": meta.get("reason", ""), "activity": row["reference"] or ""}
            if isinstance(meta.get("on_boards"), bool):  # whether the award counted it on leaderboards
                lot["boards"] = meta["on_boards"]
            lots[row["transaction_id"]] = (participant, lot)
        elif row["kind"] == "release":
            lots.pop(row["reference"] or "", None)
            closed[row["reference"] or ""] = (participant, f"released:{row['transaction_id']}")
        else:
            cancelled = sum(leg[2] for leg in legs if leg[0].startswith("pending:"))
            taken = sum(leg[2] for leg in legs if leg[0].startswith("available:"))
            owed = meta.get("owed") if isinstance(meta.get("owed"), int) else 0
            if cancelled and isinstance(meta.get("lot"), str):
                lots.pop(meta["lot"], None)
                closed[meta["lot"]] = (participant, f"cancelled:{row['transaction_id']}")
            reversals.setdefault(row["reference"] or "", []).append({
                "participant": participant, "points": cancelled + taken + owed, "cancelled": cancelled,
                "taken_back": taken, "owed": owed, "tx": row["transaction_id"]})
    due = keys.due_lots(program_id)
    pipe.delete(due)
    for participant in {p for p, _ in lots.values()} | {p for p, _ in closed.values()}:
        pipe.delete(keys.lots(program_id, participant), keys.closed_lots(program_id, participant))
    for lot_id, (participant, lot) in lots.items():
        pipe.hset(keys.lots(program_id, participant), lot_id, msgspec.json.encode(lot).decode())
        if lot["releases_at"] is not None:
            pipe.zadd(due, {f"{participant} {lot_id}": lot["releases_at"]})
    for lot_id, (participant, state) in closed.items():
        pipe.hset(keys.closed_lots(program_id, participant), lot_id, state)
    for activity_id, steps in reversals.items():
        record = {"fp": "reversal", "r": {"ok": True, "steps": steps}}
        pipe.set(keys.reversal(program_id, activity_id), msgspec.json.encode(record).decode(), ex=REVERSAL_TTL)


REVERSAL_TTL = 10 * 365 * 86400  # as wallet/store.py reverse: a sale is returned once
