"""The setup the wallet's hypothesis state machines share: one fresh program on the real
wallet functions, its wallets opened, and at the end its journal projected into a ledger
that must hold each transaction and reconcile with Redis; and the pending-points machine
(`PendingMachine`: awards that wait, releases, returned sales, owed points)."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from kernel import keys as kernel_keys
from wallet.journal import JournalProjector
from wallet.reconcile import reconcile_program
from wallet.store import GrantSpec, Leg, ReversedAward, WalletStore
from kernel.redis_functions import connect
from kernel.idempotency import Idem
from kernel.sqlite_pool import PooledSQLiteEngine
from wallet.tables import LedgerEntry


class ProgramMachine(RuleBasedStateMachine):
    """A machine over one program named `prefix` + random hex, with a wallet for each of
    `people`; its rules count in `transactions` every transaction they commit."""

    url: str = ""
    cluster: bool = False
    prefix: str = "prog"
    people: list[str] = []
    consumer: str = "prop"

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.client = connect(self.url, cluster=self.cluster)
        self.store = WalletStore(self.client)
        self.program = self.prefix + secrets.token_hex(6)
        self.transactions = 0
        self.run(self.store.load_functions())
        for person in self.people:
            self.run(self.store.open_wallet(self.program, person))

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def idem(self) -> Idem:
        return Idem(key=kernel_keys.idempotency(self.program, "admin", secrets.token_hex(8)), fingerprint="fp")

    def check_projected(self, transaction_ids: list[str]) -> None:
        """What a machine checks of the ledger beyond its count (none by default)."""

    def teardown(self) -> None:
        try:
            self.run(JournalProjector(self.client, consumer=self.consumer, claim_idle_ms=0)
                     .project_program(self.program))
            rows = self.run(LedgerEntry.select(LedgerEntry.transaction_id)
                            .where(LedgerEntry.program_id == self.program).run())
            ids = [r["transaction_id"] for r in rows]
            self.check_projected(ids)
            assert len(ids) == self.transactions
            assert self.run(reconcile_program(self.client, self.program)) == []
        finally:
            self.run(self.client.aclose())
            # The SQLite pool's connections of this loop closed on it: dropped with the loop,
            # aiosqlite stops their threads from `__del__`, and one may answer a loop closed
            # by then ("Event loop is closed" in a connection's thread, a pytest warning).
            engine = LedgerEntry._meta.db
            if isinstance(engine, PooledSQLiteEngine):
                self.run(engine.close_pool())
            self.loop.close()


def run_machine(machine: type[ProgramMachine], name: str, url: str, cluster: bool, max_examples: int,
                steps: int) -> None:
    """Runs `machine` against the Valkey at `url` with that many examples of that many steps."""
    run = type(name, (machine,), {"url": url, "cluster": cluster})
    run.TestCase.settings = hypothesis_settings(
        max_examples=max_examples, stateful_step_count=steps, deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    run.TestCase().runTest()


class PendingMachine(ProgramMachine):
    """A machine of earnings that may wait, their releases and returned sales (wallet/pending.lua),
    on the real wallet functions: awards (at once, pending for a date, pending for approval),
    grants, prizes paid in points (rw_transfer, "earn") and deductions, a manager's release, the worker's pass at a moment, reversals
    (twice, the second changing nothing) and retries. Its model holds every balance, the
    lots and what is owed; after each step Redis must agree, the program's accounts and the
    wallets must sum to zero, and no balance, pending account or owed count is negative."""

    prefix = "pend"
    people = ["ann", "bob"]
    consumer = "pend"
    awards = Bundle("awards")
    requests = Bundle("pending_requests")

    def __init__(self) -> None:
        super().__init__()
        self.available = dict.fromkeys(self.people, 0)
        self.pending = dict.fromkeys(self.people, 0)
        self.owed = dict.fromkeys(self.people, 0)
        self.lots: dict[str, tuple[str, int, int | None]] = {}  # lot -> (person, points, releases_at ms)
        self.reversed: set[str] = set()
        self.clock = 1_000_000

    def credit(self, person: str, points: int) -> None:
        paid = min(self.owed[person], points)
        self.owed[person] -= paid
        self.available[person] += points - paid

    def award_spec(self, person: str, points: int, wait: str, idem: Idem, tx: str) -> GrantSpec:
        pending = ""
        if wait == "dated":
            pending = f"{self.clock + 60_000}|dated"
        elif wait == "approval":
            pending = "|approval"
        return GrantSpec(idem=idem, tx=tx, participant_id=person, points=points,
                         kind="pending_award" if pending else "award", reference=tx, pending=pending,
                         metadata='{"reason":"r"}')

    @rule(target=awards, person=st.sampled_from(["ann", "bob"]), points=st.integers(1, 400),
          wait=st.sampled_from(["now", "dated", "approval"]))
    def award(self, person: str, points: int, wait: str) -> tuple[str, str, int, Idem, str]:
        idem, tx = self.idem(), "tx_" + secrets.token_hex(8)
        [outcome] = self.run(self.store.award_batch(self.program, [self.award_spec(person, points, wait, idem, tx)]))
        assert outcome.ok and outcome.tx == tx
        if wait == "now":
            self.credit(person, points)
        else:
            assert outcome.lot == tx
            self.pending[person] += points
            self.lots[tx] = (person, points, self.clock + 60_000 if wait == "dated" else None)
        self.transactions += 1
        return (tx, person, points, idem, wait)

    @rule(award=awards)
    def retry_award(self, award: tuple[str, str, int, Idem, str]) -> None:
        tx, person, points, idem, wait = award
        before = self.run(self.store.balance_read(self.program, person))
        [outcome] = self.run(self.store.award_batch(
            self.program, [self.award_spec(person, points, wait, idem, "tx_" + secrets.token_hex(8))]))
        assert outcome.replayed and outcome.tx == tx
        assert self.run(self.store.balance_read(self.program, person)) == before

    @rule(target=requests, person=st.sampled_from(["ann", "bob"]), points=st.integers(1, 300))
    def grant(self, person: str, points: int) -> tuple[str, int, Idem]:
        idem = self.idem()
        outcome = self.run(self.store.grant(self.program, GrantSpec(
            idem=idem, tx="tx_" + secrets.token_hex(8), participant_id=person, points=points)))
        assert outcome.ok
        self.credit(person, points)
        self.transactions += 1
        return (person, points, idem)

    @rule(person=st.sampled_from(["ann", "bob"]), points=st.integers(1, 300))
    def prize_in_points(self, person: str, points: int) -> None:
        """Earnings outside rw_grant (a spin's item prize paid in points instead: rw_transfer
        with "earn") pay what is owed first too."""
        outcome = self.run(self.store.transfer(
            self.program, "tx_" + secrets.token_hex(8), "prize_substitute", [Leg("acct:prizes", "w1:available", points, "-")],
            idem=self.idem(), wallets=[person], participant_id=person, lifetime="earn"))
        assert outcome.ok and (outcome.owed_paid or 0) == min(self.owed[person], points)
        self.credit(person, points)
        self.transactions += 1

    @rule(person=st.sampled_from(["ann", "bob"]), points=st.integers(1, 300))
    def deduct(self, person: str, points: int) -> None:
        outcome = self.run(self.store.deduct(self.program, GrantSpec(
            idem=self.idem(), tx="tx_" + secrets.token_hex(8), participant_id=person, points=points)))
        assert outcome.ok == (points <= self.available[person])
        if outcome.ok:
            self.available[person] -= points
            self.transactions += 1

    @rule(person=st.sampled_from(["ann", "bob"]))
    def spend_everything(self, person: str) -> None:
        """A redemption of all that is available: a later return of a sale then leaves points owed."""
        if self.available[person] == 0:
            return
        outcome = self.run(self.store.deduct(self.program, GrantSpec(
            idem=self.idem(), tx="tx_" + secrets.token_hex(8), participant_id=person,
            points=self.available[person])))
        assert outcome.ok and outcome.available == 0
        self.available[person] = 0
        self.transactions += 1

    @rule(award=awards)
    def release(self, award: tuple[str, str, int, Idem, str]) -> None:
        tx, person = award[0], award[1]
        outcome = self.run(self.store.release(self.program, person, tx, "tx_" + secrets.token_hex(8), self.idem(),
                                              "approve"))
        if tx in self.lots:
            assert outcome.ok, outcome
            self.credit(person, self.lots.pop(tx)[1])
            self.pending[person] -= outcome.points or 0
            self.transactions += 1
        else:
            assert not outcome.ok  # released, cancelled or never a lot: nothing moves

    @rule(minutes=st.integers(0, 3))
    def pass_of_the_worker(self, minutes: int) -> None:
        """The clock moves on; the worker releases what is due at that moment, never before."""
        self.clock += minutes * 60_000
        for person, lot in self.run(self.store.due_lots(self.program, self.clock)):
            outcome = self.run(self.store.release(self.program, person, lot, "tx_" + secrets.token_hex(8),
                                                  self.idem(), "due", due_at_ms=self.clock))
            assert outcome.ok and lot in self.lots
            _, points, at = self.lots.pop(lot)
            assert at is not None and at <= self.clock
            self.pending[person] -= points
            self.credit(person, points)
            self.transactions += 1
        assert all(at is None or at > self.clock for _, _, at in self.lots.values())

    @rule(award=awards)
    def reverse(self, award: tuple[str, str, int, Idem, str]) -> None:
        tx, person, points = award[0], award[1], award[2]
        result = self.run(self.store.reverse(self.program, tx, [ReversedAward(tx=tx, participant_id=person,
                                                                              points=points)]))
        assert result.ok
        if tx in self.reversed:
            assert result.replayed  # once per sale: nothing moves again
            return
        self.reversed.add(tx)
        [step] = result.steps
        if tx in self.lots:
            self.lots.pop(tx)
            self.pending[person] -= points
            assert (step.cancelled, step.taken_back, step.owed) == (points, 0, 0)
        else:
            take = min(self.available[person], points)
            self.available[person] -= take
            self.owed[person] += points - take
            assert (step.cancelled, step.taken_back, step.owed) == (0, take, points - take)
        self.transactions += 1

    @invariant()
    def redis_matches_the_model_and_nothing_is_negative(self) -> None:
        for person in self.people:
            read = self.run(self.store.balance_read(self.program, person))
            assert (read.available, read.pending, read.owed) == \
                (self.available[person], self.pending[person], self.owed[person])
            assert sorted(lot.id for lot in read.lots) == sorted(t for t, lot in self.lots.items() if lot[0] == person)
            assert sum(lot.lot.points for lot in read.lots) == read.pending
            assert read.available >= 0 and read.pending >= 0 and read.owed >= 0

    @invariant()
    def points_are_conserved(self) -> None:
        program_accounts = self.run(self.store.program_accounts(self.program))
        assert sum(program_accounts.values()) + sum(self.available.values()) + sum(self.pending.values()) == 0
