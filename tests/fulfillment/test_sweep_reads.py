"""The worker's order sweeps (every 30 s for every program) and webhook deliveries (every half
second) read what is due through an index that holds only that, whatever the number of orders,
deliveries and ledger entries a program has gathered: the plan of each of their reads."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

from fulfillment import orders, pooled_orders, rerouting, webhooks
from fulfillment.tables import Order
from tests.query_plans import plan, plan_of, sqlite_only
from wallet.tables import LedgerEntry

pytestmark = pytest.mark.sql


async def test_the_order_sweep_reads_the_orders_still_to_settle_only(migrated) -> None:  # type: ignore[no-untyped-def]
    sqlite_only(Order)
    assert await plan_of(orders.unsettled("prg_any")) == [
        "SEARCH orders USING INDEX orders_unsettled (program_id=? AND status=?)"]


async def test_an_ended_order_is_found_in_the_ledger_by_its_reference(migrated) -> None:  # type: ignore[no-untyped-def]
    sqlite_only(Order)
    found = {status: await plan_of(orders.ending_entry("prg_any", "ord_any", status))
             for status in ("fulfilled", "failed", "cancelled")}
    by_kind = "SEARCH ledger_entries USING INDEX {} (program_id=? AND reference=?)"
    assert {status: steps[-1] for status, steps in found.items()} == {
        "fulfilled": by_kind.format("ledger_entries_redemption_refs"),
        "failed": by_kind.format("ledger_entries_voids"),
        "cancelled": by_kind.format("ledger_entries_voids")}, found


async def test_the_pool_sweep_reads_the_last_days_redemptions_and_each_ones_void_by_reference(migrated) -> None:  # type: ignore[no-untyped-def]
    sqlite_only(Order)
    until = datetime.now(timezone.utc)
    assert await plan(LedgerEntry, pooled_orders._UNWRITTEN, "prg_any", until - timedelta(days=2), until) == [
        "SEARCH e USING INDEX ledger_entries_redemptions (program_id=? AND created_at>? AND created_at<?)",
        "CORRELATED SCALAR SUBQUERY 1",
        "SEARCH v USING INDEX ledger_entries_voids (program_id=? AND reference=?)",
        "SEARCH o USING COVERING INDEX sqlite_autoindex_orders_1 (id=?) LEFT-JOIN"]


async def test_webhook_deliveries_read_the_pending_ones_only(migrated) -> None:  # type: ignore[no-untyped-def]
    sqlite_only(Order)
    assert await plan_of(webhooks.due_deliveries(datetime.now(timezone.utc), 50)) == [
        "SEARCH webhook_deliveries USING INDEX webhook_deliveries_due (next_attempt_at<?)"]


async def test_a_disabled_partners_orders_are_found_among_the_open_orders_only(migrated) -> None:  # type: ignore[no-untyped-def]
    """Read before every claim while a partner is disabled, and at every sweep: the pending and
    claimed orders of the disabled partners, not every order they ever fulfilled."""
    sqlite_only(Order)
    steps = await plan_of(rerouting.orphaned("prg_any", ["ptn_a", "ptn_b"], datetime.now(timezone.utc)))
    assert steps[0] == "SEARCH orders USING INDEX orders_open (program_id=? AND partner_id=?)", steps


async def test_a_claim_takes_its_orders_from_the_partners_open_orders(migrated) -> None:  # type: ignore[no-untyped-def]
    """Every claim of every partner reads its candidates from the open orders, oldest first,
    not from every order the partner ever fulfilled (which the queue's read grew with), and
    takes them by id, not by reading every open order of every program."""
    from fulfillment import queue

    sqlite_only(Order)
    now = datetime.now(timezone.utc)
    sql = queue._CLAIM.replace("{candidates}", queue._CANDIDATES)
    steps = await plan(Order, sql, "lease_any", now, now, "prg_any", "ptn_any", now, 5, now)
    assert steps == ["SEARCH orders USING INDEX sqlite_autoindex_orders_1 (id=?)", "LIST SUBQUERY 1",
                     "SEARCH orders USING INDEX orders_open (program_id=? AND partner_id=?)"], steps


async def test_a_participants_orders_page_is_read_in_its_order(migrated) -> None:  # type: ignore[no-untyped-def]
    """Their app's list: newest first, straight from an index, not sorted from all their orders."""
    sqlite_only(Order)
    for after in (None, "ord_any"):
        steps = await plan_of(orders.listing("prg_any", 51, after, participant_id="par_any"))
        assert steps[0].startswith("SEARCH orders USING INDEX orders_of_participant (participant_id=?"), steps
        assert not any("TEMP B-TREE" in step for step in steps), steps
