"""Points expiry: points expire N months after they were earned, oldest first.

A participant's available balance is a queue of lots, one per earning, replayed from the
ledger: spending takes the oldest points first; a hold remembers which lots it took, so a
void (or the unused rest of a capture) gives the same points back with their original age.
The sweep moves what has expired to the program's `expired` account through the wallet,
with an idempotency key naming the newest expired lot, so two sweeps at the same moment
expire it once.
"""

from __future__ import annotations

import calendar
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import msgspec

from programs.feed import FeedEntry, points_text, publish
from programs.programs import ProgramView
from kernel import keys as kernel_keys
from wallet.store import Leg, WalletStore
from kernel.idempotency import Idem
from kernel.money import in_moves
from kernel.ids import new_id
from wallet.tables import LedgerEntry
from kernel.clock import utc

UPCOMING_WINDOW = timedelta(days=90)


class Expiring(msgspec.Struct, frozen=True):
    points: int
    expires_at: datetime


class SweepResult(msgspec.Struct, frozen=True):
    participants: int
    points: int


@dataclass
class Lot:
    earned_at: datetime
    points: int
    tx: str


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


def replay_lots(participant_id: str, entries: list[dict]) -> list[Lot]:
    """The lots left in the available balance after `entries` (ledger rows, in order)."""
    available, held = f"available:{participant_id}", f"held:{participant_id}"
    queue: list[Lot] = []
    holds: dict[str, list[Lot]] = {}
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
            elif source == available and target == held:
                holds[reference] = _take(queue, points)
            elif source == available:
                _take(queue, points)
    return queue


async def participant_lots(program_id: str, participant_id: str) -> list[Lot]:
    rows = await LedgerEntry.select(LedgerEntry.transaction_id, LedgerEntry.legs, LedgerEntry.reference,
                                    LedgerEntry.created_at).where(
        (LedgerEntry.program_id == program_id) & (LedgerEntry.participant_id == participant_id)
    ).order_by(LedgerEntry.id).run()
    return replay_lots(participant_id, rows)


def upcoming(lots: list[Lot], months: int, now: datetime) -> list[Expiring]:
    by_date: dict[datetime, int] = {}
    for lot in lots:
        expires = add_months(lot.earned_at, months)
        if now < expires <= now + UPCOMING_WINDOW:
            by_date[expires] = by_date.get(expires, 0) + lot.points
    return [Expiring(points=p, expires_at=at) for at, p in sorted(by_date.items())]


async def expiring_soon(program: ProgramView, months: int | None, participant_id: str,
                        now: datetime | None = None) -> list[Expiring]:
    if not months:
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
        due = [lot for lot in await participant_lots(program.id, participant_id)
               if add_months(lot.earned_at, months) <= now]
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
