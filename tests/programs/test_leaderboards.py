"""Leaderboards as salespeople see them on their phones."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from programs import standings
from programs.standings import MAX_POINTS, UNIT, period_bounds, tie_break
from tests.factories import another_worker, bearer, commands_of, grant, new_participant, new_program, random_ref, set_program_status, tokens_for

pytestmark = pytest.mark.sql

T0 = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)


async def board(client, program, **spec):  # type: ignore[no-untyped-def]
    response = await client.post("/v1/leaderboards", json={"name": random_ref("lb"), **spec}, headers=program.headers)
    assert response.status_code == 201, response.text
    return response.json()


def test_weeks_start_on_monday_in_the_programs_time_zone() -> None:
    sunday_night = datetime(2026, 11, 30, 5, 59, tzinfo=timezone.utc)  # 23:59 Sunday in Chicago
    monday = datetime(2026, 11, 30, 6, 0, tzinfo=timezone.utc)  # 00:00 Monday in Chicago
    assert period_bounds("week", sunday_night, "America/Chicago") == (
        "2026-W48", datetime(2026, 11, 23, 6, 0, tzinfo=timezone.utc), monday)
    assert period_bounds("week", monday, "America/Chicago")[0] == "2026-W49"
    # March 2026 in Chicago starts in CST (UTC-6) and ends in CDT (UTC-5).
    assert period_bounds("month", datetime(2026, 3, 20, tzinfo=timezone.utc), "America/Chicago") == (
        "2026-03", datetime(2026, 3, 1, 6, tzinfo=timezone.utc), datetime(2026, 4, 1, 5, tzinfo=timezone.utc))
    key, q_start, q_end = period_bounds("quarter", T0, "UTC")
    assert (key, q_start.month, q_end.month) == ("2026-Q2", 4, 7)  # type: ignore[union-attr]
    assert period_bounds("quarter", datetime(2026, 12, 31, 23, tzinfo=timezone.utc), "UTC")[0] == "2026-Q4"
    assert period_bounds("all_time", T0, "UTC", starts_at=T0)[::2] == ("all", None)


def test_the_tie_break_counts_minutes_in_a_period_and_hours_for_all_time() -> None:
    start = datetime(2026, 6, 1, tzinfo=timezone.utc)
    month_end = datetime(2026, 7, 1, tzinfo=timezone.utc)
    assert tie_break(start, start, month_end) == UNIT - 1
    assert tie_break(start + timedelta(minutes=90), start, month_end) == UNIT - 1 - 90
    assert tie_break(start + timedelta(minutes=90), start, None) == UNIT - 1 - 1
    assert tie_break(start - timedelta(days=1), start, None) == UNIT - 1  # before the start: the earliest
    assert tie_break(start + timedelta(days=365 * 300), start, None) == 0  # past the range: the last


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
    # The opted-out line names nobody: no id either, for a participant or an admin.
    assert view["top"][0]["id"] is None and people[6]["id"] not in str(view)
    by_admin = (await client.get(f"/v1/leaderboards/{lb['id']}", params={"limit": 3}, headers=program.headers)).json()
    assert by_admin["top"][0]["id"] is None and people[6]["id"] not in str(by_admin)
    assert view["top"][1]["id"] == people[5]["id"]
    assert (view["me"]["rank"], view["me"]["score"], view["me"]["display_name"]) == (4, 400, "Rep 3")
    assert [e["rank"] for e in view["neighbours"]] == [2, 3, 5, 6]
    own = (await client.get(f"/v1/leaderboards/{lb['id']}", params={"limit": 1}, headers=shy)).json()
    assert own["top"][0]["display_name"] == "Rep 6"  # the shy participant still sees their own name
    assert own["top"][0]["id"] == people[6]["id"]
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
    assert (await client.get("/v1/leaderboards", headers=program.headers)).json() == {"items": [], "next_cursor": None}


async def test_an_event_at_sunday_midnight_in_chicago_lands_in_the_week_before_monday(client, redis) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client, timezone="America/Chicago")
    rep = await new_participant(client, program)
    lb = await board(client, program, period="week")
    sunday_night = datetime(2026, 11, 30, 5, 59, tzinfo=timezone.utc)  # 23:59 Sunday in Chicago
    monday = datetime(2026, 11, 30, 6, 0, tzinfo=timezone.utc)  # 00:00 Monday in Chicago
    await standings.record_points(redis, program.id, rep["id"], None, 10, random_ref("tx"), sunday_night)
    await standings.record_points(redis, program.id, rep["id"], None, 25, random_ref("tx"), monday)
    before = await standings.standings(redis, program.id, lb["id"], at=sunday_night)
    after = await standings.standings(redis, program.id, lb["id"], at=monday + timedelta(days=6))
    assert (before.period_key, [e.score for e in before.top]) == ("2026-W48", [10])
    assert (after.period_key, [e.score for e in after.top]) == ("2026-W49", [25])
    assert before.period_ends_at == after.period_starts_at == monday


async def test_a_late_event_that_happened_earlier_does_not_move_an_entry_ahead(client, redis) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    early, late = await new_participant(client, program), await new_participant(client, program)
    lb = await board(client, program, period="all_time")
    now = datetime.now(timezone.utc)
    await standings.record_points(redis, program.id, early["id"], None, 50, "e1", now + timedelta(hours=2))
    await standings.record_points(redis, program.id, late["id"], None, 30, "l1", now + timedelta(hours=4))
    # `late` reaches 50 at +4h with an event recorded last but dated +1h: still after `early`.
    await standings.record_points(redis, program.id, late["id"], None, 20, "l2", now + timedelta(hours=1))
    top = (await standings.standings(redis, program.id, lb["id"])).top
    assert [(e.id, e.rank, e.score) for e in top] == [(early["id"], 1, 50), (late["id"], 2, 50)]


async def test_deductions_lower_a_score_never_below_zero_and_totals_cap_exactly(client, redis) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    rep, rich, newcomer = [await new_participant(client, program) for _ in range(3)]
    lb = await board(client, program, period="all_time")
    await standings.record_points(redis, program.id, rep["id"], None, 100, "g1", T0)
    await standings.record_points(redis, program.id, rep["id"], None, -30, "d1", T0)
    await standings.record_points(redis, program.id, rep["id"], None, -30, "d1", T0)  # the same deduction again
    assert [e.score for e in (await standings.standings(redis, program.id, lb["id"])).top] == [70]
    await standings.record_points(redis, program.id, rep["id"], None, -500, "d2", T0)
    await standings.record_points(redis, program.id, newcomer["id"], None, -5, "d3", T0)  # not on the board
    for i in range(3):
        await standings.record_points(redis, program.id, rich["id"], None, MAX_POINTS * 3, f"big{i}", T0)
    view = await standings.standings(redis, program.id, lb["id"], around=newcomer["id"])
    assert [(e.id, e.score) for e in view.top] == [(rich["id"], MAX_POINTS), (rep["id"], 0)]
    assert view.me is not None and (view.me.rank, view.me.score) == (None, 0)


async def test_activity_weights_count_once_per_activity_for_participants_and_teams(client, redis) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    east = (await client.post("/v1/teams", json={"name": random_ref("East")}, headers=program.headers)).json()
    a = await new_participant(client, program, team_id=east["id"])
    b = await new_participant(client, program, team_id=east["id"])
    weights = {"training_completed": 5, "lead_followed_up": 2}
    people = await board(client, program, metric="activity_score", period="month", weights=weights)
    teams = await board(client, program, entity="teams", metric="activity_score", period="month", weights=weights)
    points_only = await board(client, program, period="month")
    now = datetime.now(timezone.utc)
    await asyncio.gather(*[standings.record_activity(redis, program.id, a["id"], east["id"], "training_completed",
                                                     "act_1", now) for _ in range(4)])
    await standings.record_activity(redis, program.id, a["id"], east["id"], "lead_followed_up", "act_2", now)
    await standings.record_activity(redis, program.id, b["id"], standings.UNKNOWN_TEAM, "lead_followed_up", "act_3",
                                    now)
    await standings.record_activity(redis, program.id, b["id"], east["id"], "demo_placed", "act_4", now)  # no weight
    by_person = (await standings.standings(redis, program.id, people["id"])).top
    assert [(e.id, e.score) for e in by_person] == [(a["id"], 7), (b["id"], 2)]
    by_team = await standings.standings(redis, program.id, teams["id"], around=b["id"])
    assert [(e.display_name, e.score) for e in by_team.top] == [(east["name"], 9)]
    assert by_team.me is not None and (by_team.me.id, by_team.me.rank) == (east["id"], 1)
    assert (await standings.standings(redis, program.id, points_only["id"])).top == []


async def test_a_custom_board_ignores_events_outside_its_dates(client, redis) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    rep = await new_participant(client, program)
    starts, ends = datetime(2026, 3, 1, tzinfo=timezone.utc), datetime(2026, 3, 15, tzinfo=timezone.utc)
    lb = await board(client, program, period="custom", starts_at=starts.isoformat(), ends_at=ends.isoformat())
    for i, at in enumerate([starts - timedelta(seconds=1), starts, ends - timedelta(seconds=1), ends]):
        await standings.record_points(redis, program.id, rep["id"], None, 10 ** i, f"c{i}", at)
    view = await standings.standings(redis, program.id, lb["id"], at=datetime(2027, 1, 1, tzinfo=timezone.utc))
    assert (view.period_key, view.period_starts_at, view.period_ends_at) == ("custom", starts, ends)
    assert [e.score for e in view.top] == [10 + 100]


async def test_around_another_programs_participant_is_not_found_and_me_is_for_participants(client) -> None:  # type: ignore[no-untyped-def]
    program, other = await new_program(client), await new_program(client)
    stranger = await new_participant(client, other, display_name="Secret Name")
    lb = await board(client, program, period="all_time")
    url = f"/v1/leaderboards/{lb['id']}"
    answer = await client.get(url, params={"around": stranger["id"]}, headers=program.headers)
    assert answer.status_code == 404 and "Secret Name" not in answer.text
    assert (await client.get(url, params={"around": "me"}, headers=program.headers)).status_code == 422
    assert (await client.get(url, params={"limit": 201}, headers=program.headers)).status_code == 400


async def test_recording_and_reading_work_on_a_redis_cluster_too(client, wallet_store) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    east = (await client.post("/v1/teams", json={"name": random_ref("East")}, headers=program.headers)).json()
    rep = await new_participant(client, program, team_id=east["id"])
    people, teams = await board(client, program, period="week"), await board(client, program, entity="teams")
    now = datetime.now(timezone.utc)
    await asyncio.gather(*[standings.record_points(wallet_store.client, program.id, rep["id"], standings.UNKNOWN_TEAM,
                                                   40, "tx_1", now) for _ in range(3)])
    for lb in (people, teams):
        view = await standings.standings(wallet_store.client, program.id, lb["id"], around=rep["id"])
        assert [e.score for e in view.top] == [40] and view.me is not None and view.me.rank == 1


async def test_totals_past_2_32_stay_exact_and_equal_totals_rank_who_got_there_first(client, redis) -> None:  # type: ignore[no-untyped-def]
    """Scores used to pack points and tie-break in one double, capping an entry at 2^32 - 1."""
    program = await new_program(client)
    early, late, top = [await new_participant(client, program) for _ in range(3)]
    lb = await board(client, program, period="all_time")
    t0 = datetime.now(timezone.utc) + timedelta(hours=1)  # all-time ticks are hours from the program's start
    big = 2**53 - 1 - 10**12  # one move short of the largest balance
    # Reach `big` in moves of at most 10^12 would take thousands of grants: the board counts
    # any total, so a few events of the largest size an entry may get say the same.
    for i, (who, at) in enumerate([(late, t0 + timedelta(hours=2)), (early, t0 + timedelta(hours=1))]):
        await standings.record_points(redis, program.id, who["id"], None, big, f"e{i}", at)
    await standings.record_points(redis, program.id, top["id"], None, 2**32 + 5, "t1", t0)
    await standings.record_points(redis, program.id, top["id"], None, big, "t2", t0 + timedelta(hours=3))
    await standings.record_points(redis, program.id, top["id"], None, 10**12, "t3", t0 + timedelta(hours=4))
    view = await standings.standings(redis, program.id, lb["id"], around=late["id"])
    assert [(e.id, e.score) for e in view.top] == [(top["id"], 2**53 - 1), (early["id"], big), (late["id"], big)]
    assert view.me is not None and (view.me.rank, view.me.score) == (3, big)
    # A deduction lowers an entry exactly, by one point.
    await standings.record_points(redis, program.id, top["id"], None, -1, "t4", t0 + timedelta(hours=5))
    view = await standings.standings(redis, program.id, lb["id"])
    assert view.top[0].score == 2**53 - 2


async def test_a_board_written_in_the_old_encoding_keeps_its_standings(client, redis) -> None:  # type: ignore[no-untyped-def]
    """Before scores were the points themselves, a score was points * 2^21 + tie-break."""
    program = await new_program(client)
    first, second, third = [await new_participant(client, program) for _ in range(3)]
    lb = await board(client, program, period="all_time")
    old = f"rw:{{p:{program.id}}}:lb:{lb['id']}:all"
    await redis.zadd(old, {first["id"]: 500 * UNIT + 9, second["id"]: 500 * UNIT + 3, third["id"]: 20 * UNIT + 1})
    view = await standings.standings(redis, program.id, lb["id"], around=third["id"])
    assert [(e.id, e.score) for e in view.top] == [(first["id"], 500), (second["id"], 500), (third["id"], 20)]
    assert view.me is not None and view.me.rank == 3
    assert not await redis.exists(old)
    # Recording on a board still in the old encoding upgrades it first, then counts.
    await redis.zadd(old, {third["id"]: 20 * UNIT + 1})
    await standings.record_points(redis, program.id, third["id"], None, 481, "up1",
                                  datetime.now(timezone.utc) + timedelta(days=400))
    view = await standings.standings(redis, program.id, lb["id"])
    assert [(e.id, e.score) for e in view.top] == [(third["id"], 501), (first["id"], 500), (second["id"], 500)]


async def scores(client, program, lb) -> list[tuple[str, int]]:  # type: ignore[no-untyped-def]
    answer = await client.get(f"/v1/leaderboards/{lb['id']}", headers=program.headers)
    assert answer.status_code == 200, answer.text
    return [(e["id"], e["score"]) for e in answer.json()["top"]]


async def test_a_grant_moves_participant_and_team_boards_in_its_own_single_call(  # type: ignore[no-untyped-def]
        settings, migrated, private_valkey) -> None:
    async with another_worker(settings, redis_url=private_valkey, redis_cluster=False) as app:
        program = await new_program(app)
        east = (await app.post("/v1/teams", json={"name": random_ref("East")}, headers=program.headers)).json()
        rep = await new_participant(app, program, team_id=east["id"])
        people, teams = await board(app, program, period="week"), await board(app, program, entity="teams")
        await board(app, program, metric="activity_score", weights={"demo_placed": 3})  # not moved by points

        async def grant_once() -> None:
            assert (await grant(app, program, rep["id"], 30)).status_code == 201

        commands = await commands_of(private_valkey, grant_once)
        assert len(commands) == 1 and commands[0].startswith("FCALL ") and " rw_grant " in commands[0], commands
        assert f":lbs:{people['id']}:" in commands[0] and f":lbs:{teams['id']}:" in commands[0]
        assert (await scores(app, program, people), await scores(app, program, teams)) == (
            [(rep["id"], 30)], [(east["id"], 30)])


async def test_a_replayed_or_refused_grant_scores_nothing(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client, allow_overdraft=False)
    rep = await new_participant(client, program)
    lb = await board(client, program, period="all_time")
    assert (await grant(client, program, rep["id"], 10)).status_code == 409  # no budget: budget_exhausted
    assert await scores(client, program, lb) == []
    funded = await new_program(client)
    rep = await new_participant(client, funded)
    lb = await board(client, funded, period="all_time")
    key = random_ref("grant")
    first, again = [await grant(client, funded, rep["id"], 25, key=key) for _ in range(2)]
    assert (first.status_code, again.status_code, again.headers.get("idempotent-replayed")) == (201, 201, "true")
    assert await scores(client, funded, lb) == [(rep["id"], 25)]
    await set_program_status(client, funded, "suspended")
    assert (await grant(client, funded, rep["id"], 5)).status_code == 409  # program_suspended
    await set_program_status(client, funded, "active")
    assert await scores(client, funded, lb) == [(rep["id"], 25)]


async def test_an_award_trimmed_by_its_cap_moves_the_board_by_what_it_paid(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    rep = await new_participant(client, program, external_id=random_ref("rep"))
    lb = await board(client, program, period="all_time")
    rule = {"name": "Demo", "activity_type": "demo_placed", "award": {"type": "fixed", "points": 60},
            "cap": {"points": 100, "period": "month"}}
    assert (await client.post("/v1/earning-rules", json=rule, headers=program.headers)).status_code == 201
    now = datetime.now(timezone.utc).isoformat()
    batch = [{"external_id": random_ref(), "type": "demo_placed", "participant_external_id": rep["external_id"],
              "occurred_at": now} for _ in range(3)]
    report = (await client.post("/v1/activities", json={"activities": batch}, headers=program.headers)).json()
    assert report["points_awarded"] == 100
    assert await scores(client, program, lb) == [(rep["id"], 100)]
