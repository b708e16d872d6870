"""Property test at the bounds: amounts near 10^12 (one operation) and 2^53 - 1 (any
balance), through the real wallet functions.

A hypothesis state machine keeps its own model of every account of a program (world, budget,
redeemed) and every wallet (available, held, earned, spent), predicts for each step whether
the functions must accept or refuse it, and checks after every step that Redis equals the
model: money is conserved (the accounts sum to zero), a refusal moved nothing, and at the
end the journal projects into a ledger that reconciles with Redis, nothing set aside."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, consumes, invariant, rule

from tests.wallet.program_machine import ProgramMachine, run_machine
from wallet import accounts
from kernel.money import MAX_BALANCE, MAX_MOVE
from kernel.errors import DomainError, InsufficientPoints, Invalid
from wallet.journal import dead_letters
from wallet.store import Leg
from kernel.idempotency import Idem

PEOPLE = ["ann", "bob"]
# Amounts at and around the bound of one operation, and a few ordinary ones.
NEAR_MOVE = st.sampled_from([1, 2, MAX_MOVE - 1, MAX_MOVE, MAX_MOVE + 1, 2 * MAX_MOVE, 2**53, 2**64])
AMOUNTS = st.one_of(NEAR_MOVE, st.integers(1, MAX_MOVE + 5))
# How far below 2^53 - 1 a filled balance stops.
GAPS = st.sampled_from([0, 1, 2, MAX_MOVE - 1, MAX_MOVE, MAX_MOVE + 1, 3 * MAX_MOVE])
EDGE = st.sampled_from([-1, 0, 1])


def within(value: int) -> bool:
    return -MAX_BALANCE <= value <= MAX_BALANCE


class BoundsMachine(ProgramMachine):
    prefix = "bnd"
    people = PEOPLE
    consumer = "bounds-prop"
    holds = Bundle("holds")
    requests = Bundle("requests")

    def __init__(self) -> None:
        super().__init__()
        self.acct = {"world": 0, "budget": 0, "redeemed": 0}
        self.wallet = {p: {"available": 0, "held": 0, "earned": 0, "spent": 0} for p in PEOPLE}

    def snapshot(self) -> tuple[dict[str, int], dict[str, dict[str, int]]]:
        program = self.run(self.store.program_accounts(self.program))
        wallets = {p: self.run(self.store.balance(self.program, p)) for p in PEOPLE}
        return program, wallets

    def expect(self, coro: Any, ok: bool, error: type[DomainError] = Invalid) -> Any:
        """Runs a wallet call that must succeed (ok) or fail with `error` and move nothing."""
        before = self.snapshot()
        try:
            result = self.run(coro)
        except DomainError as exc:
            assert not ok, f"refused but should pass: {exc.detail}"
            assert isinstance(exc, error), (type(exc), exc.detail)
            assert self.snapshot() == before
            return None
        assert ok, "passed but should be refused"
        self.transactions += 1
        return result

    @rule(person=st.sampled_from(PEOPLE), gap=GAPS)
    def fill(self, person: str, gap: int) -> None:
        """Raises a balance to 2^53 - 1 - gap from `world`, in legs of at most 10^12."""
        w = self.wallet[person]
        amount = MAX_BALANCE - gap - w["available"]
        if amount <= 0:
            return
        sizes = [MAX_MOVE] * (amount // MAX_MOVE) + ([amount % MAX_MOVE] if amount % MAX_MOVE else [])
        legs = [Leg("acct:world", "w1:available", size, "-") for size in sizes]
        ok = within(self.acct["world"] - amount) and within(w["earned"] + amount)
        before = self.snapshot()
        outcome = self.run(self.store.transfer(self.program, "tx" + secrets.token_hex(8), "funding", legs,
                                               wallets=[person], participant_id=person, lifetime="earn"))
        assert outcome.ok == ok, outcome
        if not ok:
            assert outcome.code == "validation_error"
            assert self.snapshot() == before
            return
        self.transactions += 1
        self.acct["world"] -= amount
        w["available"] += amount
        w["earned"] += amount

    def _grant(self, person: str, points: int) -> tuple[str, str, int, Idem]:
        w, idem = self.wallet[person], self.idem()
        ok = points <= MAX_MOVE and within(self.acct["budget"] - points) and within(w["available"] + points) \
            and within(w["earned"] + points)
        if self.expect(accounts.grant(self.store, self.program, person, points, "g", idem), ok):
            self.acct["budget"] -= points
            w["available"] += points
            w["earned"] += points
        return ("grant", person, points, idem)

    @rule(target=requests, person=st.sampled_from(PEOPLE), points=AMOUNTS)
    def grant(self, person: str, points: int) -> tuple[str, str, int, Idem]:
        return self._grant(person, points)

    @rule(target=requests, person=st.sampled_from(PEOPLE), edge=EDGE)
    def grant_to_the_edge(self, person: str, edge: int) -> tuple[str, str, int, Idem]:
        """Exactly what reaches 2^53 - 1, one less, or one more."""
        return self._grant(person, max(1, MAX_BALANCE - self.wallet[person]["available"] + edge))

    @rule(target=requests, person=st.sampled_from(PEOPLE), points=AMOUNTS)
    def deduct(self, person: str, points: int) -> tuple[str, str, int, Idem]:
        w, idem = self.wallet[person], self.idem()
        if points > MAX_MOVE:
            ok, error = False, Invalid
        elif w["available"] < points:
            ok, error = False, InsufficientPoints
        else:
            ok, error = within(self.acct["budget"] + points), Invalid
        if self.expect(accounts.deduct(self.store, self.program, person, points, "d", idem), ok, error):
            w["available"] -= points
            self.acct["budget"] += points
        return ("deduct", person, points, idem)

    @rule(request=requests)
    def retry(self, request: tuple[str, str, int, Idem]) -> None:
        kind, person, points, idem = request
        call = accounts.grant if kind == "grant" else accounts.deduct
        before = self.snapshot()
        try:
            self.run(call(self.store, self.program, person, points, kind[0], idem))
        except DomainError:
            pass
        assert self.snapshot() == before

    @rule(target=holds, person=st.sampled_from(PEOPLE), points=AMOUNTS)
    def hold(self, person: str, points: int) -> tuple[str, str, int]:
        w, hold_id = self.wallet[person], "h" + secrets.token_hex(6)
        if points > MAX_MOVE:
            ok, error = False, Invalid
        elif w["available"] < points:
            ok, error = False, InsufficientPoints
        else:
            ok, error = within(w["held"] + points), Invalid
        if self.expect(accounts.hold(self.store, self.program, person, points, hold_id, self.idem()), ok, error):
            w["available"] -= points
            w["held"] += points
            return (hold_id, person, points)
        return ("none", person, 0)

    @rule(hold=consumes(holds))
    def capture(self, hold: tuple[str, str, int]) -> None:
        hold_id, person, points = hold
        if hold_id == "none":
            return
        w = self.wallet[person]
        ok = within(w["spent"] + points) and within(self.acct["redeemed"] + points)
        if self.expect(accounts.capture(self.store, self.program, person, hold_id, self.idem()), ok):
            w["held"] -= points
            w["spent"] += points
            self.acct["redeemed"] += points

    @rule(hold=consumes(holds))
    def void(self, hold: tuple[str, str, int]) -> None:
        hold_id, person, points = hold
        if hold_id == "none":
            return
        w = self.wallet[person]
        if self.expect(accounts.void(self.store, self.program, person, hold_id, self.idem()),
                       within(w["available"] + points)):
            w["held"] -= points
            w["available"] += points

    @rule(points=AMOUNTS)
    def fund(self, points: int) -> None:
        ok = points <= MAX_MOVE and within(self.acct["world"] - points) and within(self.acct["budget"] + points)
        before = self.snapshot()
        outcome = self.run(self.store.transfer(self.program, "tx" + secrets.token_hex(8), "funding",
                                               [Leg("acct:world", "acct:budget", points, "-")]))
        assert outcome.ok == ok, outcome
        if ok:
            self.transactions += 1
            self.acct["world"] -= points
            self.acct["budget"] += points
        else:
            assert outcome.code == "validation_error"
            assert self.snapshot() == before

    @invariant()
    def redis_equals_the_model_and_money_is_conserved(self) -> None:
        program, wallets = self.snapshot()
        assert {k: v for k, v in program.items() if v} == {k: v for k, v in self.acct.items() if v}
        assert wallets == self.wallet
        total = sum(program.values()) + sum(w["available"] + w["held"] for w in wallets.values())
        assert total == 0
        assert all(within(v) for v in program.values())
        assert all(within(v) and v >= 0 for w in wallets.values() for v in w.values())

    def check_projected(self, transaction_ids: list[str]) -> None:
        assert self.run(dead_letters(self.client, self.program)) == []


@pytest.mark.sql
@pytest.mark.redis_bound  # Lua bounds; the ledger rows they write are the ones every Postgres test writes
def test_amounts_near_every_bound_conserve_money_and_refusals_move_nothing(settings, migrated) -> None:  # type: ignore[no-untyped-def]
    run_machine(BoundsMachine, "BoundsMachineRun", settings.redis_url, settings.redis_cluster,
                max_examples=12, steps=25)
