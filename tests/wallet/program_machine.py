"""The setup the wallet's hypothesis state machines share: one fresh program on the real
wallet functions, its wallets opened, and at the end its journal projected into a ledger
that must hold each transaction and reconcile with Redis."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis.stateful import RuleBasedStateMachine

from kernel import keys as kernel_keys
from wallet.journal import JournalProjector
from wallet.reconcile import reconcile_program
from wallet.store import WalletStore
from kernel.redis_functions import connect
from kernel.idempotency import Idem
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
