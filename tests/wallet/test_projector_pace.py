"""A running projector's pace: quiet journals are read seldom, in one round trip a pass, and
an entry that arrives in one of them still reaches the ledger."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio as aioredis

from kernel import keys as kernel_keys
from kernel.idempotency import Idem
from kernel.redis_functions import connect
from tests.factories import random_ref, wait_until
from wallet import accounts
from wallet.journal import JournalProjector
from wallet.store import WalletStore
from wallet.tables import LedgerEntry

pytestmark = [pytest.mark.sql, pytest.mark.usefixtures("migrated")]

QUIET_PROGRAMS = 100
WINDOW = 3.0


async def calls_of(url: str, command: str) -> int:
    """How many times clients have run `command` on the Valkey at `url`."""
    watcher = aioredis.Redis.from_url(url)
    try:
        stats = await watcher.info("commandstats")
    finally:
        await watcher.aclose()
    return int(stats.get(f"cmdstat_{command}", {}).get("calls", 0))


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
    running = asyncio.create_task(JournalProjector(client, consumer="pace", claim_idle_ms=0).run(stop, ids))
    try:
        await asyncio.sleep(1.0)  # long enough for every journal to turn quiet
        reads_before, pipelines_before = await calls_of(private_valkey, "xreadgroup"), await calls_of(
            private_valkey, "xautoclaim")
        await asyncio.sleep(WINDOW)
        reads = await calls_of(private_valkey, "xreadgroup") - reads_before
        claims = await calls_of(private_valkey, "xautoclaim") - pipelines_before
        # Quiet, each journal is read every 0.5 s and at each 2 s claim pass: about 8 reads
        # in the window. Read at every pass, as before, each was read 50 to 100 times.
        assert reads <= QUIET_PROGRAMS * (WINDOW / 0.5 + WINDOW / 2 + 2), reads
        assert claims <= QUIET_PROGRAMS * (WINDOW / 2 + 1), claims

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
