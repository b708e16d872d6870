"""How many orders a program has in each status, and how many are stuck: counted in SQL with
the status index, so the console's Overview costs the same at ten orders or a million."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from piccolo.query.functions.aggregate import Count

from fulfillment.tables import Order

# An order not delivered a day after it was made needs a person to look at it.
STUCK_AFTER = timedelta(hours=24)


async def by_status(program_id: str) -> dict[str, int]:
    rows = await Order.select(Order.status, Count(Order.id).as_alias("n")).where(
        Order.program_id == program_id).group_by(Order.status).run()
    return {r["status"]: int(r["n"]) for r in rows}


async def stuck(program_id: str, now: datetime | None = None) -> int:
    """Orders still pending or claimed a day after they were made."""
    before = (now or datetime.now(timezone.utc)) - STUCK_AFTER
    return await Order.count().where(
        (Order.program_id == program_id) & Order.status.is_in(["pending", "claimed"])
        & (Order.created_at < before)).run()
