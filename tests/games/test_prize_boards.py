"""Points prizes on the leaderboards that count them (`count_prizes`), in the prize's own
Redis call: on one Valkey and, in `make test`'s cluster pass, on a Valkey cluster (every key
of the call carries the program's hash tag)."""

from __future__ import annotations

import pytest

from tests.factories import (bearer, grant, leaderboard, new_participant, new_program, points_wheel, random_ref, spin,
                             standings_of, tokens_for, won_sweepstakes)

pytestmark = pytest.mark.sql


async def test_spin_and_sweepstakes_points_prizes_score_participant_and_team_boards_that_count_them(  # type: ignore[no-untyped-def]
        client) -> None:
    program = await new_program(client)
    east = (await client.post("/v1/teams", json={"name": random_ref("East")}, headers=program.headers)).json()
    rep = await new_participant(client, program, team_id=east["id"])
    token = bearer((await tokens_for(client, program, rep["id"]))["access_token"])
    people = await leaderboard(client, program, count_prizes=True)
    teams = await leaderboard(client, program, entity="teams", period="month", count_prizes=True)
    plain = await leaderboard(client, program, entity="teams", period="week")
    assert (await grant(client, program, rep["id"], 30)).status_code == 201  # costs of both
    wheel = await points_wheel(client, program, 40, cost_points=20)
    answer = await spin(client, wheel, token)
    assert answer.status_code == 201, answer.text
    await won_sweepstakes(client, program, token, 500)  # one 10-point ticket
    assert await standings_of(client, program, people["id"]) == [(rep["id"], 570)]
    assert await standings_of(client, program, teams["id"]) == [(east["id"], 570)]
    assert await standings_of(client, program, plain["id"]) == [(east["id"], 30)]
