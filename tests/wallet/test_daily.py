"""The daily totals the projector keeps for the console's 90-day chart: the ledger's own
figures summed by UTC day, counted once however often a batch is projected, at once or
again after a crash."""

from __future__ import annotations

import asyncio
from datetime import date, datetime, timedelta, timezone

import pytest

from kernel.ids import new_id
from wallet.daily import last_days
from wallet.journal import JournalEntry, write_batch

pytestmark = [pytest.mark.sql, pytest.mark.usefixtures("migrated")]

DAY = datetime(2026, 11, 30, 23, 59, 59, tzinfo=timezone.utc)


def entry(kind: str, at: datetime, earned: int = 0, spent: int = 0,
          legs: list[tuple[str, str, int]] | None = None) -> JournalEntry:
    return JournalEntry(stream_id=f"{int(at.timestamp() * 1000)}-0", transaction_id=new_id("tx"), kind=kind,
                        participant_id="ptc_1", points=earned - spent, earned=earned, spent=spent, reference=None,
                        metadata="{}", legs=legs or [], created_at=at)


async def test_each_day_sums_its_entries_once_however_often_they_are_projected() -> None:
    program_id = new_id("prg")
    batch = [
        entry("grant", DAY, earned=150, legs=[("budget", "ptc_1:available", 150)]),
        entry("grant", DAY - timedelta(hours=5), earned=50, legs=[("budget", "ptc_1:available", 50)]),
        entry("capture", DAY, legs=[("ptc_1:held", "redeemed", 120)]),
        entry("hold", DAY, spent=120, legs=[("ptc_1:available", "ptc_1:held", 120)]),
        entry("expiry", DAY + timedelta(seconds=1), legs=[("ptc_1:available", "expired", 30)]),
    ]
    await write_batch(program_id, batch)
    await write_batch(program_id, batch)  # a batch projected again after a crash before its ack
    await asyncio.gather(*(write_batch(program_id, batch[:2]) for _ in range(4)))
    days = await last_days(program_id, 3, today=date(2026, 12, 1))
    assert [d.day for d in days] == [date(2026, 11, 29), date(2026, 11, 30), date(2026, 12, 1)]
    assert days[0].issued == days[0].spent == 0, "a day without movement is zeros"
    nov30, dec1 = days[1], days[2]
    assert (nov30.issued, nov30.spent, nov30.redeemed, nov30.expired) == (200, 120, 120, 0)
    assert (dec1.issued, dec1.expired) == (0, 30), "23:59:59 and a second later are two UTC days"


async def test_two_projectors_writing_the_same_new_entries_at_once_count_them_once() -> None:
    program_id = new_id("prg")
    batch = [entry("grant", DAY, earned=10, legs=[("budget", "ptc_1:available", 10)]) for _ in range(200)]
    await asyncio.gather(*(write_batch(program_id, batch) for _ in range(3)))
    (day,) = await last_days(program_id, 1, today=DAY.date())
    assert day.issued == 2_000
