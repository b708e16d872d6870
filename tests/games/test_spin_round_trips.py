"""A participant spinning again is one call to Redis: `rw_gated`, the request's gate with
`rw_spin` behind it; and what the spin remembers between calls (the seed pair, the campaign's rules)
never outlives a rotation, a new client seed, spins through another process or a pause."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from games.fairness import verify_spin_proof
from tests.factories import another_worker, commands_of, launched_wheel, new_program, spinning_participant

pytestmark = pytest.mark.sql

async def spin(client: Any, campaign_id: str, me: dict[str, str], key: str) -> Any:
    return await client.post(f"/v1/me/campaigns/{campaign_id}/spins", headers={**me, "Idempotency-Key": key})


async def test_a_participant_spinning_again_sends_one_call_the_gate_carried_into_rw_spin(
        settings, migrated, private_valkey) -> None:  # type: ignore[no-untyped-def]
    # Another worker on a Valkey of this test alone, with no projector: MONITOR sees only the
    # requests' commands, as they went on the wire.
    async with another_worker(settings, redis_url=private_valkey, redis_cluster=False) as client:
        program = await new_program(client)
        campaign_id = await launched_wheel(client, program)
        _, me = await spinning_participant(client, program, 1_000)
        first = await spin(client, campaign_id, me, "first")  # reads the pair and the rules once
        assert first.status_code == 201, first.text
        for n in range(5):
            answers = []

            async def spin_again() -> None:
                answers.append(await spin(client, campaign_id, me, f"again-{n}"))

            sent = await commands_of(private_valkey, spin_again)
            assert answers[0].status_code == 201, answers[0].text
            assert answers[0].json()["proof"]["nonce"] == n + 1
            assert [c.split(" ")[:2] for c in sent] == [["FCALL", "rw_gated"]], sent
            assert " rw_spin " in sent[0]


async def test_a_rotation_a_new_client_seed_other_workers_and_a_pause_hold_on_the_very_next_spin(
        client, live_server) -> None:  # type: ignore[no-untyped-def]
    """This process remembers the pair; another worker (the live server) rotates it, changes
    the client seed and spins meanwhile. Each next spin here uses the pair and nonce in
    Redis, verifies, and is charged once."""
    program = await new_program(client)
    campaign_id = await launched_wheel(client, program, cost_points=10)
    person, me = await spinning_participant(client, program, 1_000)
    answers = [await spin(client, campaign_id, me, "here-1")]
    async with httpx.AsyncClient(base_url=live_server.url, timeout=60) as other:
        rotated = (await other.post("/v1/me/fairness/rotate", headers=me)).json()
        assert rotated["revealed"]["nonce"] == 1
        answers.append(await spin(client, campaign_id, me, "here-2"))
        assert answers[-1].json()["proof"]["server_seed_hash"] == rotated["current"]["server_seed_hash"]

        changed = await other.put("/v1/me/fairness/client-seed", json={"client_seed": "my lucky seed"}, headers=me)
        assert changed.status_code == 200, changed.text
        answers.append(await spin(client, campaign_id, me, "here-3"))
        assert answers[-1].json()["proof"]["client_seed"] == "my lucky seed"
        assert answers[-1].json()["proof"]["nonce"] == 0

        elsewhere = [await spin(other, campaign_id, me, f"there-{n}") for n in range(3)]
        answers += elsewhere
        answers.append(await spin(client, campaign_id, me, "here-4"))
        assert [a.json()["proof"]["nonce"] for a in answers[-4:]] == [1, 2, 3, 4]

        paused = await other.post(f"/v1/campaigns/{campaign_id}/pause", headers=program.headers)
        assert paused.status_code == 200, paused.text
        refused = await spin(client, campaign_id, me, "here-5")
        assert (refused.status_code, refused.json()["code"]) == (409, "campaign_not_active")
        assert (await other.post(f"/v1/campaigns/{campaign_id}/launch", headers=program.headers)).status_code == 200
        answers.append(await spin(client, campaign_id, me, "here-6"))

    assert all(a.status_code == 201 for a in answers), [a.text for a in answers if a.status_code != 201]
    # Charged once per spin answered: 10 points each unless paid with a won free spin.
    paid = sum(10 for a in answers if a.json()["paid_with"] == "points")
    wallet = (await client.get("/v1/me/wallet", headers=me)).json()
    assert wallet["available"] == 1_000 - paid
    # Every spin verifies once its pair is revealed.
    await client.post("/v1/me/fairness/rotate", headers=me)
    history = (await client.get("/v1/me/spins?limit=100", headers=me)).json()["items"]
    assert sorted(h["id"] for h in history) == sorted(a.json()["id"] for a in answers)
    assert all(verify_spin_proof(h["proof"]).ok for h in history)
    assert person


async def test_a_launch_commits_a_seed_pair_for_everyone_so_the_first_spins_write_no_sql(client, redis) -> None:  # type: ignore[no-untyped-def]
    from games.tables import SeedPair
    from games import keys as game_keys

    program = await new_program(client)
    people = [await spinning_participant(client, program, 100) for _ in range(3)]
    for person_id, _ in people:  # nobody has spun or asked for a pair yet
        assert not await redis.exists(game_keys.seed_pair(program.id, person_id))
    campaign_id = await launched_wheel(client, program)
    rows = await SeedPair.select(SeedPair.participant_id, SeedPair.status, SeedPair.server_seed_hash).where(
        SeedPair.program_id == program.id).run()
    assert sorted(r["participant_id"] for r in rows) == sorted(p for p, _ in people)
    assert {r["status"] for r in rows} == {"active"}
    for person_id, me in people:
        committed = next(r["server_seed_hash"] for r in rows if r["participant_id"] == person_id)
        answer = await spin(client, campaign_id, me, "first")
        assert answer.status_code == 201, answer.text
        # The spin used the pair committed at launch: no second pair was made on the way.
        assert answer.json()["proof"]["server_seed_hash"] == committed
    assert len(await SeedPair.select(SeedPair.id).where(SeedPair.program_id == program.id).run()) == 3
    # Launching again (a resume) commits nothing new.
    await client.post(f"/v1/campaigns/{campaign_id}/pause", headers=program.headers)
    assert (await client.post(f"/v1/campaigns/{campaign_id}/launch", headers=program.headers)).status_code == 200
    assert len(await SeedPair.select(SeedPair.id).where(SeedPair.program_id == program.id).run()) == 3
