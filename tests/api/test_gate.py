"""The request gate (api/gate.py, programs/gate.lua): one Redis call before the handler, and
what it checks from memory still stops on the very next request of every worker."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import msgspec
import pytest
from litestar.exceptions import NotAuthorizedException
from litestar.testing import AsyncTestClient

from tests.factories import OPERATOR, bearer, grant, new_participant, new_program, random_ref, set_program_status, \
    tokens_for
from tests.fulfillment.helpers import shop


@asynccontextmanager
async def another_worker(settings: Any, **changes: Any) -> AsyncIterator[AsyncTestClient]:
    """A second app on the same stores: its own key and token caches, like another worker."""
    from api.app import create_app

    tuned = msgspec.structs.replace(settings, journal_consumer=False, background_tasks=False, **changes)
    async with AsyncTestClient(app=create_app(tuned), base_url="http://rw.test") as client:
        yield client


# --- round trips ---------------------------------------------------------------------------


HANDSHAKE = ("HELLO", "CLIENT", "AUTH", "SELECT")


async def commands_of(url: str, call: Callable[[], Awaitable[Any]]) -> list[str]:
    """Every command clients (not Lua) sent to the Valkey at `url` while `call` ran."""
    import redis.asyncio as aioredis

    watcher = aioredis.Redis.from_url(url)
    marker = aioredis.Redis.from_url(url)
    try:
        async with watcher.monitor() as monitor:
            await call()
            await marker.echo("gate-test-end")
            seen = []
            while True:
                info = await asyncio.wait_for(monitor.next_command(), timeout=10)
                if info["command"] == "ECHO gate-test-end":
                    return seen
                # Not a request's: the handshake of a connection the pool opens.
                if info["client_type"] != "lua" and info["command"].split(" ")[0] not in HANDSHAKE:
                    seen.append(info["command"])
    finally:
        await watcher.aclose()
        await marker.aclose()


@pytest.fixture
async def private_valkey(tmp_path: Path) -> AsyncIterator[str]:
    """A Valkey of this test alone: nothing else talks to it while commands are counted."""
    from api.embedded import EmbeddedValkey

    server = EmbeddedValkey(tmp_path)
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


async def test_an_authenticated_request_makes_one_gate_call_before_its_handler(settings, migrated, private_valkey):
    async with another_worker(settings, redis_url=private_valkey, redis_cluster=False,
                              rate_limit_per_principal=1000, rate_limit_per_ip=1000) as app:
        program = await new_program(app)
        person = await new_participant(app, program)
        assert (await grant(app, program, person["id"], 50)).status_code == 201
        access = bearer((await tokens_for(app, program, person["id"]))["access_token"])
        assert (await app.get("/v1/me/wallet", headers=access)).status_code == 200  # first use of the token

        async def read_wallet() -> None:
            assert (await app.get("/v1/me/wallet", headers=access)).status_code == 200

        async def deduct() -> None:
            body = {"participant_id": person["id"], "points": 1, "reason": "gate"}
            response = await app.post("/v1/points/deductions", json=body,
                                      headers={**program.headers, "Idempotency-Key": random_ref()})
            assert response.status_code == 201, response.text

        wallet = await commands_of(private_valkey, read_wallet)
        deduction = await commands_of(private_valkey, deduct)
        public = await commands_of(private_valkey, lambda: app.get(f"/v1/public/sweepstakes/{random_ref()}/proof"))

    print("commands of GET /v1/me/wallet:", wallet, "\ncommands of a deduction:", deduction)
    for commands in (wallet, deduction):
        gates = [c for c in commands if c.startswith("FCALL rw_gate ")]
        assert len(gates) == 1 and commands[0] == gates[0], commands
        # The principal's counter, its liveness and its program's flag: one hash tag, one call.
        assert f"{{p:{program.id}}}:rl:" in gates[0] and f"rw:{{p:{program.id}}}:cfg" in gates[0]
        # Nothing of what the gate replaces: no script counter, key cache, wallet state, flag read.
        assert not [c for c in commands if c.split(" ")[0] in ("EVALSHA", "EVAL", "HGETALL", "HGET", "INCR")], commands
        assert not [c for c in commands if c.startswith("HMGET") and " gen" in c], commands
    assert f"rw:{{p:{program.id}}}:w:{person['id']}" in wallet[0]
    assert f"rw:{{p:{program.id}}}:key:" in deduction[0]
    # A public request counts its address alone: one call with no credentials to check.
    assert [c.split(" ")[:3] for c in public] == [["FCALL", "rw_gate", "1"]], public
    assert "rw:rl:{testclient}:ip:" in public[0]


async def test_the_operator_without_a_budget_and_a_public_request_without_limits_cost_no_call(
        settings, migrated, private_valkey):
    async with another_worker(settings, redis_url=private_valkey, redis_cluster=False, rate_limit_per_principal=0,
                              rate_limit_per_ip=0, rate_limit_refresh=0) as app:
        program = await new_program(app)

        async def operator_read() -> None:
            assert (await app.get(f"/v1/programs/{program.id}", headers=OPERATOR)).status_code == 200

        assert [c for c in await commands_of(private_valkey, operator_read) if "rw_gate" in c] == []
        public = await commands_of(private_valkey, lambda: app.get(f"/v1/public/sweepstakes/{random_ref()}/proof"))
        assert [c for c in public if "rw_gate" in c] == []


# --- what memory answers still stops on the next request of every worker ----------------------


async def test_a_revoked_admin_key_fails_on_the_next_request_of_a_worker_that_has_it_cached(settings, client):
    program = await new_program(client)
    second = (await client.post("/v1/admin-keys", json={"name": "ops"}, headers=program.headers)).json()
    async with another_worker(settings) as worker:
        # Both workers know the key now (its record is in each one's memory).
        for app in (client, worker):
            assert (await app.get("/v1/participants", headers=bearer(second["api_key"]))).status_code == 200
        assert (await client.delete(f"/v1/admin-keys/{second['id']}", headers=program.headers)).status_code == 204
        refused = await worker.get("/v1/participants", headers=bearer(second["api_key"]))
        assert refused.status_code == 401 and refused.json()["code"] == "unauthenticated"
        assert (await worker.get("/v1/participants", headers=program.headers)).status_code == 200


async def test_a_disabled_partner_fails_on_the_next_request_of_every_worker_and_comes_back_when_enabled(
        settings, client):
    program, partner, _ = await shop(client)
    key = bearer(partner["api_key"])
    async with another_worker(settings) as worker:
        for app in (client, worker):
            assert (await app.get("/v1/fulfillment/deliveries", headers=key)).status_code == 200
        path = f"/v1/fulfillment/partners/{partner['id']}"
        assert (await client.patch(path, json={"status": "disabled"}, headers=program.headers)).status_code == 200
        refused = await worker.get("/v1/fulfillment/deliveries", headers=key)
        assert refused.status_code == 401 and "disabled" in refused.json()["detail"]
        # A worker that meets the key for the first time while its partner is disabled refuses too.
        async with another_worker(settings) as fresh:
            assert (await fresh.get("/v1/fulfillment/deliveries", headers=key)).status_code == 401
            assert (await client.patch(path, json={"status": "active"}, headers=program.headers)).status_code == 200
            for app in (worker, fresh):
                assert (await app.get("/v1/fulfillment/deliveries", headers=key)).status_code == 200


async def test_a_cached_token_stops_on_deactivation_and_stays_dead_after_reactivation(settings, client):
    program = await new_program(client)
    person = await new_participant(client, program)
    access = bearer((await tokens_for(client, program, person["id"]))["access_token"])
    async with another_worker(settings) as worker:
        assert (await worker.get("/v1/me/wallet", headers=access)).status_code == 200  # verified and kept
        path = f"/v1/participants/{person['id']}"
        assert (await client.post(f"{path}/deactivate", headers=program.headers)).status_code == 200
        assert (await worker.get("/v1/me/wallet", headers=access)).status_code == 401
        assert (await client.patch(path, json={"status": "active"}, headers=program.headers)).status_code == 200
        # The token's generation moved: the claims this worker kept no longer pass.
        stale = await worker.get("/v1/me/wallet", headers=access)
        assert stale.status_code == 401 and "revoked" in stale.json()["detail"]
        fresh = bearer((await tokens_for(client, program, person["id"]))["access_token"])
        assert (await worker.get("/v1/me/wallet", headers=fresh)).status_code == 200


async def test_a_suspension_stops_the_guarded_routes_of_another_worker_at_once(settings, client):
    program = await new_program(client)
    person = await new_participant(client, program)
    async with another_worker(settings) as worker:
        assert (await tokens_for(worker, program, person["id"]))["access_token"]
        await set_program_status(client, program, "suspended")
        refused = await worker.post(f"/v1/participants/{person['id']}/tokens", headers=program.headers)
        assert refused.status_code == 409 and refused.json()["code"] == "program_suspended"
        # Reads stay open while suspended.
        assert (await worker.get("/v1/participants", headers=program.headers)).status_code == 200
        await set_program_status(client, program, "active")
        assert (await worker.post(f"/v1/participants/{person['id']}/tokens",
                                  headers=program.headers)).status_code == 201


async def test_a_kept_token_is_refused_once_it_expires(settings, redis, client):
    from api.auth import Authenticator
    from wallet.store import WalletStore

    program = await new_program(client)
    person = await new_participant(client, program)
    authenticator = Authenticator(redis, WalletStore(redis), settings.jwt_secret, None, access_ttl=1)
    token = await authenticator.mint_access_token(program.id, person["id"])
    assert (await authenticator.authenticate(token)).subject_id == person["id"]
    time.sleep(1.1)  # past `exp` (whole seconds): the kept claims must not outlive the token
    with pytest.raises(NotAuthorizedException):
        await authenticator.authenticate(token)
    # A token signed with another secret is not someone else's kept claims.
    forged = Authenticator(redis, WalletStore(redis), "another-secret-" + "x" * 40, None, access_ttl=60)
    with pytest.raises(NotAuthorizedException):
        await authenticator.authenticate(forged.access_token(program.id, person["id"]))


async def test_rebuild_writes_the_marks_again_that_a_worker_keeping_the_key_in_memory_relies_on(
        settings, client, redis):
    from fulfillment.partners import restore_key_marks
    from programs.gate import key_marks

    program, partner, _ = await shop(client)
    second = (await client.post("/v1/admin-keys", json={"name": "ops"}, headers=program.headers)).json()
    async with another_worker(settings) as worker:
        for key in (second["api_key"], partner["api_key"]):
            assert (await worker.get("/v1/fulfillment/partners" if key == second["api_key"]
                                     else "/v1/fulfillment/deliveries", headers=bearer(key))).status_code == 200
        assert (await client.delete(f"/v1/admin-keys/{second['id']}", headers=program.headers)).status_code == 204
        assert (await client.patch(f"/v1/fulfillment/partners/{partner['id']}", json={"status": "disabled"},
                                   headers=program.headers)).status_code == 200
        # Redis loses the marks (a restore from an old backup, a flush): this worker would let
        # both keys in again from what it keeps in memory, until the rebuild writes them back.
        partner_key_id = partner["api_key"].split(".")[1]
        await redis.delete(key_marks(program.id, second["id"]), key_marks(program.id, partner_key_id))
        assert (await worker.get("/v1/fulfillment/partners", headers=bearer(second["api_key"]))).status_code == 200
        await restore_key_marks(redis, program.id)
        assert (await worker.get("/v1/fulfillment/partners", headers=bearer(second["api_key"]))).status_code == 401
        assert (await worker.get("/v1/fulfillment/deliveries", headers=bearer(partner["api_key"]))).status_code == 401
