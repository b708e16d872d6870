"""Paying the winners, and forfeits: one row per pick of the draw, each prize paid once
(points under a transaction id pinned before any point moves, an item as an order with a
deterministic id), so a retried draw never pays twice. A winner who forfeits is replaced by
the first alternate not yet promoted."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec

from catalog.items import Pricing
from fulfillment.redemptions import place_order
from fulfillment.sealing import Sealer
from games.sweepstakes import keys as swkeys
from games.sweepstakes.design import PointsPrize, Prize, decode_spec, prize_ranks, sweepstakes_row, utc_now
from games.sweepstakes.report import WinnersReport, report
from games.sweepstakes.tables import SweepstakesWinner
from programs import standings
from programs.feed import FeedEntry, publish
from programs.programs import ProgramView
from wallet import accounts
from kernel import keys as kernel_keys
from kernel.errors import Conflict, DomainError, NotFound
from kernel.ids import new_id
from kernel.replies import reply_text
from wallet.store import WalletStore
from kernel.idempotency import Idem
from wallet.tables import LedgerEntry

PAY_LOCK_MS = 120_000


async def record_winners(store: WalletStore, row: dict[str, Any], proof: dict[str, Any]) -> None:
    """One row per pick, from the published proof (so a crash before this step is repaired
    by drawing again)."""
    spec = decode_spec(row["spec"])
    picks = [(p, "winner") for p in proof["winners"]] + [(p, "alternate") for p in proof["alternates"]]
    if not picks:
        return
    owners = await store.client.hmget(swkeys.owners(row["program_id"], row["id"]), [p for p, _ in picks])
    prizes = prize_ranks(spec)
    now = utc_now()
    rows = []
    for number, ((public_id, role), owner) in enumerate(zip(picks, owners), start=1):
        prize = prizes[number - 1] if role == "winner" and number - 1 < len(prizes) else None
        status = "alternate" if role == "alternate" else ("pending" if prize is not None else "none")
        rows.append(SweepstakesWinner(
            id=f"{row['id']}:{number}", sweepstakes_id=row["id"], program_id=row["program_id"], pick=number,
            role=role, public_id=public_id, participant_id=reply_text(owner) if owner is not None else "",
            prize=msgspec.json.encode(prize).decode() if prize is not None else None, status=status, detail="",
            created_at=now))
    await SweepstakesWinner.insert(*rows).on_conflict(action="DO NOTHING").run()


def _prize_order_id(sweepstakes_id: str, pick: int) -> str:
    # Deterministic, so paying the same pick again finds its order instead of placing another.
    return "ord_" + hashlib.sha256(f"{sweepstakes_id}:{pick}".encode()).hexdigest()[:26]


async def pay_winners(store: WalletStore, sealer: Sealer, program: ProgramView, pricing: Pricing,
                      row: dict[str, Any]) -> None:
    # One payer at a time (two draw calls may overlap); the lock expires if the payer dies,
    # and every payment is idempotent per pick anyway.
    lock = swkeys.paying(program.id, row["id"])
    if not await store.client.set(lock, "1", nx=True, px=PAY_LOCK_MS):
        return
    try:
        await _pay_due(store, sealer, program, pricing, row)
    finally:
        await store.client.delete(lock)


async def _pay_due(store: WalletStore, sealer: Sealer, program: ProgramView, pricing: Pricing,
                   row: dict[str, Any]) -> None:
    spec = decode_spec(row["spec"])
    due = await SweepstakesWinner.select().where(
        (SweepstakesWinner.sweepstakes_id == row["id"]) & SweepstakesWinner.status.is_in(["pending", "failed"])
    ).order_by(SweepstakesWinner.pick).run()
    for winner in due:
        prize = msgspec.json.decode(winner["prize"], type=Prize)
        try:
            if isinstance(prize, PointsPrize):
                values = await _pay_points(store, program, row, winner, prize.points, spec.name)
                text = f"+{prize.points:,} {program.point_name}: you won {spec.name}"
                points: int | None = prize.points
            else:
                values = await _pay_item(store, sealer, program, pricing, row, winner, prize.item_id)
                text = f"You won {spec.name}: {prize.description or 'a gift card'} is on its way"
                points = None
        except DomainError as exc:
            await SweepstakesWinner.update({SweepstakesWinner.status: "failed", SweepstakesWinner.detail: exc.detail}) \
                .where(SweepstakesWinner.id == winner["id"]).run()
            continue
        # A failure's detail is cleared once paid; a replacement's note ("replaces pick n") stays.
        detail = "" if winner["status"] == "failed" else winner["detail"]
        # Conditional: a forfeit that raced this payment keeps its say (and the report shows it).
        await SweepstakesWinner.update({SweepstakesWinner.status: "paid", SweepstakesWinner.detail: detail,
                                        **values}).where((SweepstakesWinner.id == winner["id"])
                                                         & SweepstakesWinner.status.is_in(["pending", "failed"])).run()
        await publish(program.id, [FeedEntry(
            key=f"sweepstakes:{row['id']}:won:{winner['pick']}", participant_id=winner["participant_id"],
            kind="sweepstakes_win", text=text, points=points, reference=row["id"])])


async def _pay_points(store: WalletStore, program: ProgramView, row: dict[str, Any], winner: dict[str, Any],
                      points: int, name: str) -> dict[Any, Any]:
    # The transaction id is pinned on the winner row before any point moves: a draw retried
    # after the idempotency record expired finds that transaction in the ledger and pays nothing.
    tx = await _pinned_transaction(winner)
    if await _in_ledger(tx):
        return {SweepstakesWinner.transaction_id: tx}
    idem = Idem(key=kernel_keys.idempotency(program.id, "sweepstakes", f"{row['id']}:{winner['pick']}"), fingerprint="prize")
    # The boards that count prizes (count_prizes) move in the grant's own call, once it applies.
    boards = await standings.grant_boards(program.id, winner["participant_id"], standings.UNKNOWN_TEAM, tx, utc_now(),
                                          prizes=True)
    try:
        moved = await accounts.grant(store, program.id, winner["participant_id"], points, f"won {name}", idem,
                                     kind="sweepstakes_prize", reference=row["id"], tx=tx, boards=boards)
    except DomainError:
        # A refusal (budget) is recorded with the key; drop it so a later draw call can pay.
        await store.client.delete(idem.key)
        raise
    return {SweepstakesWinner.transaction_id: moved.move.transaction_id}


async def _in_ledger(transaction_id: str | None) -> bool:
    return bool(transaction_id) and bool(
        await LedgerEntry.exists().where(LedgerEntry.transaction_id == transaction_id).run())


async def _pinned_transaction(winner: dict[str, Any]) -> str:
    """The id this pick's payment is made under: chosen once, kept on the winner row."""
    await SweepstakesWinner.update({SweepstakesWinner.transaction_id: new_id("tx")}).where(
        (SweepstakesWinner.id == winner["id"]) & SweepstakesWinner.transaction_id.is_null()).run()
    pinned = await SweepstakesWinner.select(SweepstakesWinner.transaction_id).where(
        SweepstakesWinner.id == winner["id"]).first().run()
    return str(pinned["transaction_id"])


async def _pay_item(store: WalletStore, sealer: Sealer, program: ProgramView, pricing: Pricing,
                    row: dict[str, Any], winner: dict[str, Any], item_id: str) -> dict[Any, Any]:
    order_id = _prize_order_id(row["id"], winner["pick"])
    # place_order carries on an order a crash left half-made (new, or pending with no code).
    await place_order(store, sealer, program, pricing, winner["participant_id"], item_id, None, source="prize",
                      order_id=order_id)
    return {SweepstakesWinner.order_id: order_id}


async def forfeit(store: WalletStore, sealer: Sealer, program: ProgramView, pricing: Pricing, sweepstakes_id: str,
                  pick: int, reason: str) -> WinnersReport:
    """A winner who did not claim (or is not eligible) gives up the prize; the first alternate
    not yet promoted, in draw order, takes it over and is paid. A prize already paid cannot
    be forfeited (take it back with a deduction first if it must be)."""
    row = await sweepstakes_row(program.id, sweepstakes_id)
    if row["status"] != "drawn":
        raise Conflict("only a drawn sweepstakes has winners")
    winner = await SweepstakesWinner.select().where(SweepstakesWinner.id == f"{sweepstakes_id}:{pick}").first().run()
    if winner is None or winner["role"] != "winner":
        raise NotFound("no such winner")
    if winner["status"] in ("paid", "forfeited"):
        raise Conflict(f"this winner's prize is {winner['status']}; it cannot be forfeited")
    if await _in_ledger(winner["transaction_id"]):  # paid, though a crash kept the row from saying so
        raise Conflict("this winner's prize is paid; it cannot be forfeited")
    taken = await SweepstakesWinner.update({SweepstakesWinner.status: "forfeited", SweepstakesWinner.detail: reason}) \
        .where((SweepstakesWinner.id == winner["id"]) & (SweepstakesWinner.status == winner["status"])) \
        .returning(SweepstakesWinner.id).run()
    if not taken:
        raise Conflict("this winner changed meanwhile; read the report and try again")
    alternates = await SweepstakesWinner.select().where(
        (SweepstakesWinner.sweepstakes_id == sweepstakes_id) & (SweepstakesWinner.role == "alternate")
        & (SweepstakesWinner.status == "alternate")).order_by(SweepstakesWinner.pick).run()
    for alternate in alternates:
        promoted = await SweepstakesWinner.update({
            SweepstakesWinner.role: "winner", SweepstakesWinner.prize: winner["prize"],
            SweepstakesWinner.status: "pending" if winner["prize"] else "none",
            SweepstakesWinner.detail: f"replaces pick {pick}",
        }).where((SweepstakesWinner.id == alternate["id"]) & (SweepstakesWinner.status == "alternate")) \
            .returning(SweepstakesWinner.id).run()
        if promoted:  # else a concurrent forfeit took this alternate: try the next one
            break
    await pay_winners(store, sealer, program, pricing, row)
    return await report(store, program, sweepstakes_id)
