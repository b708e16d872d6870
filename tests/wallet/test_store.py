"""The wallet's Redis functions, on one Valkey and on a three-node cluster."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from programs.standings import LeaderboardView, PointsBoards
from tests.factories import random_ref
from wallet import accounts, keys
from programs import keys as program_keys
from kernel import keys as kernel_keys
from kernel.errors import BudgetExhausted, Conflict, IdempotencyKeyReused, InsufficientPoints, NotFound
from wallet.journal import JournalProjector
from wallet.reconcile import reconcile_program
from wallet.store import NO_BOARDS, GrantSpec, Leg, WalletStore
from kernel.idempotency import Idem, NO_IDEM


def fresh_idem(program_id: str) -> Idem:
    return Idem(key=kernel_keys.idempotency(program_id, "admin", random_ref()), fingerprint="fp")


async def enrol(store: WalletStore, program_id: str, *people: str) -> None:
    for person in people:
        await store.open_wallet(program_id, person)


async def test_grant_deduct_and_the_floor_at_zero(wallet_store: WalletStore) -> None:
    program = random_ref("prg")
    await enrol(wallet_store, program, "ann")
    moved = await accounts.grant(wallet_store, program, "ann", 100, "sale", fresh_idem(program))
    assert moved.move.balance.available == 100
    with pytest.raises(InsufficientPoints):
        await accounts.deduct(wallet_store, program, "ann", 101, "fix", fresh_idem(program))
    after = await accounts.deduct(wallet_store, program, "ann", 100, "fix", fresh_idem(program))
    assert after.move.balance.available == 0
    view = await accounts.wallet_view(wallet_store, program, "ann")
    assert (view.lifetime_earned, view.lifetime_spent) == (100, 0)


async def test_a_move_of_zero_points_is_journalled_as_zero_and_changes_no_balance(wallet_store: WalletStore) -> None:
    # An award can come to zero points (a rule's per-unit award of a zero amount); the
    # functions write "-0" nowhere, which HINCRBY would refuse as no integer.
    program = random_ref("prg")
    await enrol(wallet_store, program, "ann")
    await accounts.grant(wallet_store, program, "ann", 7, "sale", fresh_idem(program))
    for move in (accounts.grant, accounts.deduct):
        moved = await move(wallet_store, program, "ann", 0, "nothing", fresh_idem(program))
        assert (moved.move.balance.available, moved.move.points) == (7, 0)
    entries = await wallet_store.client.xrange(keys.journal(program))
    assert [(fields[b"points"], json.loads(fields[b"legs"])[0][2]) for _, fields in entries[1:]] == [(b"0", 0), (b"0", 0)]
    assert await wallet_store.program_accounts(program) == {"budget": -7}


async def test_unknown_participants_are_not_found_and_nothing_moves(wallet_store: WalletStore) -> None:
    program = random_ref("prg")
    with pytest.raises(NotFound):
        await accounts.grant(wallet_store, program, "ghost", 5, "x", fresh_idem(program))
    assert await wallet_store.program_accounts(program) == {}


async def test_a_retry_replays_and_a_changed_request_is_refused(wallet_store: WalletStore) -> None:
    program = random_ref("prg")
    await enrol(wallet_store, program, "ann")
    idem = fresh_idem(program)
    first = await accounts.grant(wallet_store, program, "ann", 10, "x", idem)
    again = await accounts.grant(wallet_store, program, "ann", 10, "x", idem)
    assert again.replayed and again.move == first.move
    with pytest.raises(IdempotencyKeyReused):
        await accounts.grant(wallet_store, program, "ann", 10, "x", Idem(key=idem.key, fingerprint="other"))
    assert (await wallet_store.balance(program, "ann"))["available"] == 10


async def test_holds_capture_in_part_void_and_resolve_once(wallet_store: WalletStore) -> None:
    program = random_ref("prg")
    await enrol(wallet_store, program, "ann")
    await accounts.grant(wallet_store, program, "ann", 100, "x", fresh_idem(program))
    held = await accounts.hold(wallet_store, program, "ann", 60, "ord-1", fresh_idem(program))
    assert (held.move.balance.available, held.move.balance.held) == (40, 60)
    with pytest.raises(InsufficientPoints):
        await accounts.hold(wallet_store, program, "ann", 41, "ord-2", fresh_idem(program))
    captured = await accounts.capture(wallet_store, program, "ann", "ord-1", fresh_idem(program), points=45)
    assert (captured.move.balance.available, captured.move.balance.held) == (55, 0)
    with pytest.raises(Conflict):
        await accounts.void(wallet_store, program, "ann", "ord-1", fresh_idem(program))
    with pytest.raises(Conflict):
        await accounts.capture(wallet_store, program, "ann", "ord-1", fresh_idem(program))
    await accounts.hold(wallet_store, program, "ann", 30, "ord-3", fresh_idem(program))
    voided = await accounts.void(wallet_store, program, "ann", "ord-3", fresh_idem(program))
    assert (voided.move.balance.available, voided.move.balance.held) == (55, 0)
    view = await accounts.wallet_view(wallet_store, program, "ann")
    assert view.lifetime_spent == 45
    assert (await wallet_store.program_accounts(program))["redeemed"] == 45


async def test_a_hold_of_another_participant_is_not_found(wallet_store: WalletStore) -> None:
    program = random_ref("prg")
    await enrol(wallet_store, program, "ann", "bob")
    await accounts.grant(wallet_store, program, "ann", 10, "x", fresh_idem(program))
    await accounts.hold(wallet_store, program, "ann", 10, "ord-9", fresh_idem(program))
    with pytest.raises(NotFound):
        await accounts.capture(wallet_store, program, "bob", "ord-9", fresh_idem(program))


async def test_budget_rules_refuse_grants_when_overdraft_is_off(wallet_store: WalletStore) -> None:
    program = random_ref("prg")
    await enrol(wallet_store, program, "ann")
    await wallet_store.set_program_config(program, overdraft="0")
    with pytest.raises(BudgetExhausted):
        await accounts.grant(wallet_store, program, "ann", 5, "x", fresh_idem(program))
    await wallet_store.transfer(program, random_ref("tx"), "funding", [Leg("acct:world", "acct:budget", 8, "-")])
    await accounts.grant(wallet_store, program, "ann", 5, "x", fresh_idem(program))
    with pytest.raises(BudgetExhausted):
        await accounts.grant(wallet_store, program, "ann", 4, "x", fresh_idem(program))
    await wallet_store.set_program_config(program, overdraft="1", blocked="1")
    with pytest.raises(BudgetExhausted):
        await accounts.grant(wallet_store, program, "ann", 1, "x", fresh_idem(program))


async def test_a_multi_leg_transfer_is_all_or_nothing(wallet_store: WalletStore) -> None:
    program = random_ref("prg")
    await enrol(wallet_store, program, "ann")
    await accounts.grant(wallet_store, program, "ann", 10, "x", fresh_idem(program))
    spin = [Leg("w1:available", "acct:pool:c1", 10), Leg("acct:pool:c1", "w1:available", 25)]
    refused = await wallet_store.transfer(program, random_ref("tx"), "spin", spin, wallets=["ann"],
                                          participant_id="ann")
    assert refused.code == "budget_exhausted"
    assert (await wallet_store.balance(program, "ann"))["available"] == 10
    ok = await wallet_store.transfer(program, random_ref("tx"), "spin",
                                     [Leg("w1:available", "acct:pool:c1", 10), Leg("acct:pool:c1", "w1:available", 4)],
                                     wallets=["ann"], participant_id="ann", lifetime="spend")
    assert (ok.points, ok.available) == (-6, 4)


async def test_a_batch_applies_each_grant_once_even_when_sent_again(wallet_store: WalletStore) -> None:
    from wallet.store import GrantSpec

    program = random_ref("prg")
    people = [f"p{i}" for i in range(50)]
    await enrol(wallet_store, program, *people)
    specs = [GrantSpec(idem=Idem(key=kernel_keys.idempotency(program, "b", p), fingerprint="f"), tx=random_ref("tx"),
                       participant_id=p, points=3) for p in people]
    first = await wallet_store.grant_batch(program, specs)
    second = await wallet_store.grant_batch(program, specs)
    assert all(o.ok and o.s is None and not o.replayed for o in first)
    assert all(o.replayed for o in second)
    balances = [await wallet_store.balance(program, p) for p in people]
    assert sum(b["available"] for b in balances if b) == 150


async def test_a_batch_larger_than_one_call_answers_each_grant_in_its_place(wallet_store: WalletStore) -> None:
    from wallet.store import CALL_BATCH, GrantSpec

    program = random_ref("prg")
    people = [f"p{i}" for i in range(CALL_BATCH * 2 + 10)]
    ghost = CALL_BATCH + 3  # not enrolled: refused in the second call, the others applied
    await enrol(wallet_store, program, *(p for i, p in enumerate(people) if i != ghost))
    specs = [GrantSpec(idem=Idem(key=kernel_keys.idempotency(program, "b", p), fingerprint="f"), tx=random_ref("tx"),
                       participant_id=p, points=i + 1) for i, p in enumerate(people)]
    outcomes = await wallet_store.grant_batch(program, specs)
    assert len(outcomes) == len(people)
    for i, (spec, outcome) in enumerate(zip(specs, outcomes)):
        if i == ghost:
            assert not outcome.ok and outcome.code == "not_found"
        else:
            assert outcome.ok and (outcome.participant, outcome.points, outcome.available) == (spec.participant_id, i + 1, i + 1)
    assert (await wallet_store.program_accounts(program))["budget"] == -sum(i + 1 for i in range(len(people)) if i != ghost)


async def test_a_program_suspended_during_a_batch_keeps_what_was_applied_before_and_applies_nothing_after(
        wallet_store: WalletStore) -> None:
    from wallet.store import CALL_BATCH, GrantSpec, Outcome, _in_calls

    program = random_ref("prg")
    people = [f"p{i}" for i in range(CALL_BATCH * 3)]
    await enrol(wallet_store, program, *people)
    specs = [GrantSpec(idem=Idem(key=kernel_keys.idempotency(program, "b", p), fingerprint="f"), tx=random_ref("tx"),
                       participant_id=p, points=2) for p in people]
    calls = 0

    async def the_operator_suspends_after_the_first_call(chunk: list[GrantSpec]) -> list[Outcome]:
        nonlocal calls
        calls += 1
        answered = await wallet_store._grant_batch(program, chunk)
        await wallet_store.set_program_config(program, suspended="1")
        return answered

    outcomes = await _in_calls(specs, the_operator_suspends_after_the_first_call)
    assert calls == 2  # the second call found the suspension; the third was never made
    assert all(o.ok for o in outcomes[:CALL_BATCH])
    assert all(o.code == "program_suspended" for o in outcomes[CALL_BATCH:])
    balances = [(await wallet_store.balance(program, p) or {}).get("available", 0) for p in people]
    assert balances == [2] * CALL_BATCH + [0] * (2 * CALL_BATCH)
    # Reactivated, the same batch applies the rest and replays the first call's grants.
    await wallet_store.set_program_config(program, suspended="0")
    again = await wallet_store.grant_batch(program, specs)
    assert [bool(o.replayed) for o in again] == [True] * CALL_BATCH + [False] * (2 * CALL_BATCH)
    assert all(o.ok for o in again)


async def test_journal_projects_once_and_reconciles(wallet_store: WalletStore) -> None:
    program = random_ref("prg")
    await enrol(wallet_store, program, "ann", "bob")
    for person in ("ann", "bob"):
        await accounts.grant(wallet_store, program, person, 40, "x", fresh_idem(program))
    await accounts.hold(wallet_store, program, "ann", 15, "ord", fresh_idem(program))
    await accounts.capture(wallet_store, program, "ann", "ord", NO_IDEM, points=10)
    projector = JournalProjector(wallet_store.client, consumer="t", claim_idle_ms=0)
    assert await projector.project_program(program) == 4
    assert await projector.project_program(program) == 0
    assert await reconcile_program(wallet_store.client, program) == []
    # Drift is found: change a balance behind the ledger's back.
    await wallet_store.client.hincrby(keys.wallet(program, "bob"), "available", 1)
    drift = await reconcile_program(wallet_store.client, program)
    assert [(d.account, d.redis - d.ledger) for d in drift] == [("available:bob", 1)]


async def test_answers_recorded_before_the_typed_reply_still_replay_as_what_they_were(wallet_store: WalletStore) -> None:
    """Idempotency records outlive an upgrade: one holding an HTTP status (`s`) replays as a
    success below 300 and as the refusal it was otherwise, and nothing moves again."""
    program = random_ref("prg")
    await enrol(wallet_store, program, "ann")
    granted = Idem(kernel_keys.idempotency(program, "t", "granted"), "f1")
    refused = Idem(kernel_keys.idempotency(program, "t", "no"), "f2")
    await wallet_store.client.set(granted.key, json.dumps({"fp": "f1", "r": {
        "s": 201, "tx": "tx_old", "participant": "ann", "points": 7, "available": 7, "held": 0}}))
    await wallet_store.client.set(refused.key, json.dumps({"fp": "f2", "r": {
        "s": 422, "code": "insufficient_points", "detail": "available balance is 0, 5 needed"}}))
    replay = await wallet_store.grant(program, GrantSpec(idem=granted, tx="tx_new", participant_id="ann", points=7))
    assert replay.ok and replay.replayed and replay.tx == "tx_old"
    with pytest.raises(InsufficientPoints):
        await accounts.deduct(wallet_store, program, "ann", 5, "x", refused)
    assert (await wallet_store.balance(program, "ann"))["available"] == 0


def one_board(program: str, board_id: str) -> PointsBoards:
    """A program with one all-time participants board on points (no SQL: the pure part)."""
    view = LeaderboardView(id=board_id, name="Top", entity="participants", metric="points", period="all_time",
                           status="active", count_prizes=False)
    return PointsBoards(program_id=program, boards=(view,), timezone="UTC",
                        program_start=datetime(2026, 1, 1, tzinfo=timezone.utc))


async def board_scores(store: WalletStore, program: str, board_id: str) -> dict[str, int]:
    pairs = await store.client.zrange(f"{kernel_keys.tag(program)}:lbs:{board_id}:all", 0, -1, withscores=True)
    return {member.decode().split(":", 1)[1]: int(score) for member, score in pairs}


async def test_a_grant_moves_the_boards_it_carries_once_and_only_when_it_applies(wallet_store: WalletStore) -> None:
    program, board = random_ref("prg"), random_ref("lb")
    await enrol(wallet_store, program, "ann", "bob")
    boards, now = one_board(program, board), datetime.now(timezone.utc)
    idem, tx = fresh_idem(program), random_ref("tx")
    first = await accounts.grant(wallet_store, program, "ann", 40, "x", idem, tx=tx,
                                 boards=boards.scoring("ann", None, tx, now))
    again = await accounts.grant(wallet_store, program, "ann", 40, "x", idem, tx=random_ref("tx"),
                                 boards=boards.scoring("ann", None, tx, now))
    assert again.replayed and again.move == first.move
    await accounts.grant(wallet_store, program, "bob", 7, "x", fresh_idem(program))  # carries no board
    await wallet_store.set_program_config(program, overdraft="0")
    refused_tx = random_ref("tx")
    with pytest.raises(BudgetExhausted):
        await accounts.grant(wallet_store, program, "bob", 5, "x", fresh_idem(program), tx=refused_tx,
                             boards=boards.scoring("bob", None, refused_tx, now))
    assert await board_scores(wallet_store, program, board) == {"ann": 40}
    assert await wallet_store.client.exists(f"{kernel_keys.tag(program)}:lbm:tx:{refused_tx}") == 0


async def test_awards_move_their_boards_by_the_points_a_cap_left(wallet_store: WalletStore) -> None:
    program, board = random_ref("prg"), random_ref("lb")
    await enrol(wallet_store, program, "ann", "bob", "cid")
    boards, now = one_board(program, board), datetime.now(timezone.utc)
    cap = program_keys.cap(program, "rule", "ann", "2026-06")

    def award(person: str, points: int, cap_limit: int | None = None, scored: bool = True) -> GrantSpec:
        tx = random_ref("tx")
        return GrantSpec(idem=Idem(key=kernel_keys.idempotency(program, "award", f"{person}:{points}"), fingerprint="award"),
                         tx=tx, participant_id=person, points=points, kind="award",
                         cap_key=cap if cap_limit else "", cap_limit=cap_limit,
                         boards=boards.scoring(person, None, tx, now) if scored else NO_BOARDS)

    specs = [award("ann", 60, cap_limit=100), award("bob", 9, scored=False), award("ann", 70, cap_limit=100),
             award("cid", 5), award("ann", 80, cap_limit=100)]
    outcomes = await wallet_store.award_batch(program, specs)
    assert [(o.points, o.code) for o in outcomes] == [(60, None), (9, None), (40, None), (5, None), (0, "capped")]
    again = await wallet_store.award_batch(program, specs)
    assert all(o.replayed for o in again)
    assert await board_scores(wallet_store, program, board) == {"ann": 100, "cid": 5}


async def test_a_batch_moves_the_boards_of_each_grant_that_applied_and_only_those(wallet_store: WalletStore) -> None:
    program, board = random_ref("prg"), random_ref("lb")
    await enrol(wallet_store, program, "ann", "bob", "cid")
    boards, now = one_board(program, board), datetime.now(timezone.utc)

    def item(person: str, points: int, key: str, scored: bool = True) -> GrantSpec:
        tx = random_ref("tx")
        return GrantSpec(idem=Idem(key=kernel_keys.idempotency(program, "b", key), fingerprint=f"{person}:{points}"),
                         tx=tx, participant_id=person, points=points,
                         boards=boards.scoring(person, None, tx, now) if scored else NO_BOARDS)

    first = [item("ann", 30, "k1"), item("bob", 9, "k2", scored=False), item("cid", 12, "k3"),
             item("nobody", 5, "k4")]
    outcomes = await wallet_store.grant_batch(program, first)
    assert [(o.ok, o.code) for o in outcomes] == [(True, None), (True, None), (True, None), (False, "not_found")]
    # The same items again (new transaction ids: a replay keeps its first one), one reused
    # with another body, and a new one: only the new one scores.
    again = [item("ann", 30, "k1"), item("cid", 99, "k3"), item("ann", 4, "k5")]
    outcomes = await wallet_store.grant_batch(program, again)
    assert [(bool(o.replayed), o.code) for o in outcomes] == [(True, None), (False, "idempotency_key_reused"),
                                                              (False, None)]
    assert await board_scores(wallet_store, program, board) == {"ann": 34, "cid": 12}


async def test_the_returned_sales_among_a_batchs_activities_are_named_whatever_its_size(wallet_store: WalletStore) -> None:
    # A CRM batch asks which of its activities a returned sale reversed (no rule may pay them
    # again): one read per 500, on a single server and across a cluster's slots alike.
    program = random_ref("prg")
    activities = [f"act_{n:04d}" for n in range(1_200)]
    returned = {activities[3], activities[499], activities[500], activities[1_199]}
    for activity_id in returned:
        await wallet_store.reverse(program, activity_id, [])
    assert await wallet_store.reversed_activities(program, activities) == returned
    assert await wallet_store.reversed_activities(program, activities[4:499]) == set()
    assert await wallet_store.reversed_activities(random_ref("prg"), activities) == set()
