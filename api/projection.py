"""What the journal projector writes besides the ledger: each package's followers, wired in
one place. Call `wire()` once at the start of any process that projects the journal (the
API, `reward-wallet worker`, the CLI's projecting commands)."""

from __future__ import annotations

from fulfillment import partner_orders, pooled_orders, settlements
from games import spin_projection
from programs import audit, pending
from wallet.journal import Follower, JournalEntry, Rows, followed, register_followers


def followers() -> dict[str, Follower]:
    """Per journal kind, the function that answers the SQL rows that follow from its entries."""
    return {"spin": spin_projection.write_spins, "grant": both(audit.money_rows, pending.owed_paid_of),
            "deduction": audit.money_rows, "hold": both(audit.money_rows, partner_orders.write_partner_orders),
            "award": pending.owed_paid_of,
            "release": pending.feed_of, "reversal": pending.feed_of, "sweepstakes_prize": pending.owed_paid_of,
            "prize_substitute": pending.owed_paid_of,
            "redemption": both(pooled_orders.write_pool_orders, settlements.write_settled)}


def both(first: Follower, second: Follower) -> Follower:
    """Two packages' followers of one kind, as one; one that fails (asked again first) does not
    take the other's rows with it (its own are left to its package's repair, as the projector
    does for any)."""

    async def follow(program_id: str, entries: list[JournalEntry]) -> list[Rows]:
        rows: list[Rows] = []
        for follower in (first, second):
            rows += await followed(follower, program_id, entries, getattr(follower, "__qualname__", str(follower)))
        return rows

    return follow


def wire() -> None:
    register_followers(followers())
