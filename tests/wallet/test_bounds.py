"""The two bounds on points (CONTRACT.md, v1 additions), over HTTP on the real stores.

One operation moves at most 10^12 points; no balance, lifetime counter or program account
passes 2^53 - 1 in size. Past either: 422 `validation_error`, and nothing moves. Every
number the Lua functions write is exact (Valkey's cjson would write 1e+14)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.factories import (OPERATOR, fill_wallet, grant, new_participant, new_program, projected, random_ref)
from wallet import keys
from kernel.money import MAX_BALANCE, MAX_MOVE
from kernel.ids import new_id
from wallet.store import GrantSpec, Leg, WalletStore
from kernel import keys as kernel_keys
from kernel.idempotency import Idem
from wallet.journal import dead_letters
from wallet.reconcile import reconcile_program

pytestmark = pytest.mark.sql

REWARD_WALLET = str(Path(sys.executable).parent / "reward-wallet")


async def wallet(client: Any, program: Any, participant_id: str) -> dict[str, int]:
    response = await client.get(f"/v1/participants/{participant_id}/wallet", headers=program.headers)
    assert response.status_code == 200, response.text
    return response.json()


async def accounts(redis: Any, program_id: str) -> dict[str, int]:
    return {k.decode(): int(v) for k, v in (await redis.hgetall(keys.accounts(program_id))).items()}




async def books_agree(redis: Any, program_id: str) -> None:
    await projected(redis, program_id, "bounds")
    assert await reconcile_program(redis, program_id) == []
    assert await dead_letters(redis, program_id) == []


async def test_an_award_of_2_53_points_is_refused_and_the_ledger_goes_on(client, redis) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    rep = await new_participant(client, program, external_id=random_ref("rep"))
    rule = await client.post("/v1/earning-rules", headers=program.headers, json={
        "name": "Per cent", "activity_type": "sale",
        "award": {"type": "per_unit", "attribute": "amount", "unit": 1, "points_per_unit": 10_000_000}})
    assert rule.status_code == 201, rule.text

    def sale(amount: int) -> dict[str, Any]:
        return {"external_id": random_ref("inv"), "type": "sale", "participant_external_id": rep["external_id"],
                "occurred_at": "2026-06-15T12:00:00Z", "attributes": {"amount": amount}}

    fine = await client.post("/v1/activities", headers=program.headers, json={"activities": [sale(5)]})
    assert fine.status_code == 200, fine.text
    assert fine.json()["items"][0]["awards"][0]["points"] == 50_000_000
    # 900,719,926 x 10^7 = 9,007,199,260,000,000 > 2^53: credited with lost precision, answered 500.
    huge = await client.post("/v1/activities", headers=program.headers, json={"activities": [sale(900_719_926)]})
    assert huge.status_code == 200, huge.text
    award = huge.json()["items"][0]["awards"][0]
    assert (award["points"], award["outcome"]) == (0, "validation_error")
    assert "1000000000000" in award["detail"]
    assert huge.json()["points_awarded"] == 0
    assert (await wallet(client, program, rep["id"]))["available"] == 50_000_000
    assert (await accounts(redis, program.id))["budget"] == -50_000_000
    await books_agree(redis, program.id)
    ledger = (await client.get("/v1/program/ledger", headers=program.headers)).json()
    assert ledger["participants_available"] == 50_000_000


async def test_balances_of_10_14_answer_exactly(client, redis) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    rep = await new_participant(client, program)
    await fill_wallet(redis, program.id, rep["id"], 10**14)
    # Every wallet call answered 500: cjson wrote the balance as 1e+14.
    granted = await grant(client, program, rep["id"], 7)
    assert granted.status_code == 201, granted.text
    assert granted.json()["balance"]["available"] == 10**14 + 7
    deducted = await client.post("/v1/points/deductions", headers={**program.headers, "Idempotency-Key": random_ref()},
                                 json={"participant_id": rep["id"], "points": 10**12, "reason": "fix"})
    assert deducted.status_code == 201, deducted.text
    assert deducted.json()["balance"]["available"] == 10**14 + 7 - 10**12
    view = await wallet(client, program, rep["id"])
    assert (view["available"], view["lifetime_earned"]) == (10**14 + 7 - 10**12, 10**14 + 7)
    entries = await redis.xrange(keys.journal(program.id))
    assert all(b"e+" not in value for _, fields in entries for value in fields.values())
    await books_agree(redis, program.id)


async def test_balances_written_before_the_bounds_still_move_and_answer_exactly(client, redis) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    rep = await new_participant(client, program)
    await fill_wallet(redis, program.id, rep["id"], 10**14)
    # The same numbers as cjson wrote them before the bounds (wallet/reconcile.py stored_int).
    await redis.hset(keys.wallet(program.id, rep["id"]), mapping={"available": "1e+14", "held": "1e+14"})
    deducted = await client.post("/v1/points/deductions", headers={**program.headers, "Idempotency-Key": random_ref()},
                                 json={"participant_id": rep["id"], "points": 10**12, "reason": "fix"})
    assert deducted.status_code == 201, deducted.text
    assert (deducted.json()["balance"]["available"], deducted.json()["balance"]["held"]) == (10**14 - 10**12, 10**14)
    granted = await grant(client, program, rep["id"], 7)
    assert granted.status_code == 201, granted.text
    assert (granted.json()["balance"]["available"], granted.json()["balance"]["held"]) == (10**14 - 10**12 + 7, 10**14)
    await redis.hset(keys.wallet(program.id, rep["id"]), "held", "0")  # nothing was ever held: the ledger says 0
    await books_agree(redis, program.id)


async def test_a_balance_stops_at_2_53_minus_1_and_nothing_moves_past_it(client, redis) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    rep, other = await new_participant(client, program), await new_participant(client, program)
    await fill_wallet(redis, program.id, rep["id"], MAX_BALANCE - 10)
    before = await wallet(client, program, rep["id"])
    over = await grant(client, program, rep["id"], 11)
    assert over.status_code == 422, over.text
    assert over.json()["code"] == "validation_error" and "9007199254740991" in over.json()["detail"]
    assert await wallet(client, program, rep["id"]) == before
    exact = await grant(client, program, rep["id"], 10)
    assert exact.status_code == 201, exact.text
    assert exact.json()["balance"]["available"] == MAX_BALANCE
    # `world` went negative by all that was paid in: funding 11 more would pass -(2^53 - 1).
    books = await accounts(redis, program.id)
    assert books["world"] == -(MAX_BALANCE - 10)
    funding = await WalletStore(redis).transfer(program.id, new_id("tx"), "funding",
                                                [Leg("acct:world", "acct:budget", 11, "-")])
    assert (funding.ok, funding.code) == (False, "validation_error")
    assert await accounts(redis, program.id) == books
    # One operation moves at most 10^12: refused before any store.
    too_big = await grant(client, program, other["id"], MAX_MOVE + 1)
    assert too_big.status_code == 422 and too_big.json()["code"] == "validation_error", too_big.text
    assert too_big.json()["invalid_params"][0]["name"] == "points"
    await books_agree(redis, program.id)


async def test_a_grant_that_would_overdraw_the_budget_past_2_53_is_refused_and_nothing_moves(client, redis) -> None:  # type: ignore[no-untyped-def]
    # A program allows overdraft by default, so a grant reads its budget only from the move's
    # own HINCRBY: one past the bound is undone inside the same call.
    program = await new_program(client)
    reps = [await new_participant(client, program) for _ in range(2)]
    other = await new_participant(client, program)
    # 9,008 overdraft grants of at most 10^12, shared by two wallets (each stays within the bound).
    sizes = [MAX_MOVE] * ((MAX_BALANCE - 10) // MAX_MOVE) + [(MAX_BALANCE - 10) % MAX_MOVE]
    overdrawn = await WalletStore(redis).grant_batch(program.id, [
        GrantSpec(idem=Idem(key=kernel_keys.no_record(program.id), fingerprint=""), tx=new_id("tx"),
                  participant_id=reps[number % 2]["id"], points=size) for number, size in enumerate(sizes)])
    assert all(outcome.ok for outcome in overdrawn)
    books = await accounts(redis, program.id)
    assert books["budget"] == -(MAX_BALANCE - 10)
    before = await wallet(client, program, other["id"])
    key = random_ref("grant")
    over = await grant(client, program, other["id"], 11, key=key)
    assert over.status_code == 422, over.text
    assert "the program's budget" in over.json()["detail"] and "9007199254740991" in over.json()["detail"]
    assert await accounts(redis, program.id) == books
    assert await wallet(client, program, other["id"]) == before
    again = await grant(client, program, other["id"], 11, key=key)
    assert (again.status_code, again.json()["detail"]) == (422, over.json()["detail"])
    assert await accounts(redis, program.id) == books
    await projected(redis, program.id, "bounds")  # nothing journalled for them: no history
    history = await client.get(f"/v1/participants/{other['id']}/transactions", headers=program.headers)
    assert history.status_code == 200 and history.json()["items"] == [], history.text
    exact = await grant(client, program, other["id"], 10)
    assert exact.status_code == 201, exact.text
    assert exact.json()["balance"]["available"] == 10
    assert (await accounts(redis, program.id))["budget"] == -MAX_BALANCE
    await books_agree(redis, program.id)


async def test_catalog_face_values_and_prices_stay_within_one_operation(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)

    async def item(amount: int) -> Any:
        return await client.post("/v1/catalog/items", headers=program.headers, json={
            "sku": random_ref(), "brand": "Big", "name": "Card", "face_value": {"amount": amount, "currency": "USD"}})

    for amount in (2**53 + 1, MAX_MOVE + 1):
        refused = await item(amount)
        assert refused.status_code == 422, refused.text
        assert refused.json()["code"] == "validation_error"
    created = await item(MAX_MOVE)
    assert created.status_code == 201, created.text
    assert created.json()["points_price"] == MAX_MOVE


async def test_a_bad_journal_entry_is_set_aside_and_the_rest_reach_the_ledger(client, redis) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    rep = await new_participant(client, program)
    # What the journal held before the fix: a number cjson wrote with 14 digits.
    await redis.xadd(keys.journal(program.id), {
        "tx": "tx_bad", "kind": "award", "participant": rep["id"], "points": "9.223372036854e+18", "ref": "",
        "meta": "{}", "legs": '[["budget","available:x",9.223372036854e+18]]', "ts": "1780000000000",
        "earned": "0", "spent": "0"})
    assert (await grant(client, program, rep["id"], 25)).status_code == 201
    await projected(redis, program.id, "bounds")
    letters = await dead_letters(redis, program.id)
    assert [letter.transaction_id for letter in letters] == ["tx_bad"]
    history = (await client.get(f"/v1/participants/{rep['id']}/transactions", headers=program.headers)).json()
    assert [t["points"] for t in history["items"]] == [25]

    metrics = await client.get("/metrics", headers=OPERATOR)
    line = next(x for x in metrics.text.splitlines() if x.startswith("rw_journal_dead_letter_entries"))
    assert float(line.split()[-1]) >= 1

    # A balance written as cjson wrote it before the fix: a drift row, not a traceback.
    await redis.hset(keys.wallet(program.id, rep["id"]), "held", "1e+14")
    result = subprocess.run([REWARD_WALLET, "reconcile"], env=dict(os.environ), capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert "tx_bad" in result.stdout and "set aside" in result.stdout
    drift = next(x for x in result.stdout.splitlines() if f"held:{rep['id']}" in x)
    assert drift.split()[-3:] == ["100000000000000", "0", "+100000000000000"]


async def test_a_spin_prize_that_would_pass_the_largest_balance_is_refused(client, redis) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    design = {"name": "Wheel", "cost_points": 0,
              "segments": [{"label": "10 points", "weight": 1, "prize": {"type": "points", "points": 10}}]}
    created = await client.post("/v1/campaigns/spin", json=design, headers=program.headers)
    assert created.status_code == 201, created.text
    campaign_id = created.json()["id"]
    assert (await client.post(f"/v1/campaigns/{campaign_id}/launch", headers=program.headers)).status_code == 200
    rep = await new_participant(client, program)
    await fill_wallet(redis, program.id, rep["id"], MAX_BALANCE - 5)
    tokens = await client.post(f"/v1/participants/{rep['id']}/tokens", headers=program.headers)
    me = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
    before = await wallet(client, program, rep["id"])
    spun = await client.post(f"/v1/me/campaigns/{campaign_id}/spins", headers={**me, "Idempotency-Key": "s1"})
    assert spun.status_code == 422, spun.text
    assert spun.json()["code"] == "validation_error" and "9007199254740991" in spun.json()["detail"]
    assert await wallet(client, program, rep["id"]) == before
    await books_agree(redis, program.id)
