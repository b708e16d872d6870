"""Property test: whatever happens, points are conserved and never go negative.

A hypothesis state machine drives random grants, deductions, holds, captures (whole and
partial), voids, fundings and retries of earlier requests against the real Redis
functions, keeps its own model of every balance, and checks after each step that Redis
agrees with the model, that the program's accounts sum to zero, and that no balance is
negative. At the end the journal is projected and the SQL ledger must hold each
transaction once and reconcile with Redis exactly.
"""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, consumes, invariant, rule

from tests.wallet.program_machine import ProgramMachine, run_machine
from wallet import accounts
from kernel.errors import DomainError
from wallet.store import Leg
from kernel.idempotency import Idem

PEOPLE = ["ann", "bob", "cy"]


class WalletMachine(ProgramMachine):
    prefix = "prop"
    people = PEOPLE
    consumer = "prop"
    holds = Bundle("holds")
    requests = Bundle("requests")

    def __init__(self) -> None:
        super().__init__()
        self.available = dict.fromkeys(PEOPLE, 0)
        self.held = dict.fromkeys(PEOPLE, 0)

    def attempt(self, coro: Any) -> accounts.Moved | None:
        try:
            return self.run(coro)
        except DomainError:
            return None

    @rule(target=requests, person=st.sampled_from(PEOPLE), points=st.integers(1, 500))
    def grant(self, person: str, points: int) -> tuple[str, str, int, Idem]:
        idem = self.idem()
        moved = self.attempt(accounts.grant(self.store, self.program, person, points, "g", idem))
        assert moved is not None
        self.available[person] += points
        self.transactions += 1
        return ("grant", person, points, idem)

    @rule(target=requests, person=st.sampled_from(PEOPLE), points=st.integers(1, 500))
    def deduct(self, person: str, points: int) -> tuple[str, str, int, Idem]:
        idem = self.idem()
        moved = self.attempt(accounts.deduct(self.store, self.program, person, points, "d", idem))
        if points <= self.available[person]:
            assert moved is not None
            self.available[person] -= points
            self.transactions += 1
        else:
            assert moved is None
        return ("deduct", person, points, idem)

    @rule(request=requests)
    def retry(self, request: tuple[str, str, int, Idem]) -> None:
        kind, person, points, idem = request
        call = accounts.grant if kind == "grant" else accounts.deduct
        before = self.run(self.store.balance(self.program, person))
        self.attempt(call(self.store, self.program, person, points, kind[0], idem))
        # Nothing applied twice: the retry changes no balance (the model is left as it was).
        assert self.run(self.store.balance(self.program, person)) == before

    @rule(target=holds, person=st.sampled_from(PEOPLE), points=st.integers(1, 300))
    def hold(self, person: str, points: int) -> tuple[str, str, int]:
        hold_id = "h" + secrets.token_hex(6)
        moved = self.attempt(accounts.hold(self.store, self.program, person, points, hold_id, self.idem()))
        if points <= self.available[person]:
            assert moved is not None
            self.available[person] -= points
            self.held[person] += points
            self.transactions += 1
            return (hold_id, person, points)
        assert moved is None
        return ("none", person, 0)

    @rule(hold=consumes(holds), fraction=st.floats(0, 1))
    def capture(self, hold: tuple[str, str, int], fraction: float) -> None:
        hold_id, person, points = hold
        if hold_id == "none":
            return
        take = int(points * fraction)
        moved = self.attempt(accounts.capture(self.store, self.program, person, hold_id, self.idem(), points=take))
        assert moved is not None
        self.held[person] -= points
        self.available[person] += points - take
        self.transactions += 1
        # A hold resolves once: a second capture or a void is refused.
        assert self.attempt(accounts.void(self.store, self.program, person, hold_id, self.idem())) is None

    @rule(hold=consumes(holds))
    def void(self, hold: tuple[str, str, int]) -> None:
        hold_id, person, points = hold
        if hold_id == "none":
            return
        assert self.attempt(accounts.void(self.store, self.program, person, hold_id, self.idem())) is not None
        self.held[person] -= points
        self.available[person] += points
        self.transactions += 1
        assert self.attempt(accounts.capture(self.store, self.program, person, hold_id, self.idem())) is None

    @rule(points=st.integers(1, 10_000))
    def fund(self, points: int) -> None:
        outcome = self.run(self.store.transfer(self.program, "tx" + secrets.token_hex(8), "funding",
                                               [Leg("acct:world", "acct:budget", points, "-")]))
        assert outcome.ok
        self.transactions += 1

    @invariant()
    def redis_matches_the_model_and_nothing_is_negative(self) -> None:
        for person in PEOPLE:
            balance = self.run(self.store.balance(self.program, person))
            assert (balance["available"], balance["held"]) == (self.available[person], self.held[person])
            assert balance["available"] >= 0 and balance["held"] >= 0

    @invariant()
    def points_are_conserved(self) -> None:
        program_accounts = self.run(self.store.program_accounts(self.program))
        total = sum(program_accounts.values()) + sum(self.available.values()) + sum(self.held.values())
        assert total == 0

    def check_projected(self, transaction_ids: list[str]) -> None:
        assert len(transaction_ids) == len(set(transaction_ids))


@pytest.mark.sql
@pytest.mark.parametrize("mode", ["standalone", "cluster"])
def test_wallet_invariants_hold_under_random_operations(mode: str, settings, migrated, request) -> None:  # type: ignore[no-untyped-def]
    url = request.getfixturevalue("valkey_cluster_url") if mode == "cluster" else settings.redis_url
    run_machine(WalletMachine, f"WalletMachine_{mode}", url, mode == "cluster", max_examples=40, steps=30)
