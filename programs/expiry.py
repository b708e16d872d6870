"""Points expiry: points expire N months after they were earned, oldest first.

A participant's available balance is a queue of lots, one per earning, replayed from the
ledger: spending takes the oldest points first; a hold remembers which lots it took, so a
void (or the unused rest of a capture) gives the same points back with their original age.
The sweep moves what has expired to the program's `expired` account through the wallet,
with an idempotency key naming the newest expired lot, so two sweeps at the same moment
expire it once.

The replay follows the journal's order: the entries the chain has linked by their position
in it (wallet/chain.py `seq`), then the few not linked yet by when they were projected. The
sweep saves each participant's replay through the linked entries (`ExpiryCheckpoint`); a
replay starts from the saved one and reads only the entries after it, so neither a wallet
read nor the sweep reads a participant's whole history again. A linked entry never moves and
no entry is ever linked below the chain's head, so a replay from a checkpoint is the replay
from the start, entry for entry (tests/programs/test_expiry_checkpoints.py).
"""

from __future__ import annotations

import calendar
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any, NamedTuple

import msgspec
from piccolo.columns.combination import WhereRaw

from programs.feed import FeedEntry, points_text, publish
from programs.programs import ProgramView
from programs.tables import ExpiryCheckpoint
from kernel import keys as kernel_keys
from wallet.store import Leg, WalletStore
from kernel.idempotency import Idem
from kernel.money import in_moves
from kernel.ids import new_id
from wallet.ledger import OF_PROGRAM_NOT_INDEXED
from wallet.tables import LedgerEntry
from kernel.clock import utc

UPCOMING_WINDOW = timedelta(days=90)


class Expiring(msgspec.Struct, frozen=True):
    points: int
    expires_at: datetime


class SweepResult(msgspec.Struct, frozen=True):
    participants: int
    points: int


class Lot(msgspec.Struct, array_like=True):
    earned_at: datetime
    points: int
    tx: str


class Replay(msgspec.Struct):
    """What a participant's ledger leaves, replayed up to the chain position `through_seq`
    (0: nothing linked replayed yet): the lots of their available balance, oldest first, and
    the lots each hold took, by the hold's reference."""

    lots: list[Lot] = msgspec.field(default_factory=list)
    holds: dict[str, list[Lot]] = msgspec.field(default_factory=dict)
    through_seq: int = 0


def add_months(moment: datetime, months: int) -> datetime:
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def _take(queue: list[Lot], points: int) -> list[Lot]:
    """Removes `points` from the oldest lots; answers what was taken, lot by lot."""
    taken: list[Lot] = []
    while points > 0 and queue:
        lot = queue[0]
        part = min(points, lot.points)
        taken.append(Lot(lot.earned_at, part, lot.tx))
        lot.points -= part
        points -= part
        if lot.points == 0:
            queue.pop(0)
    return taken


def _give_back(queue: list[Lot], lots: list[Lot], points: int) -> None:
    """Returns `points` of `lots` (the newest of them stay spent) keeping their age."""
    for lot in sorted(lots, key=lambda lot: lot.earned_at):
        if points <= 0:
            break
        part = min(points, lot.points)
        queue.append(Lot(lot.earned_at, part, lot.tx))
        points -= part
    queue.sort(key=lambda lot: lot.earned_at)


def replay(state: Replay, participant_id: str, entries: list[dict[str, Any]]) -> Replay:
    """`state` moved on by `entries` (ledger rows, in the journal's order); linked entries
    move its `through_seq` too."""
    available, held = f"available:{participant_id}", f"held:{participant_id}"
    queue, holds = state.lots, state.holds
    for entry in entries:
        legs = msgspec.json.decode(entry["legs"])
        at = utc(entry["created_at"])
        reference = entry["reference"] or ""
        for source, target, points in legs:
            # Points coming back from a hold (a void, a capture's rest, or a pool order that got
            # no code: `redemption_void`, redeemed -> available) keep the age of the lots it took.
            if target == available and (source == held or (source == "redeemed" and reference in holds)):
                _give_back(queue, holds.get(reference, []), points)
            elif target == available:
                queue.append(Lot(at, points, entry["transaction_id"]))
            elif source == available and (target == held or (target == "redeemed" and reference)):
                # A hold, or a code-pool order paid in one entry (its points may come back
                # as a `redemption_void`): the lots it took are remembered by its reference.
                holds[reference] = _take(queue, points)
            elif source == available:
                _take(queue, points)
        if entry.get("seq") is not None:
            state.through_seq = max(state.through_seq, int(entry["seq"]))
    return state


def replay_lots(participant_id: str, entries: list[dict[str, Any]]) -> list[Lot]:
    """The lots left in the available balance after `entries` (ledger rows, in order)."""
    return replay(Replay(), participant_id, entries).lots


def in_journal_order(rows: list[dict[str, Any]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The linked rows by their chain position, and the rest (not linked yet) by when they
    were projected."""
    linked = sorted((row for row in rows if row["seq"] is not None), key=lambda row: row["seq"])
    return linked, sorted((row for row in rows if row["seq"] is None), key=lambda row: row["id"])


def _key(program_id: str, participant_id: str) -> str:
    return f"{program_id}:{participant_id}"


async def saved_replay(program_id: str, participant_id: str) -> Replay:
    """The participant's checkpoint, or the replay of nothing."""
    rows = await ExpiryCheckpoint.select(ExpiryCheckpoint.state).where(
        ExpiryCheckpoint.id == _key(program_id, participant_id)).run()
    return msgspec.json.decode(rows[0]["state"], type=Replay) if rows else Replay()


async def save_replay(program_id: str, participant_id: str, state: Replay) -> None:
    """Keeps `state` as the participant's checkpoint unless one further on is kept already
    (two sweeps at once, or one that read before the other linked more)."""
    await ExpiryCheckpoint.raw(
        "INSERT INTO expiry_checkpoints (id, program_id, through_seq, state, updated_at) VALUES ({}, {}, {}, {}, {}) "
        "ON CONFLICT (id) DO UPDATE SET through_seq = excluded.through_seq, state = excluded.state, "
        "updated_at = excluded.updated_at WHERE expiry_checkpoints.through_seq < excluded.through_seq",
        _key(program_id, participant_id), program_id, state.through_seq, msgspec.json.encode(state).decode(),
        datetime.now(timezone.utc))


# The sweep keeps a participant's replay once it read this many entries after their last
# checkpoint (or from the start): not a write an hour for one who barely moved.
KEEP_AFTER = 50
_COLUMNS = (LedgerEntry.id, LedgerEntry.transaction_id, LedgerEntry.legs, LedgerEntry.reference,
            LedgerEntry.created_at, LedgerEntry.seq)


def entries_after(program_id: str, participant_id: str, through_seq: int) -> Any:
    """The participant's ledger rows a replay from `through_seq` reads, those linked after it
    and those not linked yet: two ranges of ledger_entries_participant_seq (participant_id,
    seq), or all of the participant's from 0."""
    mine = (LedgerEntry.participant_id == participant_id) & WhereRaw(OF_PROGRAM_NOT_INDEXED, program_id)
    if through_seq <= 0:
        return LedgerEntry.select(*_COLUMNS).where(mine)
    return LedgerEntry.select(*_COLUMNS).where(
        (mine & (LedgerEntry.seq > through_seq)) | (mine & LedgerEntry.seq.is_null()))


class Replayed(NamedTuple):
    current: Replay  # through every entry: the participant's lots now
    # With `keep`: the replay through the linked entries, as a checkpoint keeps it, when it
    # went past the saved one by at least KEEP_AFTER entries read.
    checkpoint: Replay | None


async def participant_replay(program_id: str, participant_id: str, keep: bool = False) -> Replayed:
    """The participant's replay from their checkpoint, reading only the entries after it."""
    state = await saved_replay(program_id, participant_id)
    saved_seq = state.through_seq
    rows = await entries_after(program_id, participant_id, saved_seq).run()
    linked, unlinked = in_journal_order(rows)
    replay(state, participant_id, linked)
    checkpoint = None
    if keep and len(rows) >= KEEP_AFTER and state.through_seq > saved_seq:
        # Copied before the entries not linked yet move it on: replay moves lots in place.
        checkpoint = msgspec.json.decode(msgspec.json.encode(state), type=Replay) if unlinked else state
    return Replayed(replay(state, participant_id, unlinked), checkpoint)


async def participant_lots(program_id: str, participant_id: str) -> list[Lot]:
    return (await participant_replay(program_id, participant_id)).current.lots


def upcoming(lots: list[Lot], months: int, now: datetime) -> list[Expiring]:
    by_date: dict[datetime, int] = {}
    for lot in lots:
        expires = add_months(lot.earned_at, months)
        if now < expires <= now + UPCOMING_WINDOW:
            by_date[expires] = by_date.get(expires, 0) + lot.points
    return [Expiring(points=p, expires_at=at) for at, p in sorted(by_date.items())]


async def expiring_soon(program: ProgramView, months: int | None, participant_id: str,
                        now: datetime | None = None, available: int | None = None) -> list[Expiring]:
    """What expires in the next 90 days; nothing, without reading the ledger, from an empty
    balance (`available`, when the caller has read it)."""
    if not months or (available is not None and available <= 0):
        return []
    return upcoming(await participant_lots(program.id, participant_id), months, now or datetime.now(timezone.utc))


async def sweep(store: WalletStore, program: ProgramView, months: int, now: datetime | None = None) -> SweepResult:
    """Expires what is due for every participant of the program, once. The ledger must be
    up to date first (the caller projects the journal)."""
    now = now or datetime.now(timezone.utc)
    rows = await LedgerEntry.select(LedgerEntry.participant_id).where(
        (LedgerEntry.program_id == program.id) & LedgerEntry.participant_id.is_not_null()
    ).distinct().run()
    touched = total = 0
    for row in rows:
        participant_id = row["participant_id"]
        # Nothing can expire from an empty balance: its history is not replayed.
        balance = await store.balance(program.id, participant_id)
        available = balance["available"] if balance else 0
        if available <= 0:
            continue
        replayed = await participant_replay(program.id, participant_id, keep=True)
        if replayed.checkpoint is not None:
            await save_replay(program.id, participant_id, replayed.checkpoint)
        due = [lot for lot in replayed.current.lots if add_months(lot.earned_at, months) <= now]
        points = min(sum(lot.points for lot in due), available)
        if points <= 0:
            continue
        newest = max(due, key=lambda lot: (lot.earned_at, lot.tx))
        idem = Idem(key=kernel_keys.idempotency(program.id, "expiry", f"{participant_id}:{newest.tx}"), fingerprint="expiry")
        outcome = await store.transfer(
            # Legs of at most 10^12 points each: the wallet functions refuse a larger leg.
            program.id, new_id("tx"), "expiry", [Leg("w1:available", "acct:expired", size) for size in in_moves(points)],
            idem=idem,
            wallets=[participant_id], participant_id=participant_id, reference=f"expiry:{newest.tx}",
            metadata=msgspec.json.encode({"reason": f"points earned up to {newest.earned_at:%Y-%m-%d} expired"}).decode(),
        )
        if outcome.ok and not outcome.replayed:
            touched += 1
            total += points
            await publish(program.id, [FeedEntry(
                key=f"expiry:{outcome.tx}", participant_id=participant_id, kind="expiry",
                text=points_text(-points, program.point_name, f"expired ({months} months after they were earned)"),
                points=-points)])
    return SweepResult(participants=touched, points=total)


async def sweep_all(store: WalletStore, project: Callable[[str], Awaitable[int]],
                    now: datetime | None = None) -> dict[str, SweepResult]:
    """Sweeps every program with an expiry policy; `project` brings its ledger up to date."""
    from programs.programs import list_programs_with_expiry

    results = {}
    for program in await list_programs_with_expiry():
        await project(program.id)
        results[program.id] = await sweep(store, program, program.points_expire_months or 0, now)
    return results
