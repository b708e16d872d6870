"""Property test: with points that wait, releases and returned sales in the mix, points are
conserved, nothing goes negative, a retry or a second reversal applies nothing, lots release
only when due, and the ledger (pending accounts, owed points) reconciles with Redis.
The machine is tests/wallet/program_machine.py `PendingMachine`."""

from __future__ import annotations

import pytest

from tests.wallet.program_machine import PendingMachine, run_machine


# Not in the Postgres pass (CI's 20 minutes): Postgres sees the same projector under
# WalletMachine there, and pending lots' SQL in tests/programs/test_pending.py.
@pytest.mark.parametrize("mode", ["standalone", "cluster"])
def test_pending_invariants_hold_under_random_operations(mode: str, settings, migrated, request) -> None:  # type: ignore[no-untyped-def]
    url = request.getfixturevalue("valkey_cluster_url") if mode == "cluster" else settings.redis_url
    run_machine(PendingMachine, f"PendingMachine_{mode}", url, mode == "cluster", max_examples=25, steps=30)
