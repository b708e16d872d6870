"""Points leaderboards rank points earned, every way they are earned: single and batch
grants, earning awards, approved claims, and (on a board created with `count_prizes`) spin
and sweepstakes points prizes; never deductions, spends, redemptions or spin costs.
Everything through HTTP, as an admin console and a phone see it."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from tests.factories import (bearer, catalog_item, grant, launched_wheel, leaderboard, new_participant, new_program,
                             points_wheel, random_ref, spin, standings_of, tokens_for, won_sweepstakes)

pytestmark = pytest.mark.sql


async def participant_token(client, program, person) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return bearer((await tokens_for(client, program, person["id"]))["access_token"])


async def test_a_batch_grant_scores_each_item_that_applied_once(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    east = (await client.post("/v1/teams", json={"name": random_ref("East")}, headers=program.headers)).json()
    ann = await new_participant(client, program, team_id=east["id"])
    bob = await new_participant(client, program)
    people, teams = await leaderboard(client, program), await leaderboard(client, program, entity="teams")

    def item(key: str, who: str, points: int) -> dict[str, object]:
        return {"idempotency_id": key, "participant_id": who, "points": points, "reason": "batch"}

    async def send(*items: dict[str, object]) -> dict[str, object]:
        answer = await client.post("/v1/points/grants/batch", json={"grants": list(items)},
                                   headers={**program.headers, "Idempotency-Key": random_ref("batch")})
        assert answer.status_code == 200, answer.text
        return dict(answer.json())

    first = await send(item("a1", ann["id"], 30), item("b1", bob["id"], 20), item("x1", "nobody", 5))
    assert (first["applied"], first["failed"]) == (2, 1)
    # The same items in a new batch replay (no score), a reused id with another body is
    # refused (no score), a new item scores.
    again = await send(item("a1", ann["id"], 30), item("b1", bob["id"], 99), item("a2", ann["id"], 4))
    assert (again["applied"], again["replayed"], again["failed"]) == (1, 1, 1)
    assert await standings_of(client, program, people["id"]) == [(ann["id"], 34), (bob["id"], 20)]
    assert await standings_of(client, program, teams["id"]) == [(east["id"], 34)]


async def test_an_earning_award_scores(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    rep = await new_participant(client, program, external_id=random_ref("rep"))
    lb = await leaderboard(client, program)
    rule = {"name": "Demo", "activity_type": "demo_placed", "award": {"type": "fixed", "points": 45}}
    assert (await client.post("/v1/earning-rules", json=rule, headers=program.headers)).status_code == 201
    activity = {"external_id": random_ref(), "type": "demo_placed", "participant_external_id": rep["external_id"],
                "occurred_at": datetime.now(timezone.utc).isoformat()}
    sent = await client.post("/v1/activities", json={"activities": [activity]}, headers=program.headers)
    assert sent.status_code == 200 and sent.json()["points_awarded"] == 45, sent.text
    assert await standings_of(client, program, lb["id"]) == [(rep["id"], 45)]


async def test_an_approved_claim_scores_and_a_rejected_one_does_not(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    rule = {"name": "Claimed sale", "activity_type": "sale",
            "award": {"type": "per_unit", "unit": 100, "points_per_unit": 1}}
    assert (await client.post("/v1/earning-rules", json=rule, headers=program.headers)).status_code == 201
    rep = await new_participant(client, program)
    token = await participant_token(client, program, rep)
    lb = await leaderboard(client, program)
    today = datetime.now(timezone.utc).date().isoformat()

    async def claim(invoice: str, amount: int) -> str:
        body = {"invoice_number": invoice, "invoice_date": today, "amount": {"amount": amount, "currency": "USD"},
                "product": "ThermoPro"}
        filed = await client.post("/v1/me/claims", json=body, headers={**token, "Idempotency-Key": random_ref()})
        assert filed.status_code == 201, filed.text
        return str(filed.json()["id"])

    approved, rejected = await claim(random_ref("INV"), 45_000), await claim(random_ref("INV"), 90_000)
    assert (await client.post(f"/v1/claims/{approved}/approve", headers=program.headers)).status_code == 200
    no = await client.post(f"/v1/claims/{rejected}/reject", json={"reason": "no invoice"}, headers=program.headers)
    assert no.status_code == 200
    assert await standings_of(client, program, lb["id"]) == [(rep["id"], 450)]


async def test_a_spin_points_prize_scores_only_on_boards_that_count_prizes(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    plain = await leaderboard(client, program)
    with_prizes = await leaderboard(client, program, count_prizes=True)
    assert (plain["count_prizes"], with_prizes["count_prizes"]) == (False, True)
    rep = await new_participant(client, program)
    token = await participant_token(client, program, rep)
    wheel = await points_wheel(client, program, 50)
    key = random_ref("spin")
    first, replayed = await spin(client, wheel, token, key), await spin(client, wheel, token, key)
    assert (first.status_code, first.json()["prize"]) == (201, {"type": "points", "points": 50}), first.text
    assert replayed.headers.get("idempotent-replayed") == "true"
    assert (await spin(client, wheel, token)).status_code == 201
    assert await standings_of(client, program, plain["id"]) == []
    assert await standings_of(client, program, with_prizes["id"]) == [(rep["id"], 100)]


async def test_a_sweepstakes_points_prize_scores_on_boards_that_count_prizes(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    plain = await leaderboard(client, program)
    with_prizes = await leaderboard(client, program, count_prizes=True)
    rep = await new_participant(client, program)
    assert (await grant(client, program, rep["id"], 10)).status_code == 201  # the ticket's price
    await won_sweepstakes(client, program, await participant_token(client, program, rep), 700)
    # The grant counts on both, the ticket bought never lowers either, the prize only where counted.
    assert await standings_of(client, program, plain["id"]) == [(rep["id"], 10)]
    assert await standings_of(client, program, with_prizes["id"]) == [(rep["id"], 710)]


async def test_deductions_redemptions_and_spin_costs_never_move_a_board(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    boards = [await leaderboard(client, program), await leaderboard(client, program, count_prizes=True)]
    rep = await new_participant(client, program)
    token = await participant_token(client, program, rep)
    item = await catalog_item(client, program)
    assert (await grant(client, program, rep["id"], 5_000)).status_code == 201
    deduction = await client.post("/v1/points/deductions", json={"participant_id": rep["id"], "points": 300,
                                                                  "reason": "correction"},
                                  headers={**program.headers, "Idempotency-Key": random_ref()})
    assert deduction.status_code == 201, deduction.text
    redemption = await client.post("/v1/me/redemptions", json={"item_id": item["id"]},
                                   headers={**token, "Idempotency-Key": random_ref()})
    assert redemption.status_code == 201, redemption.text
    wheel = await launched_wheel(client, program, cost_points=25)  # nothing or free spins: no points prize
    assert (await spin(client, wheel, token)).status_code == 201
    wallet = (await client.get("/v1/me/wallet", headers=token)).json()
    assert wallet["lifetime_spent"] > 0 and wallet["available"] < 5_000 - 300
    for lb in boards:
        assert await standings_of(client, program, lb["id"]) == [(rep["id"], 5_000)]
