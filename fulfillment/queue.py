"""The partners' queue: claim a batch of orders with a lease.

An order is handed to one claimant at a time: `pending` orders, and `claimed` ones whose
lease has expired (they return to the queue by themselves). On Postgres the candidates are
locked with FOR UPDATE SKIP LOCKED, so concurrent claimants take disjoint rows without
waiting; on SQLite the single UPDATE ... RETURNING runs under the database's write lock.
Either way an unexpired lease is never handed twice. Each claim gets a new `lease_id`,
which fulfil and fail may present to prove the lease is still theirs.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

from piccolo.engine.postgres import PostgresEngine

from fulfillment.tables import Order
from kernel.ids import new_id

# The orders a partner may hold, as the partial index orders_open has them: written into a
# read's SQL in these words, it reads them from that index, not from every order there is.
OPEN = "status IN ('pending', 'claimed')"

_CANDIDATES = """
    SELECT id FROM orders
    WHERE program_id = {} AND partner_id = {} AND """ + OPEN + """
      AND (status = 'pending' OR (status = 'claimed' AND lease_expires_at < {}))
    ORDER BY created_at, id
    LIMIT {}
"""

# The same condition again, as a CASE: written with OR, SQLite answered it from orders_status
# (every pending and every claimed order of every program) instead of looking the candidates
# up by id.
_CLAIM = """
    UPDATE orders
    SET status = 'claimed', lease_id = {}, lease_expires_at = {}, attempts = attempts + 1, updated_at = {}
    WHERE id IN ({candidates})
      AND CASE status WHEN 'pending' THEN TRUE WHEN 'claimed' THEN lease_expires_at < {} ELSE FALSE END
    RETURNING *
"""


async def claim(program_id: str, partner_id: str, limit: int, lease_seconds: int,
                now: datetime | None = None) -> list[dict[str, Any]]:
    now = now or datetime.now(timezone.utc)
    lease_id = new_id("lease")
    expires = now + timedelta(seconds=lease_seconds)
    candidates = _CANDIDATES
    if isinstance(Order._meta.db, PostgresEngine):
        candidates += " FOR UPDATE SKIP LOCKED"
    sql = _CLAIM.replace("{candidates}", candidates)
    # The rows as the claim left them (RETURNING *: the same values and types as a SELECT on
    # SQLite and Postgres alike), oldest first.
    claimed = await Order.raw(sql, lease_id, expires, now, program_id, partner_id, now, limit, now).run()
    return sorted(claimed, key=lambda r: (r["created_at"], r["id"]))
