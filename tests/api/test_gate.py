"""The request gate (api/gate.py, programs/gate.lua): one Redis call before the handler, and
what it checks from memory still stops on the very next request of every worker."""

from __future__ import annotations

import time
from typing import Any

import pytest
from litestar.exceptions import NotAuthorizedException

from tests.factories import OPERATOR, another_worker, away_from_a_window_edge, bearer, commands_of, grant, launched_wheel, new_participant, \
    new_program, random_ref, redeem, set_program_status, shop, shopper, spinning_participant, tokens_for


# --- round trips ---------------------------------------------------------------------------


async def test_a_wallet_read_and_a_deduction_are_one_round_trip_their_gate_riding_in_the_operation(
        settings, migrated, private_valkey):
    async with another_worker(settings, redis_url=private_valkey, redis_cluster=False,
                              rate_limit_per_principal=1000, rate_limit_per_ip=1000) as app:
        program = await new_program(app)
        person = await new_participant(app, program)
        assert (await grant(app, program, person["id"], 50)).status_code == 201
        access = bearer((await tokens_for(app, program, person["id"]))["access_token"])
        assert (await app.get("/v1/me/wallet", headers=access)).status_code == 200  # first use of the token

        async def read_wallet() -> None:
            answer = await app.get("/v1/me/wallet", headers=access)
            assert answer.status_code == 200 and answer.headers["ratelimit-limit"] == "1000"

        async def deduct() -> None:
            body = {"participant_id": person["id"], "points": 1, "reason": "gate"}
            response = await app.post("/v1/points/deductions", json=body,
                                      headers={**program.headers, "Idempotency-Key": random_ref()})
            assert response.status_code == 201, response.text
            assert response.headers["ratelimit-remaining"].isdigit()

        async def read_profile() -> None:
            assert (await app.get("/v1/me", headers=access)).status_code == 200

        wallet = await commands_of(private_valkey, read_wallet)
        deduction = await commands_of(private_valkey, deduct)
        profile = await commands_of(private_valkey, read_profile)
        public = await commands_of(private_valkey, lambda: app.get(f"/v1/public/sweepstakes/{random_ref()}/proof"))

    print("commands of GET /v1/me/wallet:", wallet, "\ncommands of a deduction:", deduction)
    for commands, operation, liveness in ((wallet, "rw_balance", f"rw:{{p:{program.id}}}:w:{person['id']}"),
                                          (deduction, "rw_deduct", f"rw:{{p:{program.id}}}:key:")):
        # One call: the principal's counter and its liveness (one hash tag), then the operation.
        assert len(commands) == 1 and commands[0].startswith("FCALL rw_gated "), commands
        assert f"{{p:{program.id}}}:rl:" in commands[0] and liveness in commands[0]
        assert f" {operation} " in commands[0] or commands[0].endswith(f" {operation}")
    # A route without a gateable operation passes the gate in one call before its handler.
    gates = [c for c in profile if c.startswith("FCALL rw_gate ")]
    assert len(gates) == 1 and profile[0] == gates[0], profile
    assert f"rw:{{p:{program.id}}}:cfg" in gates[0]
    assert not [c for c in profile if c.split(" ")[0] in ("EVALSHA", "EVAL", "HGETALL", "HGET", "INCR")], profile
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


# --- a gate carried into the operation stops the write itself --------------------------------


async def balance_of(app: Any, program: Any, participant_id: str) -> int:
    answer = await app.get(f"/v1/participants/{participant_id}/wallet", headers=program.headers)
    assert answer.status_code == 200, answer.text
    return int(answer.json()["available"])


async def test_a_revoked_key_deducts_nothing_and_a_revoked_token_spins_nothing_on_a_worker_that_kept_them(
        settings, client):
    program = await new_program(client)
    second = (await client.post("/v1/admin-keys", json={"name": "ops"}, headers=program.headers)).json()
    campaign_id = await launched_wheel(client, program, cost_points=10)
    person, me = await spinning_participant(client, program, 100)
    body = {"participant_id": person, "points": 5, "reason": "carried"}
    async with another_worker(settings) as worker:
        deducted = await worker.post("/v1/points/deductions", json=body,
                                     headers={**bearer(second["api_key"]), "Idempotency-Key": "first"})
        spun = await worker.post(f"/v1/me/campaigns/{campaign_id}/spins", headers={**me, "Idempotency-Key": "one"})
        assert deducted.status_code == 201 and spun.status_code == 201, (deducted.text, spun.text)
        assert await balance_of(client, program, person) == 85
        # Revoked and deactivated through the other worker; this one keeps both in memory.
        assert (await client.delete(f"/v1/admin-keys/{second['id']}", headers=program.headers)).status_code == 204
        deducted = await worker.post("/v1/points/deductions", json=body,
                                     headers={**bearer(second["api_key"]), "Idempotency-Key": "second"})
        assert deducted.status_code == 401 and deducted.json()["code"] == "unauthenticated"
        deactivated = await client.post(f"/v1/participants/{person}/deactivate", headers=program.headers)
        assert deactivated.status_code == 200, deactivated.text
        spun = await worker.post(f"/v1/me/campaigns/{campaign_id}/spins", headers={**me, "Idempotency-Key": "two"})
        assert spun.status_code == 401, spun.text
        # A refused request that would also have failed on its own hears the refusal.
        unknown = await worker.post("/v1/points/deductions", json={**body, "participant_id": "ptc_nobody"},
                                    headers={**bearer(second["api_key"]), "Idempotency-Key": "third"})
        assert unknown.status_code == 401, unknown.text
    assert await balance_of(client, program, person) == 85  # neither the deduction nor the spin


async def test_a_redemption_carries_its_gate_a_deactivated_participant_or_a_spent_budget_holds_nothing(
        settings, migrated, private_valkey):
    """A redemption's gate rides in its order's own call (rw_pool_redeem, rw_partner_hold): a
    participant deactivated through another worker, or past their budget, holds no points on a
    worker that kept their token."""
    async with another_worker(settings, redis_url=private_valkey, redis_cluster=False,
                              rate_limit_per_principal=1000, rate_limit_per_ip=1000) as app:
        program, _, item = await shop(app)
        person, me = await shopper(app, program, 100_000)
    await away_from_a_window_edge(3600, margin=60)
    async with another_worker(settings, redis_url=private_valkey, redis_cluster=False,
                              rate_limit_per_principal=3, rate_limit_per_ip=1000,
                              rate_limit_window_seconds=3600) as app:
        placed = [await redeem(app, me, item["id"]) for _ in range(4)]  # the participant's budget is 3
        assert [p.status_code for p in placed] == [201, 201, 201, 429], [p.text for p in placed]
        assert placed[3].json()["code"] == "rate_limited"
        points = placed[0].json()["points"]
    async with another_worker(settings, redis_url=private_valkey, redis_cluster=False,
                              rate_limit_per_principal=1000, rate_limit_per_ip=1000) as worker, \
            another_worker(settings, redis_url=private_valkey, redis_cluster=False,
                           rate_limit_per_principal=1000, rate_limit_per_ip=1000) as other:
        answer = await worker.get(f"/v1/participants/{person['id']}/wallet", headers=program.headers)
        assert (answer.json()["available"], answer.json()["held"]) == (100_000 - 3 * points, 3 * points)
        assert (await redeem(worker, me, item["id"])).status_code == 201  # this worker keeps the token now
        deactivated = await other.post(f"/v1/participants/{person['id']}/deactivate", headers=program.headers)
        assert deactivated.status_code == 200, deactivated.text
        refused = await redeem(worker, me, item["id"])
        assert refused.status_code == 401 and refused.json()["code"] == "unauthenticated", refused.text
        answer = await other.get(f"/v1/participants/{person['id']}/wallet", headers=program.headers)
        assert (answer.json()["available"], answer.json()["held"]) == (100_000 - 4 * points, 4 * points)


async def test_a_spent_budget_stops_the_deduction_that_spends_it_and_a_failing_request_still_counts(
        settings, migrated, private_valkey):
    # An hour's window, entered well before its edge: the six counted requests share it.
    await away_from_a_window_edge(3600, margin=60)
    async with another_worker(settings, redis_url=private_valkey, redis_cluster=False,
                              rate_limit_per_principal=4, rate_limit_per_ip=1000,
                              rate_limit_window_seconds=3600) as app:
        program = await new_program(app)  # the operator's request: not the key's budget
        person = await new_participant(app, program)  # 1 of the key's 4
        assert (await grant(app, program, person["id"], 50)).status_code == 201  # 2
        body = {"participant_id": person["id"], "points": 1, "reason": "budget"}
        missing = await app.post("/v1/points/deductions", json={**body, "participant_id": "ptc_nobody"},
                                 headers={**program.headers, "Idempotency-Key": random_ref()})
        assert missing.status_code == 404, missing.text  # 3: a failure counts too
        answers = [await app.post("/v1/points/deductions", json=body,
                                  headers={**program.headers, "Idempotency-Key": random_ref()}) for _ in range(3)]
        assert [a.status_code for a in answers] == [201, 429, 429], [a.text for a in answers]
        assert answers[1].json()["code"] == "rate_limited" and int(answers[1].headers["retry-after"]) >= 1
        assert int(answers[0].headers["ratelimit-remaining"]) == 0
    # Only the one deduction within the budget moved points.
    async with another_worker(settings, redis_url=private_valkey, redis_cluster=False,
                              rate_limit_per_principal=1000, rate_limit_per_ip=1000) as app:
        assert await balance_of(app, program, person["id"]) == 49


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
    # `exp` is whole seconds, so a 1-second token minted late in a second may already have
    # expired when it is first used: 2 seconds leave a second of margin.
    authenticator = Authenticator(redis, WalletStore(redis), settings.jwt_secret, None, access_ttl=2)
    token = await authenticator.mint_access_token(program.id, person["id"])
    assert (await authenticator.authenticate(token)).subject_id == person["id"]
    time.sleep(2.1)  # past `exp`: the kept claims must not outlive the token
    with pytest.raises(NotAuthorizedException):
        await authenticator.authenticate(token)
    # A token signed with another secret is not someone else's kept claims.
    forged = Authenticator(redis, WalletStore(redis), "another-secret-" + "x" * 40, None, access_ttl=60)
    with pytest.raises(NotAuthorizedException):
        await authenticator.authenticate(forged.access_token(program.id, person["id"]))


async def test_rebuild_writes_the_marks_again_that_a_worker_keeping_the_key_in_memory_relies_on(
        settings, client, redis):
    from fulfillment.partners import restore_key_marks
    from programs.keys import key_marks

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
