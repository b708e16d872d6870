"""Crash safety: kill -9 the journal worker mid-batch, and kill -9 Valkey under load."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from api.embedded import EmbeddedValkey
from programs.programs import NewProgram, create_program
from tests.conftest import LiveServer
from tests.factories import OPERATOR, random_ref
from wallet import accounts, keys
from kernel import keys as kernel_keys
from wallet.journal import GROUP
from wallet.store import WalletStore
from kernel.redis_functions import connect
from kernel.idempotency import Idem
from wallet.tables import LedgerEntry, LedgerPosting

pytestmark = pytest.mark.sql

REWARD_WALLET = str(Path(sys.executable).parent / "reward-wallet")


def start_worker(redis_url: str, **env: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([REWARD_WALLET, "worker"], env={**os.environ, "REDIS_URL": redis_url, **env},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def until(predicate, timeout: float = 90.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await predicate():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not reached in time")


async def test_killing_the_worker_between_write_and_ack_loses_and_duplicates_nothing(tmp_path: Path, migrated) -> None:  # type: ignore[no-untyped-def]
    valkey = EmbeddedValkey(tmp_path)
    valkey.start()
    client = connect(valkey.url)
    try:
        store = WalletStore(client)
        await store.load_functions()
        program, _ = await create_program(NewProgram(name=random_ref("crash")))
        people = [f"p{i}" for i in range(30)]
        for person in people:
            await store.open_wallet(program.id, person)
        for i in range(300):
            idem = Idem(key=kernel_keys.idempotency(program.id, "admin", f"g{i}"), fingerprint="f")
            await accounts.grant(store, program.id, people[i % 30], 1 + i % 7, "sale", idem)

        async def ledger_rows() -> int:
            return await LedgerEntry.count().where(LedgerEntry.program_id == program.id).run()

        async def pending() -> int:
            try:
                return int((await client.xpending(keys.journal(program.id), GROUP))["pending"])
            except Exception:
                return 0

        async def written_not_acknowledged() -> bool:
            written = await ledger_rows()
            return written > 0 and await pending() == written

        # The worker writes a batch, then stalls before acknowledging it: kill it there. (How
        # many entries its first batch holds depends on how many programs it reads at once.)
        worker = start_worker(valkey.url, RW_FAULT_PAUSE_BEFORE_ACK="60")
        try:
            await until(written_not_acknowledged)
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait()
        written = await ledger_rows()
        assert 0 < written <= 300 and await pending() == written  # written to SQL, never acknowledged

        # More activity arrives while no worker runs.
        for i in range(300, 350):
            idem = Idem(key=kernel_keys.idempotency(program.id, "admin", f"g{i}"), fingerprint="f")
            await accounts.grant(store, program.id, people[i % 30], 2, "sale", idem)

        restarted = start_worker(valkey.url, RW_JOURNAL_CLAIM_IDLE_MS="0")
        try:
            async def drained() -> bool:
                return await client.xlen(keys.journal(program.id)) == 0 and await ledger_rows() == 350

            await until(drained)
        finally:
            restarted.send_signal(signal.SIGTERM)
            restarted.wait(timeout=30)
        ids = [r["transaction_id"] for r in
               await LedgerEntry.select(LedgerEntry.transaction_id).where(LedgerEntry.program_id == program.id).run()]
        assert len(ids) == len(set(ids)) == 350
        postings = await LedgerPosting.count().where(LedgerPosting.program_id == program.id).run()
        assert postings == 700
    finally:
        await client.aclose()
        valkey.stop()


@pytest.mark.redis_bound  # Valkey's AOF; the worker kill above checks the projection on Postgres
async def test_killing_valkey_under_load_keeps_every_answered_request(tmp_path: Path, migrated) -> None:  # type: ignore[no-untyped-def]
    valkey = EmbeddedValkey(tmp_path)
    valkey.start()
    server = LiveServer(extra_env={"REDIS_URL": valkey.url})
    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30,
                                     limits=httpx.Limits(max_connections=32)) as http:
            created = (await http.post("/v1/programs", json={"name": random_ref("kill")}, headers=OPERATOR)).json()
            admin = {"Authorization": f"Bearer {created['admin_key']}"}
            person = (await http.post("/v1/participants", json={"external_id": "k", "display_name": "K"},
                                      headers=admin)).json()["id"]
            answered: dict[str, str] = {}
            keys_sent = [f"grant-{i}" for i in range(400)]

            async def send(key: str) -> None:
                try:
                    response = await http.post("/v1/points/grants", headers={**admin, "Idempotency-Key": key},
                                               json={"participant_id": person, "points": 3, "reason": "load"})
                except httpx.HTTPError:
                    return
                if response.status_code == 201:
                    answered[key] = response.json()["transaction_id"]
                else:
                    assert response.status_code == 503, response.text

            async def killer() -> None:
                while len(answered) < 100:
                    await asyncio.sleep(0.005)
                assert valkey.process is not None
                os.kill(valkey.process.pid, signal.SIGKILL)
                valkey.process.wait()

            semaphore = asyncio.Semaphore(16)

            async def limited(key: str) -> None:
                async with semaphore:
                    await send(key)

            await asyncio.gather(killer(), *[limited(k) for k in keys_sent])
            assert 100 <= len(answered) < 400
            valkey.process = None
            valkey.start()  # same port, same AOF

            # Every answered request survived: its retry replays the very same transaction.
            for key, transaction_id in answered.items():
                replay = await http.post("/v1/points/grants", headers={**admin, "Idempotency-Key": key},
                                         json={"participant_id": person, "points": 3, "reason": "load"})
                assert replay.status_code == 201, replay.text
                assert replay.headers["idempotent-replayed"] == "true"
                assert replay.json()["transaction_id"] == transaction_id
            # Retrying the rest applies each at most once: the total is exact.
            for key in keys_sent:
                if key not in answered:
                    retry = await http.post("/v1/points/grants", headers={**admin, "Idempotency-Key": key},
                                            json={"participant_id": person, "points": 3, "reason": "load"})
                    assert retry.status_code == 201, retry.text
            wallet = (await http.get(f"/v1/participants/{person}/wallet", headers=admin)).json()
            assert wallet["available"] == 3 * 400
    finally:
        server.stop()
        valkey.stop()
