"""A running projector's pace: quiet journals cost few commands (one read of every due journal
a pass, each read less often while it stays quiet), and an entry that arrives in one of them
still reaches the ledger."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis.asyncio as aioredis

from kernel import keys as kernel_keys
from kernel.idempotency import Idem
from kernel.redis_functions import connect
from tests.factories import commands_of, random_ref, wait_until
from wallet import accounts
from wallet.chain import verify_chain
from wallet.journal import JournalProjector
from wallet.store import WalletStore
from wallet.tables import LedgerEntry

pytestmark = [pytest.mark.sql, pytest.mark.usefixtures("migrated")]

QUIET_PROGRAMS = 100
WINDOW = 4.0


async def journal_commands(url: str) -> int:
    """How many journal reads and claims clients have sent the Valkey at `url`."""
    watcher = aioredis.Redis.from_url(url)
    try:
        stats = await watcher.info("commandstats")
    finally:
        await watcher.aclose()
    return sum(int(stats.get(f"cmdstat_{command}", {}).get("calls", 0)) for command in ("xreadgroup", "xautoclaim"))


async def test_quiet_journals_are_read_seldom_and_an_entry_in_one_still_lands(private_valkey: str) -> None:
    client = connect(private_valkey)
    store = WalletStore(client)
    await store.load_functions()
    programs = [random_ref("prg") for _ in range(QUIET_PROGRAMS)]
    for program in programs:
        await store.open_wallet(program, "ann")

    async def ids() -> list[str]:
        return programs

    stop = asyncio.Event()
    # Claims only after an hour: the entry below can reach the ledger by the pass's read alone.
    running = asyncio.create_task(JournalProjector(client, consumer="pace", claim_idle_ms=3_600_000).run(stop, ids))
    try:
        await asyncio.sleep(2.0)  # long enough for every journal to turn quiet
        before = await journal_commands(private_valkey)
        await asyncio.sleep(WINDOW)
        sent = await journal_commands(private_valkey) - before
        # One read of every due journal a pass (at most 50 passes a second) and a claim of
        # each every 5 s: a few hundred. Each journal read on its own at every pass, as
        # before, was about 60 commands a program in the window.
        assert sent <= QUIET_PROGRAMS * 5, sent

        quiet = programs[QUIET_PROGRAMS // 2]
        idem = Idem(key=kernel_keys.idempotency(quiet, "admin", random_ref()), fingerprint="fp")
        await accounts.grant(store, quiet, "ann", 7, "sale", idem)

        async def projected() -> int:
            return await LedgerEntry.count().where(LedgerEntry.program_id == quiet).run()

        assert await wait_until(projected, 1) == 1
    finally:
        stop.set()
        await running
        await client.aclose()


async def test_a_backlog_in_every_journal_is_read_a_bounded_page_at_a_time_and_all_of_it_lands(
        private_valkey: str) -> None:
    # After an outage every journal may hold a backlog: a pass's one read must not answer all
    # of them at once (500 entries of each), yet every entry still reaches the ledger.
    client = connect(private_valkey)
    store = WalletStore(client)
    await store.load_functions()
    programs = [random_ref("prg") for _ in range(30)]
    for program in programs:
        await store.open_wallet(program, "ann")
        for _ in range(12):
            idem = Idem(key=kernel_keys.idempotency(program, "admin", random_ref()), fingerprint="fp")
            await accounts.grant(store, program, "ann", 1, "sale", idem)
    projector = JournalProjector(client, consumer="backlog", claim_idle_ms=3_600_000, pass_entries=60)
    done: list[int] = []

    async def one_pass() -> None:
        done.append(await projector.project_due(programs, 0.0))

    try:
        sent = await commands_of(private_valkey, one_pass)
    finally:
        await client.aclose()
    reads = [command.split(" ") for command in sent if command.startswith("XREADGROUP ")]
    # The pass's read names all 30 journals, 2 entries of each (60 in all); then each journal
    # whose page came back full is read on alone, a batch at a time.
    first = reads[0]
    assert first[first.index("COUNT") + 1] == "2" and first.count(">") == 30, first
    assert all(read[read.index("COUNT") + 1] == "500" and read.count(">") == 1 for read in reads[1:]), reads[1:]
    assert done == [30 * 12]
    for program in programs:
        assert await LedgerEntry.count().where(LedgerEntry.program_id == program).run() == 12


async def test_a_pass_that_fails_after_writing_a_batch_links_it_at_the_next_pass_though_nothing_is_new(
        private_valkey: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client = connect(private_valkey)
    store = WalletStore(client)
    await store.load_functions()
    program = random_ref("prg")
    await store.open_wallet(program, "ann")
    for _ in range(2):
        idem = Idem(key=kernel_keys.idempotency(program, "admin", random_ref()), fingerprint="fp")
        await accounts.grant(store, program, "ann", 1, "sale", idem)
    # A full page (2 of 2) is written, then reading on fails: the store went away.
    projector = JournalProjector(client, consumer="fails", batch_size=2, claim_idle_ms=3_600_000)

    async def store_gone(stream: str) -> Any:
        raise ConnectionError("the store went away")

    monkeypatch.setattr(projector, "_read", store_gone)
    try:
        assert await projector.project_due([program], 0.0) == 0
        written = await verify_chain(program)
        assert (written.entries, written.unlinked) == (0, 2)
        monkeypatch.undo()
        # The journal holds nothing new; the next pass links what the failed one wrote.
        assert await projector.project_due([program], 1.0) == 0
    finally:
        await client.aclose()
    linked = await verify_chain(program)
    assert linked.ok and (linked.entries, linked.unlinked) == (2, 0)
