"""The tamper-evident ledger: every program's entries hash-chained in journal order, and
`reward-wallet audit` naming the first entry that was edited, deleted or reordered."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.factories import (ProgramHandle, admin_idem, catalog_item, grant, launched_wheel, new_participant,
                             new_program, random_ref, redeem, shopper, spin, spinning_participant, wait_until)
from wallet import accounts, keys
from wallet.chain import genesis, link_below, link_program, next_link, restore_journal_floor, stream_order, verify_chain
from wallet.journal import GROUP, JournalProjector, parse_entry, write_batch
from wallet.store import WalletStore
from wallet.tables import ChainHead, LedgerEntry
from kernel.replies import reply_text

pytestmark = pytest.mark.sql

REWARD_WALLET = str(Path(sys.executable).parent / "reward-wallet")


def audit(*args: str) -> subprocess.CompletedProcess[str]:
    """The CLI on the session's own database (its environment names it)."""
    return subprocess.run([REWARD_WALLET, "audit", *args], capture_output=True, text=True, timeout=120)


async def rows_of(program_id: str) -> int:
    return await LedgerEntry.count().where(LedgerEntry.program_id == program_id).run()


async def fully_linked(program_id: str, count: int) -> Any:
    """Waits for the projector to write and link `count` entries; answers the report."""
    async def linked() -> tuple[int, int]:
        report = await verify_chain(program_id)
        return report.entries, report.unlinked
    assert await wait_until(linked, (count, 0)) == (count, 0)
    return await verify_chain(program_id)


async def granted_program(client: Any, grants: int = 5) -> ProgramHandle:
    program = await new_program(client)
    person = await new_participant(client, program)
    for n in range(grants):
        assert (await grant(client, program, person["id"], 10 + n)).status_code == 201
    await fully_linked(program.id, grants)
    return program


async def row_at(program_id: str, seq: int) -> dict[str, Any]:
    row = await LedgerEntry.select().where((LedgerEntry.program_id == program_id) & (LedgerEntry.seq == seq)) \
        .first().run()
    assert row is not None
    return row


async def test_grants_spins_and_redemptions_chain_in_journal_order_and_audit_holds(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    campaign_id = await launched_wheel(client, program)
    _, spinner = await spinning_participant(client, program, 50)
    for _ in range(3):
        assert (await spin(client, campaign_id, spinner)).status_code == 201
    item = await catalog_item(client, program, face_value=500)
    _, buyer = await shopper(client, program, 2_000)
    assert (await redeem(client, buyer, item["id"])).status_code == 201

    async def settled() -> bool:
        rows, report = await rows_of(program.id), await verify_chain(program.id)
        return rows >= 6 and report.ok and (report.entries, report.unlinked) == (rows, 0)
    assert await wait_until(settled, True)
    # Seqs follow the stream's order, and each link is the hash of the one before it and the row.
    rows = await LedgerEntry.select().where(LedgerEntry.program_id == program.id).order_by(LedgerEntry.seq).run()
    assert [r["seq"] for r in rows] == list(range(1, len(rows) + 1))
    assert [stream_order(r["stream_id"]) for r in rows] == sorted(stream_order(r["stream_id"]) for r in rows)
    link = genesis(program.id)
    for row in rows:
        link = next_link(link, row)
        assert row["link"] == link
    head = await ChainHead.select().where(ChainHead.program_id == program.id).first().run()
    assert (head["seq"], head["link"]) == (len(rows), link)

    answer = await asyncio.to_thread(audit, program.id)
    assert answer.returncode == 0, answer.stdout + answer.stderr
    assert f"program {program.id}: the chain holds ({len(rows)} entries" in answer.stdout


@pytest.mark.one_store  # the verdict on rows it is handed: the same on every store
async def test_audit_names_an_edited_row(client) -> None:  # type: ignore[no-untyped-def]
    program = await granted_program(client)
    await LedgerEntry.update({LedgerEntry.points: LedgerEntry.points + 1000}).where(
        (LedgerEntry.program_id == program.id) & (LedgerEntry.seq == 3)).run()
    edited = await row_at(program.id, 3)
    answer = await asyncio.to_thread(audit, program.id)
    assert answer.returncode == 1, answer.stdout + answer.stderr
    assert f"program {program.id}: BROKEN at seq 3 (stream id {edited['stream_id']}, transaction " \
           f"{edited['transaction_id']}): link_mismatch" in answer.stdout
    # Without an id, every program is audited: this one is still named.
    everything = await asyncio.to_thread(audit)
    assert everything.returncode == 1 and f"program {program.id}: BROKEN at seq 3" in everything.stdout


@pytest.mark.one_store  # the verdict on rows it is handed: the same on every store
async def test_audit_names_a_deleted_row(client) -> None:  # type: ignore[no-untyped-def]
    program = await granted_program(client)
    await LedgerEntry.delete().where((LedgerEntry.program_id == program.id) & (LedgerEntry.seq == 2)).run()
    answer = await asyncio.to_thread(audit, program.id)
    assert answer.returncode == 1, answer.stdout + answer.stderr
    assert f"program {program.id}: BROKEN at seq 2" in answer.stdout and "missing_seq" in answer.stdout
    assert "seq 2 missing before seq 3" in answer.stdout


@pytest.mark.one_store  # the verdict on rows it is handed: the same on every store
async def test_audit_names_the_newest_row_deleted(client) -> None:  # type: ignore[no-untyped-def]
    program = await granted_program(client)
    await LedgerEntry.delete().where((LedgerEntry.program_id == program.id) & (LedgerEntry.seq == 5)).run()
    report = await verify_chain(program.id)
    assert not report.ok and report.problem is not None
    assert (report.problem.seq, report.problem.problem) == (5, "missing_seq")


@pytest.mark.one_store  # the verdict on rows it is handed: the same on every store
async def test_audit_names_two_rows_swapped(client) -> None:  # type: ignore[no-untyped-def]
    program = await granted_program(client)
    second, third = await row_at(program.id, 2), await row_at(program.id, 3)
    content = ["transaction_id", "participant_id", "kind", "points", "earned", "spent", "reference", "metadata",
               "legs", "stream_id", "created_at"]
    # transaction_id is unique: park one row's id while the contents trade places.
    await LedgerEntry.update({LedgerEntry.transaction_id: "tx_parked"}).where(
        LedgerEntry.transaction_id == second["transaction_id"]).run()
    await LedgerEntry.update({getattr(LedgerEntry, c): second[c] for c in content}).where(
        LedgerEntry.transaction_id == third["transaction_id"]).run()
    await LedgerEntry.update({getattr(LedgerEntry, c): third[c] for c in content}).where(
        LedgerEntry.transaction_id == "tx_parked").run()
    assert (await row_at(program.id, 2))["transaction_id"] == third["transaction_id"]
    answer = await asyncio.to_thread(audit, program.id)
    assert answer.returncode == 1, answer.stdout + answer.stderr
    assert f"program {program.id}: BROKEN at seq 2 (stream id {third['stream_id']}" in answer.stdout
    assert "order: rows reordered" in answer.stdout


@pytest.mark.one_store  # the verdict on rows it is handed: the same on every store
async def test_audit_of_an_unknown_program_says_so() -> None:
    answer = await asyncio.to_thread(audit, "prg_nobody")
    assert answer.returncode == 2 and "no program prg_nobody" in answer.stderr


# --- concurrency and crashes, on the wallet's own functions (no app projector sees these) --


async def taken_and_written(wallet_store: WalletStore, program: str, grants: int, taken: int) -> list[Any]:
    """Ann granted 1, 2, ... `grants` points; a projector's consumer takes the oldest `taken`
    journal entries and writes them to SQL, nothing more (what it does next is the test's)."""
    await wallet_store.open_wallet(program, "ann")
    for n in range(grants):
        await accounts.grant(wallet_store, program, "ann", 1 + n, "sale", admin_idem(program))
    stream = keys.journal(program)
    await wallet_store.client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    entries = (await wallet_store.client.xreadgroup(GROUP, "dies", {stream: ">"}, count=taken))[0][1]
    await write_batch(program, [parse_entry(sid, fields) for sid, fields in entries])
    return list(entries)


async def test_an_entry_pending_elsewhere_holds_the_chain_back_until_it_is_projected(
        wallet_store: WalletStore) -> None:
    program = random_ref("prg")
    # A consumer takes the oldest entry, writes it to SQL and dies before acknowledging it.
    await taken_and_written(wallet_store, program, grants=3, taken=1)
    client = wallet_store.client
    for n in range(3):
        await accounts.grant(wallet_store, program, "ann", 10 + n, "sale", admin_idem(program))
    # Another projects all the newer ones; none may be linked ahead of the pending one.
    assert await JournalProjector(client, consumer="lives", claim_idle_ms=3_600_000).project_program(program) == 5
    report = await verify_chain(program)
    assert (report.ok, report.entries, report.unlinked) == (True, 0, 6)
    # Once the dead consumer's entry is claimed and acknowledged, all six link in stream order.
    assert await JournalProjector(client, consumer="claims", claim_idle_ms=0).project_program(program) == 1
    report = await verify_chain(program)
    assert (report.ok, report.entries, report.unlinked) == (True, 6, 0), report
    rows = await LedgerEntry.select(LedgerEntry.points, LedgerEntry.seq).where(
        LedgerEntry.program_id == program).order_by(LedgerEntry.seq).run()
    assert [r["points"] for r in rows] == [1, 2, 3, 10, 11, 12]


@pytest.mark.parametrize("killed_before_xdel", [False, True])
async def test_a_batch_acknowledged_by_a_projector_that_died_before_linking_is_linked_by_the_next(
        wallet_store: WalletStore, killed_before_xdel: bool) -> None:
    program = random_ref("prg")
    # A projector writes the whole batch, acknowledges and deletes it, and is killed before it
    # links: no entry is left in the journal for any later batch to link behind.
    taken = await taken_and_written(wallet_store, program, grants=4, taken=10)
    client = wallet_store.client
    stream = keys.journal(program)
    await client.xack(stream, GROUP, *[sid for sid, _ in taken])
    if killed_before_xdel:  # still in the stream, acknowledged: it must not hold the chain back
        await client.xdel(stream, *[sid for sid, _ in taken[2:]])
    else:
        await client.xdel(stream, *[sid for sid, _ in taken])
    assert (await verify_chain(program)).unlinked == 4

    async def just_this() -> list[str]:
        return [program]

    stop = asyncio.Event()
    running = asyncio.create_task(JournalProjector(client, consumer="next").run(stop, just_this, relink_every=0.2))
    try:
        await fully_linked(program, 4)
    finally:
        stop.set()
        await running


async def test_concurrent_grants_with_two_projectors_make_one_unbroken_chain(wallet_store: WalletStore) -> None:
    program = random_ref("prg")
    people = [f"p{n}" for n in range(8)]
    for person in people:
        await wallet_store.open_wallet(program, person)
    stop = asyncio.Event()

    async def ids() -> list[str]:
        return [program]

    # Small batches and a pause before each acknowledgement: the two overlap and finish out of order.
    projectors = [JournalProjector(wallet_store.client, consumer=name, batch_size=7, claim_idle_ms=3_600_000,
                                   pause_before_ack=pause)
                  for name, pause in (("one", 0.003), ("two", 0.0))]
    running = [asyncio.create_task(p.run(stop, ids, idle_sleep=0.001)) for p in projectors]
    total = 240
    grants = [accounts.grant(wallet_store, program, people[n % len(people)], 1 + n % 5, "sale", admin_idem(program))
              for n in range(total)]
    for start in range(0, total, 40):
        await asyncio.gather(*grants[start:start + 40])
    stop.set()
    await asyncio.gather(*running)

    report = await verify_chain(program)
    assert (report.ok, report.entries, report.unlinked, report.head_seq) == (True, total, 0, total), report
    rows = await LedgerEntry.select(LedgerEntry.transaction_id, LedgerEntry.seq, LedgerEntry.stream_id).where(
        LedgerEntry.program_id == program).order_by(LedgerEntry.seq).run()
    assert len({r["transaction_id"] for r in rows}) == total
    assert [r["seq"] for r in rows] == list(range(1, total + 1))
    assert [stream_order(r["stream_id"]) for r in rows] == sorted(stream_order(r["stream_id"]) for r in rows)


async def test_after_a_redis_loss_the_new_journal_goes_on_after_the_chain_head(wallet_store: WalletStore) -> None:
    program = random_ref("prg")
    client = wallet_store.client
    await wallet_store.open_wallet(program, "ann")
    await accounts.grant(wallet_store, program, "ann", 5, "sale", admin_idem(program))
    projector = JournalProjector(client, consumer="before", claim_idle_ms=0)
    assert await projector.project_program(program) == 1
    assert (await verify_chain(program)).entries == 1
    # The head as a clock that later went back would leave it: an hour ahead of Redis's time.
    seconds, _ = await client.time()
    ahead = f"{(seconds + 3600) * 1000}-0"
    await ChainHead.update({ChainHead.stream_id: ahead}).where(ChainHead.program_id == program).run()
    await client.delete(keys.journal(program))  # the journal is lost with Redis

    assert await restore_journal_floor(client, program) is True
    assert await restore_journal_floor(client, program) is False  # once is enough
    await accounts.grant(wallet_store, program, "ann", 7, "sale", admin_idem(program))
    assert await JournalProjector(client, consumer="after", claim_idle_ms=0).project_program(program) == 1
    report = await verify_chain(program)
    assert (report.ok, report.entries, report.unlinked) == (True, 2, 0), report
    newest = await row_at(program, 2)
    assert stream_order(newest["stream_id"]) > stream_order(ahead) and newest["points"] == 7


async def test_a_running_projector_gathers_entries_arriving_one_by_one_into_few_passes(
        wallet_store: WalletStore, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each pass takes SQLite's one write lock twice (the batch, then its links), so passes
    that found entries start at most every `pass_every` seconds, however the entries trickle
    in; every entry still lands and is linked."""
    program = random_ref("prg")
    await wallet_store.open_wallet(program, "ann")
    projector = JournalProjector(wallet_store.client, consumer="cadence", claim_idle_ms=0)
    passes = 0
    project_due = projector.project_due

    async def counted(program_ids: list[str], now: float) -> int:
        nonlocal passes
        done = await project_due(program_ids, now)
        passes += done > 0
        return done

    async def just_this() -> list[str]:
        return [program]

    monkeypatch.setattr(projector, "project_due", counted)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    began = loop.time()
    running = asyncio.create_task(projector.run(stop, just_this, pass_every=0.25))
    for n in range(40):
        await accounts.grant(wallet_store, program, "ann", 1 + n % 3, "sale", admin_idem(program))
        await asyncio.sleep(0.02)  # one at a time: passing at once would make a pass of each
    stop.set()
    await running
    elapsed = loop.time() - began
    assert (await fully_linked(program, 40)).ok
    assert passes <= elapsed / 0.25 + 2, (passes, elapsed)


async def test_an_audit_during_a_link_holds_and_a_head_left_behind_the_rows_is_named(
        wallet_store: WalletStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from wallet import chain

    program = random_ref("prg")
    taken = await taken_and_written(wallet_store, program, grants=6, taken=6)
    client = wallet_store.client
    await client.xack(keys.journal(program), GROUP, *[sid for sid, _ in taken])
    await client.xdel(keys.journal(program), *[sid for sid, _ in taken])
    assert (await verify_chain(program)).unlinked == 6
    # A live projector links the first four between the audit's read of the head and its read
    # of the rows, and the last two just before the audit reads the head again: the rows end
    # past the head read first, the head read again is past the rows walked, the walk goes on.
    reads, heads = chain._page, chain._head
    fourth = stream_order(reply_text(taken[3][0]))
    head_reads = 0

    async def linked_meanwhile(columns: Any, program_id: str, after: int) -> list[dict[str, Any]]:
        if after == 0:
            assert await link_below(program_id, fourth, True) == 4
        return await reads(columns, program_id, after)

    async def linked_before_second_read(program_id: str) -> tuple[int, str]:
        nonlocal head_reads
        head_reads += 1
        if head_reads == 2:
            assert await link_program(client, program_id) == 2
        return await heads(program_id)

    monkeypatch.setattr(chain, "_page", linked_meanwhile)
    monkeypatch.setattr(chain, "_head", linked_before_second_read)
    report = await verify_chain(program)
    assert (report.ok, report.entries, report.head_seq, report.unlinked) == (True, 6, 6, 0), report
    assert head_reads == 2
    monkeypatch.setattr(chain, "_page", reads)
    monkeypatch.setattr(chain, "_head", heads)
    # A head that stays behind the rows (set back by hand to seq 2's) is a problem the audit names.
    second = await row_at(program, 2)
    await ChainHead.update({ChainHead.seq: 2, ChainHead.link: second["link"]}).where(
        ChainHead.program_id == program).run()
    report = await verify_chain(program)
    assert not report.ok and report.problem is not None, report
    assert (report.problem.problem, report.problem.seq) == ("head_mismatch", 2), report
    assert report.problem.detail == "the chain head (seq 2) does not match the rows (which end at seq 6)"


# --- linked as written: a batch alone pending is linked in the transaction that writes it --


async def journal_entries(wallet_store: WalletStore, program: str) -> list[Any]:
    """The program's journal entries as the projector parses them, oldest first."""
    return [parse_entry(sid, fields) for sid, fields in await wallet_store.client.xrange(keys.journal(program))]


async def test_a_projector_keeping_up_links_each_batch_in_the_transaction_that_writes_it(
        wallet_store: WalletStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from wallet import journal

    program = random_ref("prg")
    client = wallet_store.client
    await wallet_store.open_wallet(program, "ann")
    linking_steps = 0
    link_program_before = journal.link_program

    async def counted(*args: Any) -> int:
        nonlocal linking_steps
        linking_steps += 1
        return await link_program_before(*args)

    async def seqs() -> list[int | None]:
        rows = await LedgerEntry.select(LedgerEntry.seq).where(LedgerEntry.program_id == program) \
            .order_by(LedgerEntry.seq).run()
        return [r["seq"] for r in rows]

    monkeypatch.setattr(journal, "link_program", counted)
    projector = JournalProjector(client, consumer="keeps-up", claim_idle_ms=3_600_000)
    now = asyncio.get_running_loop().time()
    assert await projector.project_due([program], now) == 0  # the first pass claims: nothing yet
    for n in range(5):
        await accounts.grant(wallet_store, program, "ann", 1 + n, "sale", admin_idem(program))
    # A pass that reads the five alone pending writes them linked: no linking step after.
    assert await projector.project_due([program], now + 0.1) == 5
    assert linking_steps == 0
    assert await seqs() == [1, 2, 3, 4, 5]
    # A projector killed between such a batch's commit and its acknowledgement leaves it linked;
    # claimed again, it writes nothing twice and the chain goes on.
    for n in range(2):
        await accounts.grant(wallet_store, program, "ann", 10 + n, "sale", admin_idem(program))
    projector.pause_before_ack = 30.0
    passing = asyncio.create_task(projector.project_due([program], now + 0.2))
    assert await wait_until(seqs, [1, 2, 3, 4, 5, 6, 7]) == [1, 2, 3, 4, 5, 6, 7]
    assert (await client.xpending(keys.journal(program), GROUP))["pending"] == 2  # not acknowledged
    passing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await passing
    assert await JournalProjector(client, consumer="claims", claim_idle_ms=0).project_program(program) == 2
    report = await verify_chain(program)
    assert (report.ok, report.entries, report.unlinked, report.head_seq) == (True, 7, 0, 7), report
    assert [r["points"] for r in await LedgerEntry.select(LedgerEntry.points).where(
        LedgerEntry.program_id == program).order_by(LedgerEntry.seq).run()] == [1, 2, 3, 4, 5, 10, 11]


async def test_a_batch_read_while_an_older_entry_is_pending_elsewhere_waits_for_it(
        wallet_store: WalletStore) -> None:
    program = random_ref("prg")
    client = wallet_store.client
    # A consumer takes the oldest entry and dies before writing it.
    await wallet_store.open_wallet(program, "ann")
    await accounts.grant(wallet_store, program, "ann", 1, "sale", admin_idem(program))
    stream = keys.journal(program)
    await client.xgroup_create(stream, GROUP, id="0", mkstream=True)
    await client.xreadgroup(GROUP, "dies", {stream: ">"}, count=1)
    projector = JournalProjector(client, consumer="lives", claim_idle_ms=3_600_000)
    now = asyncio.get_running_loop().time()
    assert await projector.project_due([program], now) == 0
    for n in range(3):
        await accounts.grant(wallet_store, program, "ann", 10 + n, "sale", admin_idem(program))
    assert await projector.project_due([program], now + 0.1) == 3
    report = await verify_chain(program)
    assert (report.ok, report.entries, report.unlinked) == (True, 0, 3), report
    assert await JournalProjector(client, consumer="claims", claim_idle_ms=0).project_program(program) == 1
    report = await verify_chain(program)
    assert (report.ok, report.entries, report.unlinked) == (True, 4, 0), report
    assert [r["points"] for r in await LedgerEntry.select(LedgerEntry.points).where(
        LedgerEntry.program_id == program).order_by(LedgerEntry.seq).run()] == [1, 10, 11, 12]


async def test_a_batch_is_written_unlinked_when_older_rows_wait_or_the_head_is_past_it(
        wallet_store: WalletStore) -> None:
    program = random_ref("prg")
    await wallet_store.open_wallet(program, "ann")
    for n in range(4):
        await accounts.grant(wallet_store, program, "ann", 1 + n, "sale", admin_idem(program))
    first, second, third, fourth = await journal_entries(wallet_store, program)
    # Older rows waiting for their link: the newer batch does not jump ahead of them.
    assert await write_batch(program, [first]) is False
    assert await write_batch(program, [second], link=True) is False
    assert (await verify_chain(program)).unlinked == 2
    assert await link_below(program, (2**63, 0), True) == 2
    # Nothing waits and the head is below: linked as written, after the head.
    assert await write_batch(program, [third, fourth], link=True) is True
    # The same batch again (projected twice): the head is past it, nothing is written twice.
    assert await write_batch(program, [third, fourth], link=True) is False
    report = await verify_chain(program)
    assert (report.ok, report.entries, report.unlinked, report.head_seq) == (True, 4, 0, 4), report
