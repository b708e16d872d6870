"""A participant spinning again is one call to Redis: `rw_gated`, the request's gate with
`rw_spin` behind it; and what the spin remembers between calls (the seed pair, the campaign's rules)
never outlives a rotation, a new client seed, spins through another process or a pause."""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from redis.asyncio.connection import AbstractConnection

from games.fairness import verify_spin_proof
from tests.factories import launched_wheel, new_program, spinning_participant

pytestmark = pytest.mark.sql

# The Redis commands sent on behalf of the request being watched. The test client runs the
# app through a blocking portal that carries the caller's context variables, so only the
# request sees this list: the in-process journal projector's commands are not counted.
_watched: contextvars.ContextVar[list[tuple[str, ...]] | None] = contextvars.ContextVar("watched", default=None)


def _commands(packed: Any) -> Iterator[tuple[str, ...]]:
    """Each command of a packed RESP payload, as (name, first argument)."""
    parts = packed if isinstance(packed, list) else [packed]
    blob = b"".join(bytes(p) for p in parts)
    at = 0
    while at < len(blob):
        end = blob.index(b"\r\n", at)
        count = int(blob[at + 1:end])
        at = end + 2
        words = []
        for _ in range(count):
            end = blob.index(b"\r\n", at)
            size = int(blob[at + 1:end])
            words.append(blob[end + 2:end + 2 + size])
            at = end + 2 + size + 2
        yield (words[0].decode().upper(), *([words[1].decode(errors="replace")] if len(words) > 1 else []))


@pytest.fixture
def redis_commands(monkeypatch: pytest.MonkeyPatch) -> Any:
    """Answers a function that runs a request and the Redis commands it sent."""
    send = AbstractConnection.send_packed_command

    async def watched_send(self: Any, command: Any, check_health: bool = True) -> None:
        seen = _watched.get()
        if seen is not None:
            seen.extend(_commands(command))
        return await send(self, command, check_health)

    monkeypatch.setattr(AbstractConnection, "send_packed_command", watched_send)

    async def run(request: Any) -> tuple[Any, list[tuple[str, ...]]]:
        seen: list[tuple[str, ...]] = []
        token = _watched.set(seen)
        try:
            return await request, seen
        finally:
            _watched.reset(token)

    return run


async def spin(client: Any, campaign_id: str, me: dict[str, str], key: str) -> Any:
    return await client.post(f"/v1/me/campaigns/{campaign_id}/spins", headers={**me, "Idempotency-Key": key})


async def test_a_participant_spinning_again_sends_one_call_the_gate_carried_into_rw_spin(client, redis_commands) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    campaign_id = await launched_wheel(client, program)
    _, me = await spinning_participant(client, program, 1_000)
    first, _ = await redis_commands(spin(client, campaign_id, me, "first"))  # reads the pair and the rules once
    assert first.status_code == 201, first.text
    for n in range(5):
        answer, sent = await redis_commands(spin(client, campaign_id, me, f"again-{n}"))
        assert answer.status_code == 201, answer.text
        assert answer.json()["proof"]["nonce"] == n + 1
        assert sent == [("FCALL", "rw_gated")]


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
