"""A program's points moved per UTC day, kept as the projector writes the ledger.

`add_to_totals` runs inside the ledger batch's own transaction, over the entries of the batch
that were not in the ledger yet: an entry projected twice (a batch retried after a crash
before its acknowledgement) adds nothing the second time, and a batch rolled back adds
nothing at all. So the totals are exactly the ledger's, summed by day, and the console's
90-day chart reads 90 rows whatever the ledger's size.

Issued is what entered participants' lifetime earnings; spent what left their available
balances (redemptions, spins, tickets); redeemed and expired the net movement into those
program accounts.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from typing import Any

import msgspec

from kernel.sql_steps import Execute, ExecuteMany, Fetch, Steps, marks, postgres
from wallet.tables import DailyTotal, LedgerEntry

FIGURES = ("issued", "spent", "redeemed", "expired")


class DayTotal(msgspec.Struct, frozen=True):
    day: date
    issued: int = 0
    spent: int = 0
    redeemed: int = 0
    expired: int = 0


def _sums(entries: list[Any]) -> dict[str, list[int]]:
    by_day: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for e in entries:
        figures = by_day[e.created_at.astimezone(timezone.utc).date().isoformat()]
        figures[0] += e.earned
        figures[1] += e.spent
        for source, target, points in e.legs:
            for account, sign in ((target, 1), (source, -1)):
                if account == "redeemed":
                    figures[2] += sign * points
                elif account == "expired":
                    figures[3] += sign * points
    return {day: f for day, f in by_day.items() if any(f)}


def add_to_totals(engine: Any, program_id: str, entries: list[Any]) -> Steps:
    """Adds the entries not yet in the ledger to their days' totals: steps of the batch's own
    transaction (kernel/sql_steps.py), before the entries are written."""
    if postgres(engine):
        # Two projectors' batches of one program could each see an entry as new under READ
        # COMMITTED and both count it; this lock, held to the end of the transaction, makes
        # the second wait and then see the first's entries.
        yield Execute("SELECT pg_advisory_xact_lock(hashtext($1))", ("daily:" + program_id,))
    ids = [e.transaction_id for e in entries]
    present: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = tuple(ids[start:start + 500])
        rows = yield Fetch(f"SELECT transaction_id FROM {LedgerEntry._meta.tablename} "
                           f"WHERE transaction_id IN ({', '.join(marks(engine, len(chunk)))})", chunk)
        present.update(r["transaction_id"] for r in rows)
    sums = _sums([e for e in entries if e.transaction_id not in present])
    if not sums:
        return
    table = DailyTotal._meta.tablename
    add = ", ".join(f"{name} = {table}.{name} + excluded.{name}" for name in FIGURES)
    yield ExecuteMany(f"INSERT INTO {table} (id, program_id, day, issued, spent, redeemed, expired) "
                      f"VALUES ({', '.join(marks(engine, 7))}) ON CONFLICT (id) DO UPDATE SET {add}",
                      [(f"{program_id}:{day}", program_id, day, *figures) for day, figures in sorted(sums.items())])


async def last_days(program_id: str, days: int = 90, today: date | None = None) -> list[DayTotal]:
    """The last `days` UTC days, oldest first, a day without movement as zeros."""
    today = today or datetime.now(timezone.utc).date()
    first = today - timedelta(days=days - 1)
    rows = await DailyTotal.select().where(
        (DailyTotal.program_id == program_id) & (DailyTotal.day >= first.isoformat())).run()
    found = {r["day"]: r for r in rows}
    out = []
    for offset in range(days):
        day = first + timedelta(days=offset)
        row = found.get(day.isoformat())
        out.append(DayTotal(day=day, **{name: int(row[name]) for name in FIGURES}) if row else DayTotal(day=day))
    return out
