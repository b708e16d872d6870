"""Points expire N months after they were earned, oldest first, once."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest

from programs.expiry import add_months, expiring_soon, replay_lots, sweep
from programs.programs import get_program
from tests.factories import admin_idem, expiry_program, projected, three_months_of_points
from wallet import accounts
from wallet.reconcile import reconcile_program

pytestmark = pytest.mark.sql


def test_months_are_added_on_the_calendar() -> None:
    assert add_months(datetime(2025, 1, 31, tzinfo=timezone.utc), 1) == datetime(2025, 2, 28, tzinfo=timezone.utc)
    assert add_months(datetime(2024, 11, 15, tzinfo=timezone.utc), 14) == datetime(2026, 1, 15, tzinfo=timezone.utc)


async def test_oldest_points_expire_first_in_the_right_amount_and_once(redis, migrated) -> None:  # type: ignore[no-untyped-def]
    program, clock, store = await expiry_program(redis)
    await three_months_of_points(redis, store, program.id, clock)  # 100 and 50 earned, 30 spent from January's

    # The day after January's points turn twelve months old: its 70 remaining points go.
    first = await sweep(store, program, 12, now=datetime(2026, 1, 11, tzinfo=timezone.utc))
    assert (first.participants, first.points) == (1, 70)
    assert (await store.balance(program.id, "rep"))["available"] == 50
    await projected(redis, program.id)
    again = await sweep(store, program, 12, now=datetime(2026, 1, 11, tzinfo=timezone.utc))
    assert again.points == 0

    await projected(redis, program.id)
    later = await sweep(store, program, 12, now=datetime(2026, 2, 11, tzinfo=timezone.utc))
    assert later.points == 50
    assert (await store.balance(program.id, "rep"))["available"] == 0
    assert (await store.program_accounts(program.id))["expired"] == 120
    await projected(redis, program.id)
    assert await reconcile_program(redis, program.id) == []


async def test_two_sweeps_at_the_same_time_expire_once(redis, migrated) -> None:  # type: ignore[no-untyped-def]
    program, clock, store = await expiry_program(redis, months=6)
    for month in (1, 2, 3):
        clock.now = datetime(2025, month, 5, tzinfo=timezone.utc)
        await accounts.grant(store, program.id, "rep", 10 * month, "sales", admin_idem(program.id))
    await projected(redis, program.id)
    when = datetime(2025, 9, 1, tzinfo=timezone.utc)  # January's and February's lots are due
    results = await asyncio.gather(*[sweep(store, program, 6, now=when) for _ in range(4)])
    assert sum(r.points for r in results) == 30
    assert (await store.balance(program.id, "rep"))["available"] == 30


async def test_a_voided_hold_gives_back_points_with_their_original_age(redis, migrated) -> None:  # type: ignore[no-untyped-def]
    program, clock, store = await expiry_program(redis, months=12)
    await accounts.grant(store, program.id, "rep", 40, "old", admin_idem(program.id))
    clock.now = datetime(2025, 6, 1, tzinfo=timezone.utc)
    await accounts.grant(store, program.id, "rep", 40, "new", admin_idem(program.id))
    await accounts.hold(store, program.id, "rep", 30, "ord-1", admin_idem(program.id))  # takes 30 old points
    await accounts.void(store, program.id, "rep", "ord-1", admin_idem(program.id))      # they come back, still old
    await projected(redis, program.id)
    result = await sweep(store, program, 12, now=datetime(2026, 1, 11, tzinfo=timezone.utc))
    assert result.points == 40


async def test_the_wallet_lists_what_expires_in_the_next_90_days(redis, migrated) -> None:  # type: ignore[no-untyped-def]
    program, clock, store = await expiry_program(redis, months=12)
    await accounts.grant(store, program.id, "rep", 25, "a", admin_idem(program.id))
    clock.now = datetime(2025, 3, 20, tzinfo=timezone.utc)
    await accounts.grant(store, program.id, "rep", 15, "b", admin_idem(program.id))
    clock.now = datetime(2025, 8, 1, tzinfo=timezone.utc)
    await accounts.grant(store, program.id, "rep", 5, "c", admin_idem(program.id))
    await projected(redis, program.id)
    program = await get_program(program.id)
    soon = await expiring_soon(program, 12, "rep", now=datetime(2025, 12, 25, tzinfo=timezone.utc))
    assert [(e.points, e.expires_at.date().isoformat()) for e in soon] == [(25, "2026-01-10"), (15, "2026-03-20")]


async def test_a_balance_larger_than_one_operation_expires_whole(redis, migrated) -> None:  # type: ignore[no-untyped-def]
    """One leg moves at most 10^12 points; expiring more than that takes several legs."""
    program, clock, store = await expiry_program(redis)
    for points in (10**12, 10**12, 10**12, 5):
        await accounts.grant(store, program.id, "rep", points, "January sales", admin_idem(program.id))
    await projected(redis, program.id)
    swept = await sweep(store, program, 12, now=datetime(2026, 1, 11, tzinfo=timezone.utc))
    assert (swept.participants, swept.points) == (1, 3 * 10**12 + 5)
    assert (await store.balance(program.id, "rep"))["available"] == 0
    assert (await store.program_accounts(program.id))["expired"] == 3 * 10**12 + 5
    await projected(redis, program.id)
    assert await reconcile_program(redis, program.id) == []


@pytest.mark.parametrize("paid", ["in one entry", "held then captured"])
def test_points_a_pool_order_gave_back_keep_the_age_of_the_lots_it_took(paid: str) -> None:
    """A pool order whose points were taken and then returned (no code was left for it:
    a `redemption_void`, redeemed -> available) gives back the same old lots, not new ones:
    paid in one entry, available -> redeemed (this build), or held and then captured (the
    entries of builds before stop 54, still in the ledger)."""
    import msgspec

    def entry(tx: str, at: datetime, legs: list, reference: str | None = None) -> dict:
        return {"transaction_id": tx, "created_at": at, "reference": reference, "legs": msgspec.json.encode(legs)}

    old, new, now = (datetime(2025, 1, 5, tzinfo=timezone.utc), datetime(2026, 6, 1, tzinfo=timezone.utc),
                     datetime(2026, 11, 30, tzinfo=timezone.utc))
    payment = [entry("tx-redemption", now, [["available:p1", "redeemed", 300]], "ord-1")] if paid == "in one entry" \
        else [entry("tx-hold", now, [["available:p1", "held:p1", 300]], "ord-1"),
              entry("tx-capture", now, [["held:p1", "redeemed", 300]], "ord-1")]
    lots = replay_lots("p1", [
        entry("tx-old", old, [["budget", "available:p1", 300]]),
        entry("tx-new", new, [["budget", "available:p1", 200]]),
        *payment,
        entry("tx-return", now, [["redeemed", "available:p1", 300]], "ord-1"),
    ])
    assert sorted((lot.earned_at, lot.points) for lot in lots) == [(old, 300), (new, 200)]
