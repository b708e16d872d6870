"""A participant's lots are replayed from the sweep's checkpoint, reading only the ledger
entries after it, and come out as a replay of their whole history would."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from programs.expiry import (
    Replay, entries_after, expiring_soon, in_journal_order, participant_replay, replay, replay_lots, save_replay,
    saved_replay, sweep,
)
from programs.programs import get_program
from tests.factories import FixedClock, admin_idem, expiry_program, projected, three_months_of_points
from wallet import accounts
from wallet.tables import LedgerEntry

START = datetime(2025, 1, 1, tzinfo=timezone.utc)


def _history(moves: list[tuple[str, int]]) -> list[dict[str, Any]]:
    """Ledger rows of participant p1 (seq 1, 2, ...; a day apart) from moves the balances
    allow: earn, spend, hold (a redemption's), and a hold's end (void, capture, or a capture
    whose points came back); redeem (a pool order paid in one entry) and its points coming back."""
    rows: list[dict[str, Any]] = []
    available, holds, paid = 0, {}, {}  # reference -> points held; -> points a pool order took
    for kind, size in moves:
        ref: str | None = None
        if kind == "earn":
            legs = [["budget", "available:p1", size]]
            available += size
        elif kind == "spend" and available:
            legs = [["available:p1", "budget", min(size, available)]]
            available -= min(size, available)
        elif kind == "hold" and available:
            ref, points = f"ord-{len(rows)}", min(size, available)
            legs, holds[ref] = [["available:p1", "held:p1", points]], points
            available -= points
        elif kind == "redeem" and available:  # a pool order, paid in one entry
            ref, points = f"ord-{len(rows)}", min(size, available)
            legs, paid[ref] = [["available:p1", "redeemed", points]], points
            available -= points
        elif kind == "returned" and paid and size % 2:  # no code was left for it
            ref = sorted(paid)[size % len(paid)]
            points = paid.pop(ref)
            legs = [["redeemed", "available:p1", points]]
            available += points
        elif kind in ("void", "capture", "returned") and holds:
            ref = sorted(holds)[size % len(holds)]
            points = holds.pop(ref)
            if kind == "void":
                legs = [["held:p1", "available:p1", points]]
                available += points
            elif kind == "capture":
                legs = [["held:p1", "redeemed", points]]
            else:
                legs = [["held:p1", "redeemed", points], ["redeemed", "available:p1", points]]
                available += points
        else:
            continue
        n = len(rows) + 1
        rows.append({"id": n, "seq": n, "transaction_id": f"tx-{n}", "reference": ref,
                     "created_at": START + timedelta(days=n, microseconds=n), "legs": msgspec.json.encode(legs)})
    return rows


MOVES = st.lists(st.tuples(st.sampled_from(["earn", "earn", "spend", "hold", "redeem", "void", "capture", "returned"]),
                           st.integers(min_value=1, max_value=500)), max_size=60)


@given(MOVES, st.data())
def test_a_replay_from_a_saved_checkpoint_is_the_replay_of_the_whole_history(moves, data) -> None:  # type: ignore[no-untyped-def]
    rows = _history(moves)
    whole = replay(Replay(), "p1", rows)
    cut = data.draw(st.integers(min_value=0, max_value=len(rows)))
    # As the sweep keeps it and a later replay reads it back: through JSON.
    saved = msgspec.json.decode(msgspec.json.encode(replay(Replay(), "p1", rows[:cut])), type=Replay)
    assert saved.through_seq == cut
    resumed = replay(saved, "p1", rows[cut:])
    assert resumed.lots == whole.lots
    assert resumed.holds == whole.holds
    assert sum(lot.points for lot in whole.lots) == _available(rows)


def _available(rows: list[dict[str, Any]]) -> int:
    total = 0
    for row in rows:
        for source, target, points in msgspec.json.decode(row["legs"]):
            total += (target == "available:p1") * points - (source == "available:p1") * points
    return total


def test_linked_entries_go_by_their_place_in_the_chain_and_the_rest_after_them_as_projected() -> None:
    rows = [{"id": 1, "seq": 2}, {"id": 2, "seq": None}, {"id": 3, "seq": 1}, {"id": 4, "seq": None}]
    linked, unlinked = in_journal_order(rows)
    assert [row["id"] for row in linked] == [3, 1]
    assert [row["id"] for row in unlinked] == [2, 4]


def test_an_entry_not_linked_yet_counts_but_does_not_move_the_checkpoint() -> None:
    rows = _history([("earn", 100), ("earn", 50), ("spend", 30)])
    rows[-1]["seq"] = None
    state = replay(Replay(), "p1", rows)
    assert state.through_seq == 2
    assert [lot.points for lot in state.lots] == [70, 50]
    assert replay_lots("p1", rows) == state.lots


sql = pytest.mark.sql


@sql
async def test_the_sweep_saves_a_checkpoint_and_later_replays_read_only_what_came_after(redis, migrated, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    # A checkpoint once two entries were read (by default, fifty).
    monkeypatch.setattr("programs.expiry.KEEP_AFTER", 2)
    program, clock, store = await expiry_program(redis, months=12)
    await three_months_of_points(redis, store, program.id, clock)  # 100 and 50 earned, 30 spent from January's
    program = await get_program(program.id)

    # A sweep in June expires nothing, and keeps the three entries' replay.
    assert (await sweep(store, program, 12, now=datetime(2025, 6, 1, tzinfo=timezone.utc))).points == 0
    saved = await saved_replay(program.id, "rep")
    assert saved.through_seq > 0
    assert [(lot.points, lot.earned_at.date().isoformat()) for lot in saved.lots] == [(70, "2025-01-10"), (50, "2025-02-10")]
    assert await entries_after(program.id, "rep", saved.through_seq).run() == []

    # Later moves: only they are read, on top of the checkpoint.
    clock.now = datetime(2025, 7, 1, tzinfo=timezone.utc)
    await accounts.deduct(store, program.id, "rep", 20, "spent again", admin_idem(program.id))  # January's lot again
    clock.now = datetime(2025, 8, 1, tzinfo=timezone.utc)
    await accounts.grant(store, program.id, "rep", 5, "August sales", admin_idem(program.id))
    await projected(redis, program.id)
    assert len(await entries_after(program.id, "rep", saved.through_seq).run()) == 2
    replayed = await participant_replay(program.id, "rep")
    every_row = await LedgerEntry.select(LedgerEntry.id, LedgerEntry.transaction_id, LedgerEntry.legs,
                                         LedgerEntry.reference, LedgerEntry.created_at, LedgerEntry.seq).where(
        (LedgerEntry.program_id == program.id) & (LedgerEntry.participant_id == "rep")).run()
    linked, unlinked = in_journal_order(every_row)
    assert replayed.current.lots == replay_lots("rep", linked + unlinked)

    soon = await expiring_soon(program, 12, "rep", now=datetime(2025, 12, 25, tzinfo=timezone.utc), available=105)
    assert [(e.points, e.expires_at.date().isoformat()) for e in soon] == [(50, "2026-01-10"), (50, "2026-02-10")]

    # January's 50 expire once, from the checkpoint's lots, and the sweep moves the checkpoint on.
    first = await sweep(store, program, 12, now=datetime(2026, 1, 11, tzinfo=timezone.utc))
    again = await sweep(store, program, 12, now=datetime(2026, 1, 11, tzinfo=timezone.utc))
    assert (first.points, again.points) == (50, 0)
    assert (await store.balance(program.id, "rep"))["available"] == 55
    assert (await saved_replay(program.id, "rep")).through_seq > saved.through_seq


@sql
async def test_a_checkpoint_never_goes_back(redis, migrated) -> None:  # type: ignore[no-untyped-def]
    program, _, _ = await expiry_program(redis)
    rows = _history([("earn", 100), ("spend", 10), ("earn", 5)])
    further, behind = replay(Replay(), "p1", rows), replay(Replay(), "p1", rows[:1])
    await save_replay(program.id, "p1", further)
    await save_replay(program.id, "p1", behind)  # a sweep that read before the other one
    kept = await saved_replay(program.id, "p1")
    assert (kept.through_seq, kept.lots) == (3, further.lots)


@sql
async def test_an_empty_balance_has_nothing_expiring(redis, migrated) -> None:  # type: ignore[no-untyped-def]
    program, clock, store = await expiry_program(redis)
    await accounts.grant(store, program.id, "rep", 40, "sales", admin_idem(program.id))
    await projected(redis, program.id)
    program = await get_program(program.id)
    now = FixedClock().now + timedelta(days=300)
    assert [e.points for e in await expiring_soon(program, 12, "rep", now=now)] == [40]
    assert await expiring_soon(program, 12, "rep", now=now, available=0) == []


@sql
async def test_the_replay_reads_the_participants_entries_by_their_index(migrated) -> None:  # type: ignore[no-untyped-def]
    from tests.query_plans import plan_of, sqlite_only

    sqlite_only(LedgerEntry)
    assert await plan_of(entries_after("prg_any", "par_any", 0)) == [
        "SEARCH ledger_entries USING INDEX ledger_entries_participant_seq (participant_id=?)"]
    assert await plan_of(entries_after("prg_any", "par_any", 41)) == [
        "MULTI-INDEX OR",
        "INDEX 1", "SEARCH ledger_entries USING INDEX ledger_entries_participant_seq (participant_id=? AND seq>?)",
        "INDEX 2", "SEARCH ledger_entries USING INDEX ledger_entries_participant_seq (participant_id=? AND seq=?)"]
