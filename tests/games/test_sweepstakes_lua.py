"""Property test of the entry function (games/sweepstakes/sweepstakes.lua) on real Valkey, standalone
and on a three-node cluster: whatever mix of paid entries, free entries, retries and a close
happens, nobody holds more than the maximum, tickets are conserved (each participant's
count, the running total and the entries file agree), and points are conserved (what
wallets lost is exactly what the program's sweepstakes account gained)."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest
from hypothesis import HealthCheck, given, strategies as st
from hypothesis import settings as hypothesis_settings
from hypothesis.stateful import Bundle, RuleBasedStateMachine, invariant, rule

from games.sweepstakes import entries
from games.sweepstakes import keys as swkeys
from games.fairness import entries_file, parse_entries_file
from kernel import keys as kernel_keys
from kernel.errors import DomainError
from wallet.journal import JournalProjector
from wallet.reconcile import reconcile_program
from wallet.store import GrantSpec, WalletStore
from kernel.redis_functions import connect
from kernel.idempotency import Idem

PEOPLE = ["ann", "bob", "cy"]
COST, MAX, START = 7, 9, 40


class EntryMachine(RuleBasedStateMachine):
    url: str = ""
    cluster: bool = False
    requests = Bundle("requests")

    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.client = connect(self.url, cluster=self.cluster)
        self.store = WalletStore(self.client)
        self.program, self.sid = "swprop" + secrets.token_hex(5), "swp_" + secrets.token_hex(6)
        self.tickets = dict.fromkeys(PEOPLE, 0)
        self.available = dict.fromkeys(PEOPLE, START)
        self.open = True
        self.run(self.store.load_functions())
        for person in PEOPLE:
            self.run(self.store.open_wallet(self.program, person))
            # Transaction ids are unique across examples: the ledger keeps each id once.
            spec = GrantSpec(idem=Idem(), tx=f"tx_{self.program}_{person}", participant_id=person, points=START)
            self.run(self.store.grant(self.program, spec))
        self.run(self.client.hset(swkeys.config(self.program, self.sid), mapping={
            "status": "open", "starts_ms": "", "closes_ms": str(2**45), "cost": str(COST), "max": str(MAX),
            "pidk": secrets.token_hex(16)}))

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def apply(self, person: str, count: int, free: bool, key: str) -> entries.Entered | None:
        idem = Idem(key=kernel_keys.idempotency(self.program, "pt", key), fingerprint=f"{person}:{count}:{free}")
        try:
            return self.run(entries.enter(self.store, self.program, self.sid, person, count, idem,
                                          free_reason="mail-in" if free else None))
        except DomainError:
            return None

    def expected(self, person: str, count: int, free: bool) -> bool:
        cost = 0 if free else COST * count
        return self.open and self.tickets[person] + count <= MAX and self.available[person] >= cost

    @rule(target=requests, person=st.sampled_from(PEOPLE), count=st.integers(1, 6), free=st.booleans())
    def enter(self, person: str, count: int, free: bool) -> tuple[str, int, bool, str, Any]:
        should = self.expected(person, count, free)
        key = secrets.token_hex(6)
        entered = self.apply(person, count, free, key)
        assert (entered is not None) == should, (person, count, free, self.tickets, self.available)
        if entered is not None:
            self.tickets[person] += count
            self.available[person] -= 0 if free else COST * count
            assert entered.entry.tickets == self.tickets[person] and not entered.replayed
        return person, count, free, key, entered

    @rule(request=requests)
    def retry(self, request: tuple[str, int, bool, str, Any]) -> None:
        person, count, free, key, first = request
        again = self.apply(person, count, free, key)
        if first is not None:  # a success replays as itself and changes nothing
            assert again is not None and again.replayed and again.entry == first.entry

    @rule()
    def close(self) -> None:
        self.run(self.client.fcall("rw_sw_close", 1, swkeys.config(self.program, self.sid), "1"))
        self.open = False

    @invariant()
    def tickets_and_points_are_conserved(self) -> None:
        found = self.run(entries.read_tickets(self.client, self.program, self.sid))
        held = {k.decode(): int(v) for k, v in found.items()}
        key = self.run(self.client.hget(swkeys.config(self.program, self.sid), "pidk")).decode()
        assert {p: held.get(entries.public_id_of(key, p), 0) for p in PEOPLE} == self.tickets
        assert max(self.tickets.values()) <= MAX
        raw = self.run(self.client.hmget(swkeys.config(self.program, self.sid), "tickets", "entrants"))
        assert (int(raw[0] or 0), int(raw[1] or 0)) == (sum(self.tickets.values()),
                                                          sum(1 for t in self.tickets.values() if t))
        balances = {p: self.run(self.store.balance(self.program, p)) for p in PEOPLE}
        assert {p: b["available"] for p, b in balances.items()} == self.available
        spent = sum(START - a for a in self.available.values())
        assert sum(b["spent"] for b in balances.values()) == spent
        assert self.run(self.store.program_accounts(self.program)).get("sweepstakes", 0) == spent
        body, total, entrants = entries.entries_file_of_tickets(found)
        assert body == entries_file(held.items())
        assert sum(t for _, t in parse_entries_file(body)) == total == sum(self.tickets.values())

    def teardown(self) -> None:
        # The journal (paid entries with legs, free ones without) projects into a ledger that
        # reconciles with Redis exactly.
        try:
            self.run(JournalProjector(self.client, consumer="swprop", claim_idle_ms=0).project_program(self.program))
            assert self.run(reconcile_program(self.client, self.program)) == []
        finally:
            self.run(self.client.aclose())
            self.loop.close()


@pytest.mark.parametrize("mode", ["standalone", "cluster"])
def test_entries_never_pass_the_maximum_and_conserve_tickets_and_points(mode: str, settings, migrated,  # type: ignore[no-untyped-def]
                                                                        request) -> None:
    machine = EntryMachine
    machine.url = request.getfixturevalue("valkey_cluster_url") if mode == "cluster" else settings.redis_url
    machine.cluster = mode == "cluster"
    machine.TestCase.settings = hypothesis_settings(
        max_examples=25, stateful_step_count=30, deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    machine.TestCase().runTest()


@given(st.dictionaries(st.text("0123456789abcdef", min_size=1, max_size=24).map(lambda h: "e" + h),
                       st.integers(0, 2**20), max_size=300))
def test_the_fast_entries_file_is_byte_for_byte_the_canonical_one(tickets: dict[str, int]) -> None:
    found = {k.encode(): str(v).encode() for k, v in tickets.items()}
    body, total, entrants = entries.entries_file_of_tickets(found)
    assert body == entries_file(tickets.items())
    assert (total, entrants) == (sum(tickets.values()), sum(1 for v in tickets.values() if v))
