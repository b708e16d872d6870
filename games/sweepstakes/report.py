"""What admins and participants read: a sweepstakes with its live totals and odds, the
admin's list, a participant's open sweepstakes with their tickets, and the winners report.
A read past the close time closes the sweepstakes first."""

from __future__ import annotations

from typing import Any

import msgspec

from catalog.items import Pricing
from games.sweepstakes import keys as swkeys
from games.sweepstakes.design import MySweepstakes, MySweepstakesPage, Status, SweepstakesPage, SweepstakesView, \
    decode_spec, utc_now, view_of
from games.sweepstakes.entries import current_row, public_id_of
from games.sweepstakes.tables import Sweepstakes, SweepstakesWinner
from programs.programs import ProgramView
from kernel.pages import decode_cursor, next_cursor
from kernel.replies import reply_text
from wallet.store import WalletStore


class WinnerView(msgspec.Struct, frozen=True, omit_defaults=True):
    pick: int
    role: str
    public_id: str
    participant_id: str
    status: str
    prize: Any = None
    transaction_id: str | None = None
    order_id: str | None = None
    detail: str = ""


class WinnersReport(msgspec.Struct, frozen=True):
    sweepstakes_id: str
    status: str
    total_tickets: int
    entrants: int
    paid_tickets: int
    free_tickets: int
    points_collected: int
    winners: list[WinnerView]


async def get(store: WalletStore, program: ProgramView, sweepstakes_id: str, pricing: Pricing) -> SweepstakesView:
    return await view_of(store, program, await current_row(store, program.id, sweepstakes_id), pricing)


async def list_all(store: WalletStore, program: ProgramView, pricing: Pricing, limit: int = 50,
                   cursor: str | None = None, status: Status | None = None) -> SweepstakesPage:
    after = decode_cursor(cursor)
    where = Sweepstakes.program_id == program.id
    if after is not None:
        where &= Sweepstakes.id < after
    if status is not None:
        where &= Sweepstakes.status == status
    rows = await Sweepstakes.select().where(where).order_by(Sweepstakes.id, ascending=False).limit(limit + 1).run()
    return SweepstakesPage(items=[await view_of(store, program, r, pricing) for r in rows[:limit]],
                           next_cursor=next_cursor([r["id"] for r in rows], limit))


async def _my_tickets(store: WalletStore, program_id: str, row: dict[str, Any], participant_id: str) -> int:
    key = await store.client.hget(swkeys.config(program_id, row["id"]), "pidk")
    if key is None:
        return 0
    held = await store.client.hget(swkeys.tickets(program_id, row["id"]), public_id_of(reply_text(key), participant_id))
    return int(held or 0)


async def mine(store: WalletStore, program: ProgramView, participant_id: str, pricing: Pricing,
               limit: int = 50, cursor: str | None = None) -> MySweepstakesPage:
    """Open sweepstakes (still before their close), newest first, with my tickets and odds."""
    after = decode_cursor(cursor)
    where = (Sweepstakes.program_id == program.id) & (Sweepstakes.status == "open") \
        & (Sweepstakes.closes_at > utc_now())
    if after is not None:
        where &= Sweepstakes.id < after
    rows = await Sweepstakes.select().where(where).order_by(Sweepstakes.id, ascending=False).limit(limit + 1).run()
    items = [await _mine_one(store, program, r, participant_id, pricing) for r in rows[:limit]]
    return MySweepstakesPage(items=items, next_cursor=next_cursor([r["id"] for r in rows], limit))


async def _mine_one(store: WalletStore, program: ProgramView, row: dict[str, Any], participant_id: str,
                    pricing: Pricing) -> MySweepstakes:
    view = await view_of(store, program, row, pricing)
    tickets = await _my_tickets(store, program.id, row, participant_id)
    total = view.odds.total_tickets
    return MySweepstakes(sweepstakes=view, my_tickets=tickets,
                         tickets_left=max(0, view.max_entries_per_participant - tickets),
                         my_chance=(tickets / total) if total else None)


async def my_one(store: WalletStore, program: ProgramView, participant_id: str, sweepstakes_id: str,
                 pricing: Pricing) -> MySweepstakes:
    row = await current_row(store, program.id, sweepstakes_id)
    return await _mine_one(store, program, row, participant_id, pricing)


async def report(store: WalletStore, program: ProgramView, sweepstakes_id: str) -> WinnersReport:
    row = await current_row(store, program.id, sweepstakes_id)
    spec = decode_spec(row["spec"])
    raw = await store.client.hmget(swkeys.config(program.id, sweepstakes_id), "tickets", "entrants", "paid", "free")
    total, entrants, paid, free = (int(v or 0) for v in raw)
    winners = await SweepstakesWinner.select().where(SweepstakesWinner.sweepstakes_id == sweepstakes_id) \
        .order_by(SweepstakesWinner.pick).run()
    return WinnersReport(
        sweepstakes_id=sweepstakes_id, status=row["status"], total_tickets=total, entrants=entrants,
        paid_tickets=paid, free_tickets=free, points_collected=paid * spec.entry_cost_points,
        winners=[WinnerView(pick=w["pick"], role=w["role"], public_id=w["public_id"],
                            participant_id=w["participant_id"], status=w["status"],
                            prize=msgspec.json.decode(w["prize"]) if w["prize"] else None,
                            # A pinned id names a payment only once it is made.
                            transaction_id=w["transaction_id"] if w["status"] == "paid" else None, order_id=w["order_id"], detail=w["detail"])
                 for w in winners])
