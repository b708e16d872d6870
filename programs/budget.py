"""A program's budget in points and money: funded, issued, redeemed, expired, outstanding.

Every figure comes from the program accounts in Redis. By double entry the program's
accounts and its participants' balances sum to zero, so what participants hold (available +
held: the liability) is minus the sum of every program account: funding not left in the
budget or a prize pool and not redeemed, expired, spent on sweepstakes tickets or paid out
as item prizes.
"""

from __future__ import annotations

import msgspec

from programs.programs import Money, ProgramView
from wallet import keys
from wallet.store import WalletStore


class Figure(msgspec.Struct, frozen=True):
    points: int
    value: Money


class BudgetView(msgspec.Struct, frozen=True):
    funded: Figure
    issued: Figure
    redeemed: Figure
    expired: Figure
    outstanding: Figure
    available: Figure
    in_prize_pools: Figure
    spent_on_games: Figure
    overdrawn: bool
    blocked: bool
    allow_overdraft: bool


async def budget_view(store: WalletStore, program: ProgramView) -> BudgetView:
    accounts = await store.program_accounts(program.id)
    config = await store.client.hgetall(keys.config(program.id))
    blocked = config.get(b"blocked", config.get("blocked")) in (b"1", "1")

    def figure(points: int) -> Figure:
        return Figure(points=points, value=Money(amount=points * program.point_value.amount,
                                                 currency=program.point_value.currency))

    funded = -accounts.get("world", 0)
    budget = accounts.get("budget", 0)
    redeemed = accounts.get("redeemed", 0)
    expired = accounts.get("expired", 0)
    pools = sum(v for k, v in accounts.items() if k.startswith("pool:"))
    issued = funded - budget - pools
    # Tickets bought (sweepstakes) and item prizes won (prizes) left the participants too.
    spent_on_games = accounts.get("sweepstakes", 0) + accounts.get("prizes", 0)
    outstanding = -sum(accounts.values())
    return BudgetView(funded=figure(funded), issued=figure(issued), redeemed=figure(redeemed),
                      expired=figure(expired), outstanding=figure(outstanding), available=figure(budget),
                      in_prize_pools=figure(pools), spent_on_games=figure(spent_on_games), overdrawn=budget < 0, blocked=blocked,
                      allow_overdraft=program.allow_overdraft)


class Breakage(msgspec.Struct, frozen=True):
    """Points issued that are expected never to be redeemed, at the rate the program's own
    history shows: of the points that have left participants, the share that expired."""

    rate: float
    expected: Figure


def expected_breakage(view: BudgetView) -> Breakage | None:
    """None until some points have left participants (no history, no rate)."""
    left = view.expired.points + view.redeemed.points + view.spent_on_games.points
    if left <= 0 or view.outstanding.points <= 0:
        return None
    rate = view.expired.points / left
    points = int(view.outstanding.points * rate)
    per_point = view.outstanding.value.amount // view.outstanding.points
    return Breakage(rate=rate, expected=Figure(points=points, value=Money(amount=points * per_point,
                                                                         currency=view.outstanding.value.currency)))
