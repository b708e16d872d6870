"""Leaderboards as salespeople see them on their phones."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from programs import standings
from programs.standings import LeaderboardView, period_bounds
from tests.factories import bearer, new_participant, new_program, random_ref, tokens_for

pytestmark = pytest.mark.sql

T0 = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)


async def board(client, program, **spec):  # type: ignore[no-untyped-def]
    response = await client.post("/v1/leaderboards", json={"name": random_ref("lb"), **spec}, headers=program.headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_weeks_start_on_monday_in_the_programs_time_zone() -> None:
    weekly = LeaderboardView(id="lb", name="w", entity="participants", metric="points", period="week", status="active")
    start = datetime(2020, 1, 1, tzinfo=timezone.utc)
    sunday_night = datetime(2026, 11, 30, 5, 59, tzinfo=timezone.utc)  # 23:59 Sunday in Chicago
    monday = datetime(2026, 11, 30, 6, 0, tzinfo=timezone.utc)  # 00:00 Monday in Chicago
    assert period_bounds(weekly, sunday_night, "America/Chicago", start)[0] == "2026-W48"  # type: ignore[index]
    assert period_bounds(weekly, monday, "America/Chicago", start)[0] == "2026-W49"  # type: ignore[index]
    quarterly = LeaderboardView(id="lb", name="q", entity="participants", metric="points", period="quarter",
                                status="active")
    key, q_start, q_end = period_bounds(quarterly, T0, "UTC", start)  # type: ignore[misc]
    assert (key, q_start.month, q_end.month) == ("2026-Q2", 4, 7)


async def test_points_count_once_per_transaction_even_retried_at_once(client, redis) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    rep = await new_participant(client, program)
    lb = await board(client, program, period="all_time")
    await asyncio.gather(*[standings.record_points(redis, program.id, rep["id"], None, 120, "tx_same", T0)
                           for _ in range(5)])
    await standings.record_points(redis, program.id, rep["id"], None, 30, "tx_other", T0)
    top = (await client.get(f"/v1/leaderboards/{lb['id']}", headers=program.headers)).json()["top"]
    assert [(e["id"], e["score"], e["rank"]) for e in top] == [(rep["id"], 150, 1)]


async def test_ties_rank_by_who_got_there_first(client, redis) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    first, second, leader = [await new_participant(client, program) for _ in range(3)]
    now = datetime.now(timezone.utc)
    lb = await board(client, program, period="custom", starts_at=(now - timedelta(days=1)).isoformat(),
                     ends_at=(now + timedelta(days=1)).isoformat())
    # `second` is recorded first, but `first` reached 70 points eight minutes earlier.
    await standings.record_points(redis, program.id, second["id"], None, 70, "t1", now - timedelta(minutes=2))
    await standings.record_points(redis, program.id, first["id"], None, 70, "t2", now - timedelta(minutes=10))
    await standings.record_points(redis, program.id, leader["id"], None, 71, "t3", now)
    top = (await client.get(f"/v1/leaderboards/{lb['id']}", headers=program.headers)).json()["top"]
    assert [(e["id"], e["score"], e["rank"]) for e in top] == [
        (leader["id"], 71, 1), (first["id"], 70, 2), (second["id"], 70, 3)]


async def test_top_and_around_me_with_neighbours_and_anonymous_opt_out(client, redis) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    people = [await new_participant(client, program, display_name=f"Rep {i}") for i in range(7)]
    lb = await board(client, program, period="month")
    for i, person in enumerate(people):
        await standings.record_points(redis, program.id, person["id"], None, 100 * (i + 1), f"t{i}",
                                      datetime.now(timezone.utc))
    me = people[3]  # 400 points: rank 4 of 7
    token = bearer((await tokens_for(client, program, me["id"]))["access_token"])
    shy = bearer((await tokens_for(client, program, people[6]["id"]))["access_token"])
    assert (await client.patch("/v1/me/preferences", json={"show_name": False}, headers=shy)).status_code == 200
    view = (await client.get(f"/v1/leaderboards/{lb['id']}", params={"limit": 3, "around": "me"},
                             headers=token)).json()
    assert [e["score"] for e in view["top"]] == [700, 600, 500]
    assert view["top"][0]["display_name"] == "Anonymous salesperson"
    assert (view["me"]["rank"], view["me"]["score"], view["me"]["display_name"]) == (4, 400, "Rep 3")
    assert [e["rank"] for e in view["neighbours"]] == [2, 3, 5, 6]
    own = (await client.get(f"/v1/leaderboards/{lb['id']}", params={"limit": 1}, headers=shy)).json()
    assert own["top"][0]["display_name"] == "Rep 6"  # the shy participant still sees their own name
    bad = await client.get(f"/v1/leaderboards/{lb['id']}", params={"around": people[0]["id"]}, headers=token)
    assert bad.status_code == 422
    nobody = await new_participant(client, program)
    unranked = bearer((await tokens_for(client, program, nobody["id"]))["access_token"])
    mine = (await client.get(f"/v1/leaderboards/{lb['id']}", params={"around": "me"}, headers=unranked)).json()
    assert (mine["me"]["rank"], mine["me"]["score"]) == (None, 0)


async def test_team_boards_sum_members_and_activity_scores_weigh_behaviours(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    east = (await client.post("/v1/teams", json={"name": "East"}, headers=program.headers)).json()
    west = (await client.post("/v1/teams", json={"name": "West"}, headers=program.headers)).json()
    a = await new_participant(client, program, team_id=east["id"], external_id="a")
    b = await new_participant(client, program, team_id=east["id"], external_id="b")
    c = await new_participant(client, program, team_id=west["id"], external_id="c")
    teams = await board(client, program, entity="teams", period="all_time")
    score = await board(client, program, metric="activity_score", period="all_time",
                        weights={"training_completed": 5, "lead_followed_up": 2})
    await client.post("/v1/earning-rules", headers=program.headers, json={
        "name": "Demo", "activity_type": "demo_placed", "award": {"type": "fixed", "points": 40}})
    now = datetime.now(timezone.utc).isoformat()
    events = [("a", "demo_placed"), ("b", "demo_placed"), ("c", "demo_placed"), ("c", "training_completed"),
              ("c", "lead_followed_up"), ("a", "lead_followed_up")]
    batch = [{"external_id": random_ref(), "type": t, "participant_external_id": who, "occurred_at": now,
              "attributes": {"course": "x", "lead_id": "L"}} for who, t in events]
    assert (await client.post("/v1/activities", json={"activities": batch}, headers=program.headers)).status_code == 200
    by_team = (await client.get(f"/v1/leaderboards/{teams['id']}", headers=program.headers)).json()["top"]
    assert [(e["display_name"], e["score"]) for e in by_team] == [("East", 80), ("West", 40)]
    by_score = (await client.get(f"/v1/leaderboards/{score['id']}", headers=program.headers)).json()["top"]
    assert [(e["id"], e["score"]) for e in by_score] == [(c["id"], 7), (a["id"], 2)]
    assert b["id"] not in {e["id"] for e in by_score}


async def test_a_custom_board_counts_only_its_dates_and_grants_count_too(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    rep = await new_participant(client, program)
    now = datetime.now(timezone.utc)
    active = await board(client, program, period="custom", starts_at=now.replace(year=now.year - 1).isoformat(),
                         ends_at=now.replace(year=now.year + 1).isoformat())
    past = await board(client, program, period="custom", starts_at="2020-01-01T00:00:00Z",
                       ends_at="2020-02-01T00:00:00Z")
    await client.post("/v1/points/grants", json={"participant_id": rep["id"], "points": 75, "reason": "x"},
                      headers={**program.headers, "Idempotency-Key": random_ref()})
    assert (await client.get(f"/v1/leaderboards/{active['id']}", headers=program.headers)).json()["top"][0]["score"] == 75
    assert (await client.get(f"/v1/leaderboards/{past['id']}", headers=program.headers)).json()["top"] == []
    bad = await client.post("/v1/leaderboards", json={"name": "x", "period": "custom"}, headers=program.headers)
    assert bad.status_code == 422


async def test_another_programs_leaderboard_is_not_found(client) -> None:  # type: ignore[no-untyped-def]
    program, other = await new_program(client), await new_program(client)
    lb = await board(client, program)
    assert (await client.get(f"/v1/leaderboards/{lb['id']}", headers=other.headers)).status_code == 404
    assert (await client.post(f"/v1/leaderboards/{lb['id']}/retire", headers=other.headers)).status_code == 404
    retired = await client.post(f"/v1/leaderboards/{lb['id']}/retire", headers=program.headers)
    assert retired.json()["status"] == "retired"
    assert (await client.get("/v1/leaderboards", headers=program.headers)).json() == []
