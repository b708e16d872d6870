"""What admins and participants read: a sweepstakes with its live totals and odds, the
admin's list, a participant's open sweepstakes with their tickets, the sweepstakes they
entered (past ones too, with their outcome), and the winners report. A read past the close
time closes the sweepstakes first."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import msgspec

from catalog.items import Pricing
from games.sweepstakes import keys as swkeys
from games.sweepstakes.design import MySweepstakes, MySweepstakesPage, Status, SweepstakesPage, SweepstakesView, \
    decode_spec, utc_now, view_of
from games.sweepstakes.entries import close_row, current_row, public_id_of
from games.sweepstakes.tables import Sweepstakes, SweepstakesWinner
from programs.programs import ProgramView
from kernel.clock import utc
from kernel.pages import decode_cursor, encode_cursor, next_cursor
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


# open: still taking entries; awaiting_draw: closed, not drawn yet; then what the draw made
# of me: won (a winner's pick), alternate (picked after the winners, in case one forfeits),
# not_won.
Outcome = Literal["open", "awaiting_draw", "won", "alternate", "not_won"]


class MySweepstakesEntry(msgspec.Struct, frozen=True, omit_defaults=True):
    sweepstakes_id: str
    name: str
    status: Status
    closes_at: datetime
    my_tickets: int
    total_tickets: int
    outcome: Outcome
    proof_url: str  # the draw's proof (404 until the draw)
    entries_url: str  # the entries file (404 while open)
    drawn_at: datetime | None = None
    pick: int | None = None  # my place in the draw, when picked
    prize: Any = None  # a winner's prize


class MySweepstakesEntryPage(msgspec.Struct, frozen=True):
    items: list[MySweepstakesEntry]
    next_cursor: str | None


# Sweepstakes are read newest first in batches; a page answers once it holds `limit`
# entries or has looked at SCAN_BUDGET sweepstakes (then it may hold fewer, with a cursor
# to carry on), so a participant who entered few of many costs one request a bounded time.
SCAN_BATCH = 100
SCAN_BUDGET = 1000


async def _tickets_held(store: WalletStore, program_id: str, participant_id: str,
                        rows: list[dict[str, Any]]) -> list[tuple[int, int]]:
    """(my tickets, all tickets) per row, in two pipelined round trips: each sweepstakes'
    pseudonym key and live total, then my pseudonym's tickets."""
    pipe = store.client.pipeline(transaction=False)
    for row in rows:
        pipe.hmget(swkeys.config(program_id, row["id"]), ["pidk", "tickets"])
    configs = await pipe.execute()
    pipe = store.client.pipeline(transaction=False)
    asked = []
    for row, (key, _) in zip(rows, configs):
        if key is not None:
            pipe.hget(swkeys.tickets(program_id, row["id"]), public_id_of(reply_text(key), participant_id))
            asked.append(row["id"])
    held = dict(zip(asked, await pipe.execute())) if asked else {}
    return [(int(held.get(row["id"]) or 0), int(total or 0)) for row, (_, total) in zip(rows, configs)]


async def _entry_views(store: WalletStore, participant_id: str,
                       found: list[tuple[dict[str, Any], int, int]]) -> list[MySweepstakesEntry]:
    ids = [row["id"] for row, _, _ in found]
    picks = {w["sweepstakes_id"]: w for w in await SweepstakesWinner.select().where(
        SweepstakesWinner.sweepstakes_id.is_in(ids) & (SweepstakesWinner.participant_id == participant_id)
    ).order_by(SweepstakesWinner.pick, ascending=False).run()} if ids else {}
    views = []
    for row, mine_held, live_total in found:
        if row["status"] == "open" and utc(row["closes_at"]) <= utc_now():
            row = await close_row(store, row)  # past its close time: closed on first sight
        status = row["status"]
        pick = picks.get(row["id"])
        outcome: Outcome = "open" if status == "open" else "awaiting_draw" if status == "closed" \
            else "not_won" if pick is None else "won" if pick["role"] == "winner" else "alternate"
        views.append(MySweepstakesEntry(
            sweepstakes_id=row["id"], name=row["name"], status=status, closes_at=utc(row["closes_at"]),
            my_tickets=mine_held, total_tickets=live_total if status == "open" else row["total_tickets"],
            outcome=outcome, proof_url=f"/v1/public/sweepstakes/{row['id']}/proof",
            entries_url=f"/v1/public/sweepstakes/{row['id']}/entries.csv", drawn_at=utc(row["drawn_at"]),
            pick=pick["pick"] if pick is not None else None,
            prize=msgspec.json.decode(pick["prize"]) if pick is not None and pick["prize"] else None))
    return views


async def my_entries(store: WalletStore, program: ProgramView, participant_id: str, limit: int = 50,
                     cursor: str | None = None) -> MySweepstakesEntryPage:
    """The sweepstakes I hold tickets in, open, closed and drawn, newest first, each with my
    tickets and, once drawn, whether I won, am an alternate or did not win."""
    after = decode_cursor(cursor)
    found: list[tuple[dict[str, Any], int, int]] = []
    looked = 0
    while True:
        where = Sweepstakes.program_id == program.id
        if after is not None:
            where &= Sweepstakes.id < after
        rows = await Sweepstakes.select().where(where).order_by(Sweepstakes.id, ascending=False) \
            .limit(SCAN_BATCH).run()
        for row, (held, total) in zip(rows, await _tickets_held(store, program.id, participant_id, rows)
                                      if rows else []):
            after, looked = row["id"], looked + 1
            if held > 0:
                found.append((row, held, total))
            if len(found) == limit or looked == SCAN_BUDGET:
                more = await Sweepstakes.exists().where(
                    (Sweepstakes.program_id == program.id) & (Sweepstakes.id < after)).run()
                return MySweepstakesEntryPage(items=await _entry_views(store, participant_id, found),
                                              next_cursor=encode_cursor(after) if more else None)
        if len(rows) < SCAN_BATCH:
            return MySweepstakesEntryPage(items=await _entry_views(store, participant_id, found), next_cursor=None)


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
