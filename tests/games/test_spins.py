"""Participants spin wheels over HTTP: the cost, the prize, the proof, the caps and the stock."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from games.fairness import verify_spin_proof
from tests.factories import (ProgramHandle, bearer, buy_entries, fund, grant, launched, launched_wheel, new_participant,
                             new_program, new_sweepstakes, spin, spinning_participant, sweepstakes_design, tokens_for)

pytestmark = pytest.mark.sql


def wheel(item_id: str | None = None, **overrides: Any) -> dict[str, Any]:
    segments: list[dict[str, Any]] = [
        {"label": "100 points", "weight": 30, "prize": {"type": "points", "points": 100}},
        {"label": "Free spin", "weight": 10, "prize": {"type": "free_spin"}},
        {"label": "Try again", "weight": 60, "prize": {"type": "nothing"}},
    ]
    if item_id:
        segments.insert(0, {"label": "Gift card", "weight": 50, "prize": {"type": "item", "item_id": item_id,
                                                                         "stock": 5}})
    return {"name": "Wheel", "cost_points": 10, "segments": segments, **overrides}


async def player(client: Any, program: ProgramHandle, points: int = 1_000, **fields: Any) -> tuple[str, dict[str, str]]:
    person = await new_participant(client, program, **fields)
    if points:
        assert (await grant(client, program, person["id"], points)).status_code == 201
    tokens = await tokens_for(client, program, person["id"])
    return person["id"], bearer(tokens["access_token"])


def spin_request(campaign_id: str, key: str) -> dict[str, Any]:
    return {"url": f"/v1/me/campaigns/{campaign_id}/spins", "headers": {"Idempotency-Key": key}}


async def test_a_spin_costs_pays_and_proves_itself(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    campaign_id = await launched(client, program, wheel())
    _, me = await player(client, program)
    results = []
    for n in range(30):
        response = await spin(client, campaign_id, me, f"spin-{n}")
        assert response.status_code == 201, response.text
        results.append(response.json())
    available = 1_000
    for body in results:
        prize = body["prize"]
        available += (0 if body["paid_with"] == "free_spin" else -10) + (prize.get("points", 0))
        assert body["proof"]["algorithm"] == "rw-fair-1" and body["proof"]["weights"] == [30, 10, 60]
    assert results[-1]["balance"]["available"] == available
    assert [b["proof"]["nonce"] for b in results] == list(range(30))
    assert (await client.get("/v1/me/wallet", headers=me)).json()["available"] == available
    # A free-spin prize is spent on the next spin instead of points (one spin in ten wins one, so
    # 30 spins may win none: test_free_spins_from_... covers tokens deterministically).
    won_free = [i for i, b in enumerate(results[:-1]) if b["prize"]["type"] == "free_spin"]
    assert all(results[i + 1]["paid_with"] == "free_spin" for i in won_free)

    # After rotation, every proof carries the revealed seed and verifies.
    rotated = await client.post("/v1/me/fairness/rotate", headers=me)
    history = (await client.get("/v1/me/spins?limit=100", headers=me)).json()["items"]
    assert len(history) == 30
    for record in history:
        assert record["proof"]["server_seed"] == rotated.json()["revealed"]["server_seed"]
        assert verify_spin_proof(record["proof"]).ok
    tampered = {**history[0]["proof"], "segment_index": (history[0]["segment_index"] + 1) % 3}
    assert not verify_spin_proof(tampered).ok


async def test_a_retried_spin_answers_the_first_and_moves_nothing(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    campaign_id = await launched(client, program, wheel())
    _, me = await player(client, program)
    first = await spin(client, campaign_id, me, "same")
    again = await asyncio.gather(*(spin(client, campaign_id, me, "same") for _ in range(5)))
    assert all(r.status_code == 201 and r.json() == first.json() for r in again)
    assert all(r.headers.get("Idempotent-Replayed") == "true" for r in again)
    assert (await client.get("/v1/me/fairness", headers=me)).json()["nonce"] == 1
    assert len((await client.get("/v1/me/spins", headers=me)).json()["items"]) == 1


async def test_the_daily_cap_pause_end_and_dates_refuse_spins(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    campaign_id = await launched(client, program, wheel(max_spins_per_participant_per_day=2))
    _, me = await player(client, program)
    assert (await spin(client, campaign_id, me, "a")).status_code == 201
    assert (await spin(client, campaign_id, me, "b")).status_code == 201
    capped = await spin(client, campaign_id, me, "c")
    assert (capped.status_code, capped.json()["code"]) == (409, "limit_reached")
    listed = (await client.get("/v1/me/campaigns", headers=me)).json()["items"]
    assert [(c["id"], c["spins_left_today"]) for c in listed] == [(campaign_id, 0)]

    other = await launched(client, program, wheel())
    await client.post(f"/v1/campaigns/{other}/pause", headers=program.headers)
    paused = await spin(client, other, me, "d")
    assert (paused.status_code, paused.json()["code"]) == (409, "campaign_not_active")
    await client.post(f"/v1/campaigns/{other}/end", headers=program.headers)
    ended = await spin(client, other, me, "e")
    assert (ended.status_code, ended.json()["code"]) == (409, "campaign_not_active")
    over = await launched(client, program, wheel(starts_at="2020-01-01T00:00:00Z", ends_at="2020-02-01T00:00:00Z"))
    late = await spin(client, over, me, "f")
    assert (late.status_code, late.json()["code"]) == (409, "campaign_not_active")
    draft = (await client.post("/v1/campaigns/spin", json=wheel(), headers=program.headers)).json()["id"]
    assert (await spin(client, draft, me, "g")).json()["code"] == "campaign_not_active"
    assert (await spin(client, "cmp_nope", me, "h")).status_code == 404
    # Nothing moved for the refusals: two spins' cost and prizes only.
    assert len((await client.get("/v1/me/spins", headers=me)).json()["items"]) == 2


async def test_a_spent_prize_budget_leaves_only_what_it_can_pay(client, redis) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client, allow_overdraft=False)
    await fund(redis, program, 1_000)
    design = {"name": "Tiny pool", "cost_points": 0, "budget_points": 300, "segments": [
        {"label": "100 points", "weight": 1, "prize": {"type": "points", "points": 100}}]}
    campaign_id = await launched(client, program, design)
    _, me = await player(client, program, points=0)
    paid = [await spin(client, campaign_id, me, f"k{n}") for n in range(3)]
    assert [r.json()["prize"]["points"] for r in paid] == [100, 100, 100]
    empty = await spin(client, campaign_id, me, "k4")
    assert (empty.status_code, empty.json()["code"]) == (409, "out_of_stock")
    report = (await client.get(f"/v1/campaigns/{campaign_id}/report", headers=program.headers)).json()
    assert (report["spins"], report["prizes_paid_points"], report["budget_left_points"]) == (3, 300, 0)


async def test_eligibility_by_segment(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    campaign_id = await launched(client, program, wheel(eligibility={"segments": ["gold"]}))
    _, gold = await player(client, program, segment="gold")
    _, silver = await player(client, program, segment="silver")
    assert (await spin(client, campaign_id, gold, "x")).status_code == 201
    refused = await spin(client, campaign_id, silver, "x")
    assert refused.status_code == 403
    assert (await client.get("/v1/me/campaigns", headers=silver)).json()["items"] == []


async def test_insufficient_points_is_refused_and_changes_nothing(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    campaign_id = await launched(client, program, wheel())
    _, me = await player(client, program, points=5)
    refused = await spin(client, campaign_id, me, "poor")
    assert (refused.status_code, refused.json()["code"]) == (422, "insufficient_points")
    assert (await client.get("/v1/me/wallet", headers=me)).json()["available"] == 5
    assert (await client.get("/v1/me/fairness", headers=me)).json()["nonce"] == 0


async def test_stock_of_5_under_100_concurrent_spins(live_server, redis) -> None:  # type: ignore[no-untyped-def]
    async with httpx.AsyncClient(base_url=live_server.url, timeout=120) as http:
        program = await new_program(http)
        partner = await http.post("/v1/fulfillment/partners", json={"name": "Cards Inc"}, headers=program.headers)
        assert partner.status_code == 201
        item = (await http.post("/v1/catalog/items", headers=program.headers, json={
            "brand": "Amazon", "name": "Amazon $25", "face_value": {"amount": 2500, "currency": "USD"}})).json()
        campaign_id = await launched(http, program, wheel(item["id"]))
        players = [await player(http, program) for _ in range(20)]

        async def five_spins(headers: dict[str, str], who: int) -> list[Any]:
            return [await spin(http, campaign_id, headers, f"{who}-{n}") for n in range(5)]

        outcomes = [r for batch in await asyncio.gather(*(five_spins(h, i) for i, (_, h) in enumerate(players)))
                    for r in batch]
        assert all(r.status_code == 201 for r in outcomes), [r.text for r in outcomes if r.status_code != 201]
        items_won = [r.json() for r in outcomes if r.json()["prize"]["type"] == "item"]
        assert len(items_won) == 5  # the wheel lands on it half the time: far more than 5 tried
        report = (await http.get(f"/v1/campaigns/{campaign_id}/report", headers=program.headers)).json()
        assert report["segments"][0]["stock_left"] == 0 and report["spins"] == 100
        # Once out of stock the segment weighs 0 in the proofs that follow.
        assert any(r.json()["proof"]["weights"][0] == 0 for r in outcomes)
        orders = (await http.get("/v1/orders?limit=100", headers=program.headers)).json()["items"]
        assert sorted(o["id"] for o in orders) == sorted(w["order_id"] for w in items_won)
        assert all(o["points"] == 0 and o["source"] == "prize" for o in orders)
        # Points are conserved: what players hold now is what they were given, less costs, plus prizes.
        paid = sum(10 for r in outcomes if r.json()["paid_with"] == "points")
        prizes = sum(r.json()["prize"].get("points", 0) for r in outcomes)
        balances = [(await http.get("/v1/me/wallet", headers=h)).json()["available"] for _, h in players]
        assert sum(balances) == 20 * 1_000 - paid + prizes
    done = subprocess.run([sys.executable, "-m", "api.cli", "reconcile"], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_verify_spin_cli_accepts_a_published_proof(tmp_path: Path) -> None:
    proof = {"algorithm": "rw-fair-1", "server_seed": "3f1b9f0d5a7e2c4b8a6d0e1f2c3b4a5968778695a4b3c2d1e0f1a2b3c4d5e6f7",
             "server_seed_hash": "bb8d48dfa8730e78f272bb0a5705d8e09cf64fe9dfa7d44a2ee0e4f27ae4cbc2",
             "client_seed": "dealer-42", "nonce": 0, "weights": [50, 30, 15, 5], "segment_index": 1}
    path = tmp_path / "proof.json"
    path.write_text(json.dumps(proof))
    assert subprocess.run([sys.executable, "-m", "api.cli", "verify", "spin", str(path)]).returncode == 0


async def test_free_spins_from_an_earning_rule_and_an_admin_are_spent_before_points(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    campaign_id = await launched(client, program, wheel())
    person, me = await player(client, program, external_id="rep-spins")
    await client.post("/v1/activity-types", json={"name": "training_done"}, headers=program.headers)
    rule = await client.post("/v1/earning-rules", headers=program.headers, json={
        "name": "Training done", "activity_type": "training_done", "award": {"type": "fixed", "points": 5},
        "free_spins": 2})
    assert rule.status_code == 201, rule.text
    activity = {"external_id": "trn-1", "type": "training_done", "participant_external_id": "rep-spins",
                "occurred_at": "2026-06-15T12:00:00Z", "attributes": {}}
    for _ in range(2):  # sent twice: awarded once
        sent = await client.post("/v1/activities", json={"activities": [activity]}, headers=program.headers)
        assert sent.status_code == 200, sent.text
    gift = await client.post(f"/v1/participants/{person}/free-spins", json={"spins": 1, "reason": "welcome"},
                             headers={**program.headers, "Idempotency-Key": "gift-1"})
    again = await client.post(f"/v1/participants/{person}/free-spins", json={"spins": 1, "reason": "welcome"},
                              headers={**program.headers, "Idempotency-Key": "gift-1"})
    assert (gift.status_code, gift.json()["free_spins"], again.json()["free_spins"]) == (201, 3, 3)
    assert (await client.get("/v1/me/campaigns", headers=me)).json()["free_spins"] == 3
    spun = [(await spin(client, campaign_id, me, f"t{n}")).json() for n in range(3)]
    assert [s["paid_with"] for s in spun][:1] == ["free_spin"]
    won = sum(s["prize"]["type"] == "free_spin" for s in spun)
    assert spun[-1]["free_spins"] == 3 - 3 + won
    bad = await client.post(f"/v1/participants/{person}/free-spins", json={"spins": 0, "reason": "x"},
                            headers={**program.headers, "Idempotency-Key": "gift-2"})
    assert bad.status_code == 400


async def test_a_segment_of_sweepstakes_entries_adds_tickets_within_the_maximum(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    sweep = await new_sweepstakes(client, program, max_entries_per_participant=3)
    unknown = await client.post("/v1/campaigns/spin", headers=program.headers, json={
        "name": "Tickets", "cost_points": 1, "segments": [
            {"label": "2 entries", "weight": 1, "prize": {"type": "entries", "sweepstakes_id": "swp_nope", "entries": 2}}]})
    assert unknown.status_code == 422
    campaign_id = await launched(client, program, {"name": "Tickets", "cost_points": 1, "segments": [
        {"label": "2 entries", "weight": 9, "prize": {"type": "entries", "sweepstakes_id": sweep["id"], "entries": 2}},
        {"label": "Nothing", "weight": 1, "prize": {"type": "nothing"}}]})
    _, me = await player(client, program)
    assert (await buy_entries(client, sweep["id"], me, 1)).status_code == 201
    spun = []
    for n in range(6):
        response = await spin(client, campaign_id, me, f"e{n}")
        assert response.status_code == 201, response.text
        spun.append(response.json())
    won = [s for s in spun if s["prize"]["type"] == "entries"]
    # 1 bought + 2 won = the maximum of 3: after one win the segment weighs 0.
    assert len(won) == 1
    assert all(s["proof"]["weights"] == [0, 1] for s in spun[spun.index(won[0]) + 1:])
    mine = (await client.get(f"/v1/me/sweepstakes/{sweep['id']}", headers=me)).json()
    assert (mine["my_tickets"], mine["tickets_left"]) == (3, 0)
    assert sweepstakes_design()["entry_cost_points"] == 10
    economics = (await client.get(f"/v1/campaigns/{campaign_id}", headers=program.headers)).json()["economics"]
    assert economics["expected_payout_points"] == pytest.approx(0.9 * 2 * 10)


async def test_a_free_wheel_leaves_free_spin_tokens_for_one_that_costs(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    free_wheel = await launched(client, program, wheel(cost_points=0))
    person, me = await player(client, program)
    await client.post(f"/v1/participants/{person}/free-spins", json={"spins": 2, "reason": "welcome"},
                      headers={**program.headers, "Idempotency-Key": "gift"})
    spun = (await spin(client, free_wheel, me, "free-1")).json()
    assert spun["paid_with"] == "points" and spun["cost_points"] == 0
    assert spun["free_spins"] == 2 + (spun["prize"]["type"] == "free_spin")


async def sure_card_wheel(client: Any) -> tuple[ProgramHandle, dict, dict, str]:
    """A program with a partner and a $25 card, and a launched wheel whose every spin wins it."""
    program = await new_program(client)
    partner = (await client.post("/v1/fulfillment/partners", json={"name": "Cards"}, headers=program.headers)).json()
    item = (await client.post("/v1/catalog/items", headers=program.headers, json={
        "brand": "Amazon", "name": "Amazon $25", "face_value": {"amount": 2500, "currency": "USD"}})).json()
    campaign_id = await launched(client, program, {"name": "Sure thing", "cost_points": 10, "segments": [
        {"label": "Gift card", "weight": 1, "prize": {"type": "item", "item_id": item["id"], "stock": 3}}]})
    return program, partner, item, campaign_id


async def test_an_item_prize_whose_request_died_after_redis_is_ordered_by_the_sweep(  # type: ignore[no-untyped-def]
        client, redis, monkeypatch) -> None:
    import sqlite3

    from fulfillment import order_writes

    async def locked(*_: object, **__: object) -> bool:
        raise sqlite3.OperationalError("database is locked")

    from catalog.items import pricing_of
    from games import seeds
    from games.spins import complete_unrecorded, draw_spin
    from games.tables import Spin
    from programs.programs import get_program
    from tests.factories import wait_until
    from kernel import keys as kernel_keys
    from wallet.store import WalletStore
    from kernel.idempotency import Idem

    program, _, item, campaign_id = await sure_card_wheel(client)
    person, me = await player(client, program)
    view = await get_program(program.id)
    store = WalletStore(redis)
    sealer = client.app.state.sealer
    # The request died right after rw_spin: the Redis step only, no order.
    await seeds.current(store, sealer, program.id, person)
    outcome = await draw_spin(store, sealer, program.id, view.timezone, person, campaign_id,
                              Idem(key=kernel_keys.idempotency(program.id, "test", "died"), fingerprint="died"))
    assert outcome.ok
    order_id = f"ord_{(outcome.tx or '').removeprefix('spn_')}"
    history = (await client.get("/v1/me/spins", headers=me)).json()["items"]
    assert [(h["id"], h["proof"]["nonce"], h["order_id"]) for h in history] == [(outcome.tx, 0, order_id)]
    assert (await client.get(f"/v1/me/redemptions/{order_id}", headers=me)).status_code == 404
    assert await wait_until(lambda: Spin.count().where(Spin.id == outcome.tx).run(), 1) == 1  # projected
    with monkeypatch.context() as patched:  # a moment when SQL cannot save the order: left for later
        patched.setattr(order_writes, "record_pending", locked)
        assert await complete_unrecorded(store, sealer, view, pricing_of(view), settle_seconds=0) == 0
    assert (await client.get(f"/v1/me/redemptions/{order_id}", headers=me)).status_code == 404
    assert await complete_unrecorded(store, sealer, view, pricing_of(view), settle_seconds=0) == 1
    assert (await client.get(f"/v1/me/redemptions/{order_id}", headers=me)).status_code == 200
    assert await complete_unrecorded(store, sealer, view, pricing_of(view), settle_seconds=0) == 0


async def test_the_wheel_shows_the_odds_a_spin_has_now_once_a_prize_runs_out(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    await client.post("/v1/fulfillment/partners", json={"name": "Cards"}, headers=program.headers)
    item = (await client.post("/v1/catalog/items", headers=program.headers, json={
        "brand": "Amazon", "name": "Amazon $25", "face_value": {"amount": 2500, "currency": "USD"}})).json()
    campaign_id = await launched(client, program, {"name": "One card", "cost_points": 10, "segments": [
        {"label": "Gift card", "weight": 1, "prize": {"type": "item", "item_id": item["id"], "stock": 1}},
        {"label": "Try again", "weight": 3, "prize": {"type": "nothing"}}]})
    _, me = await player(client, program)

    def odds(listing: dict[str, Any]) -> list[tuple[bool, float]]:
        wheel_view = next(c for c in listing["items"] if c["id"] == campaign_id)
        return [(s.get("in_stock", True), s["probability"]) for s in wheel_view["segments"]]

    assert odds((await client.get("/v1/me/campaigns", headers=me)).json()) == [(True, 0.25), (True, 0.75)]
    for n in range(60):
        if (await spin(client, campaign_id, me, f"odds-{n}")).json()["segment_index"] == 0:
            break
    else:
        pytest.fail("the card never came up in 60 spins at 1 in 4")
    assert odds((await client.get("/v1/me/campaigns", headers=me)).json()) == [(False, 0.0), (True, 1.0)]


async def test_a_whole_spin_from_my_history_verifies_with_the_cli_after_rotation(client, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import json
    import subprocess
    import sys
    from pathlib import Path

    program = await new_program(client)
    campaign_id = await launched(client, program, wheel())
    _, me = await player(client, program)
    assert (await spin(client, campaign_id, me, "to-verify")).status_code == 201
    assert (await client.post("/v1/me/fairness/rotate", headers=me)).status_code in (200, 201)
    item = (await client.get("/v1/me/spins", headers=me)).json()["items"][0]
    cli = str(Path(sys.executable).parent / "reward-wallet")
    saved = tmp_path / "spin.json"
    saved.write_text(json.dumps(item))
    assert subprocess.run([cli, "verify", "spin", str(saved)], capture_output=True, timeout=60).returncode == 0
    item["segment_index"] = (item["segment_index"] + 1) % len(item["proof"]["weights"])
    saved.write_text(json.dumps(item))
    tampered = subprocess.run([cli, "verify", "spin", str(saved)], capture_output=True, text=True, timeout=60)
    assert tampered.returncode == 1 and "segment_index" in tampered.stdout


async def test_60_concurrent_spins_by_one_participant_all_land_each_on_its_own_nonce(client, live_server) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    campaign_id = await launched_wheel(client, program)
    _, me = await spinning_participant(client, program, 1_000)
    async with httpx.AsyncClient(base_url=live_server.url, timeout=120) as http:
        answers = await asyncio.gather(*(
            http.post(f"/v1/me/campaigns/{campaign_id}/spins", headers={**me, "Idempotency-Key": f"c{n}"})
            for n in range(60)))
    assert [a.status_code for a in answers if a.status_code != 201] == [], [a.json() for a in answers
                                                                         if a.status_code != 201][:3]
    assert sorted(a.json()["proof"]["nonce"] for a in answers) == list(range(60))
    rotated = (await client.post("/v1/me/fairness/rotate", headers=me)).json()
    assert rotated["revealed"]["nonce"] == 60
    history = (await client.get("/v1/me/spins?limit=100", headers=me)).json()["items"]
    assert len(history) == 60 and all(verify_spin_proof(r["proof"]).ok for r in history)


async def test_rebuild_after_a_redis_loss_restores_free_spin_tokens(client, redis) -> None:  # type: ignore[no-untyped-def]
    import asyncio

    from wallet import keys
    from wallet.reconcile import rebuild_program
    from wallet.tables import LedgerEntry

    program = await new_program(client)
    campaign_id = await launched(client, program, wheel())
    person, me = await player(client, program)
    gift = await client.post(f"/v1/participants/{person}/free-spins", json={"spins": 3, "reason": "welcome"},
                             headers={**program.headers, "Idempotency-Key": "gift"})
    assert gift.status_code == 201, gift.text
    spun = [(await spin(client, campaign_id, me, f"tok-{n}")).json() for n in range(2)]
    tokens = int(await redis.hget(keys.wallet(program.id, person), "free_spins"))
    assert tokens == 3 - 2 + sum(s["prize"].get("spins", 0) for s in spun if s["prize"]["type"] == "free_spin")
    for _ in range(300):  # the projector writes the gift and both spins to the ledger
        if await LedgerEntry.count().where((LedgerEntry.program_id == program.id)
                                           & LedgerEntry.kind.is_in(["free_spins", "spin"])).run() == 3:
            break
        await asyncio.sleep(0.05)
    await redis.hdel(keys.wallet(program.id, person), "free_spins")  # Redis lost them
    await rebuild_program(redis, program.id, [person])
    assert int(await redis.hget(keys.wallet(program.id, person), "free_spins")) == tokens


async def test_an_item_prize_that_cannot_be_ordered_is_paid_in_points_once(client) -> None:  # type: ignore[no-untyped-def]
    program, partner, item, campaign_id = await sure_card_wheel(client)
    person, me = await player(client, program)
    # The only partner goes away after launch: the card can no longer be ordered.
    off = await client.patch(f"/v1/fulfillment/partners/{partner['id']}", json={"status": "disabled"},
                             headers=program.headers)
    assert off.status_code == 200, off.text
    spun = await spin(client, campaign_id, me, "card")
    assert spun.status_code == 201 and spun.json()["prize"]["type"] == "item"
    again = await spin(client, campaign_id, me, "card")  # a retry substitutes nothing twice
    assert again.headers.get("Idempotent-Replayed") == "true"
    wallet_view = (await client.get("/v1/me/wallet", headers=me)).json()
    assert wallet_view["available"] == 1_000 - 10 + item["points_price"]
    feed = [i["text"] for i in (await client.get("/v1/me/feed", headers=me)).json()["items"]]
    assert any("was not available" in line for line in feed), feed
    assert (await client.get(f"/v1/me/redemptions/{spun.json()['order_id']}", headers=me)).status_code == 404


async def test_an_item_prize_whose_order_could_not_be_saved_is_still_owed_not_paid_in_points(  # type: ignore[no-untyped-def]
        client, monkeypatch) -> None:
    """A moment's SQL failure is not "cannot be ordered": the spin answers 503, and its retry
    (or the sweep) orders the card; the winner never gets points in its place."""
    import sqlite3

    from fulfillment import order_writes

    program, _, item, campaign_id = await sure_card_wheel(client)
    _, me = await player(client, program)
    written = order_writes.record_pending

    async def locked(*_: object, **__: object) -> bool:
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(order_writes, "record_pending", locked)
    failed = await spin(client, campaign_id, me, "card")
    assert failed.status_code == 503, failed.text
    monkeypatch.setattr(order_writes, "record_pending", written)
    again = await spin(client, campaign_id, me, "card")
    assert again.status_code == 201 and again.json()["prize"]["type"] == "item", again.text
    order = (await client.get(f"/v1/me/redemptions/{again.json()['order_id']}", headers=me)).json()
    assert (order["status"], order["source"]) == ("pending", "prize")
    assert (await client.get("/v1/me/wallet", headers=me)).json()["available"] == 1_000 - 10
    feed = [i["text"] for i in (await client.get("/v1/me/feed", headers=me)).json()["items"]]
    assert not any("was not available" in line for line in feed), feed
