"""Points that wait and returned sales, through the HTTP API and the worker's release pass."""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from kernel import keys as kernel_keys
from kernel.ids import new_id
from kernel.idempotency import Idem
from programs.awards import record_activity_scores
from programs.pending import ReversalRequest, release_due, reverse_sale
from programs.rules import ActivityFacts
from programs.tables import Award
from tests.factories import (ProgramHandle, available, bearer, grant, leaderboard, new_participant, new_program,
                             points_wheel, projected, random_ref, redeem, shop, spin, standings_of, tokens_for,
                             won_sweepstakes)
from tests.programs.test_earning import event, rule, send
from wallet.chain import verify_chain
from wallet.reconcile import rebuild_program, reconcile_program
from wallet import keys as wallet_keys
from wallet.store import GrantSpec, WalletStore

pytestmark = pytest.mark.sql

NOW = datetime.now(timezone.utc) - timedelta(hours=1)


@pytest.fixture
async def store(redis) -> WalletStore:  # type: ignore[no-untyped-def]
    """The wallet's functions from the tests' own loop (the app runs on the test client's)."""
    wallets = WalletStore(redis)
    await wallets.load_functions()
    return wallets


async def seller(client, program: ProgramHandle) -> tuple[dict[str, Any], dict[str, str]]:  # type: ignore[no-untyped-def]
    person = await new_participant(client, program, external_id=random_ref("rep"))
    return person, bearer((await tokens_for(client, program, person["id"]))["access_token"])


async def my_wallet(client, headers: dict[str, str]) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    response = await client.get("/v1/me/wallet", headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def sale(client, program: ProgramHandle, person: dict[str, Any], ext: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    report = await send(client, program, event("sale", person["external_id"], NOW, ext=ext, amount=10_000))
    return report["items"][0]


async def reverse(client, program: ProgramHandle, external_id: str, key: str | None = None,  # type: ignore[no-untyped-def]
                  reason: str = "customer returned it") -> Any:
    return await client.post("/v1/activities/reversals", json={"external_id": external_id, "reason": reason},
                             headers={**program.headers, "Idempotency-Key": key or random_ref("rev")})


async def feed_texts(client, headers: dict[str, str]) -> list[str]:  # type: ignore[no-untyped-def]
    response = await client.get("/v1/me/feed", headers=headers)
    assert response.status_code == 200, response.text
    return [item["text"] for item in response.json()["items"]]


async def feed_until(client, headers: dict[str, str], wanted: Any, timeout: float = 30.0) -> list[str]:  # type: ignore[no-untyped-def]
    """The feed's lines once `wanted(lines)` holds: they follow from journal entries, which
    the in-process projector writes a moment later."""
    deadline = time.monotonic() + timeout
    texts = await feed_texts(client, headers)
    while not wanted(texts) and time.monotonic() < deadline:
        await asyncio.sleep(0.05)
        texts = await feed_texts(client, headers)
    assert wanted(texts), texts
    return texts


async def settled(redis, program: ProgramHandle) -> None:  # type: ignore[no-untyped-def]
    """The journal projected and linked; reconcile and the chain hold."""
    await projected(redis, program.id, "pending-test")
    assert await reconcile_program(redis, program.id) == []
    assert (await verify_chain(program.id)).ok


async def test_a_pending_lot_releases_at_its_minute_and_not_a_minute_before(client, store) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client, point_name="ThermoPoints")
    spec = await rule(client, program, activity_type="sale", award={"type": "fixed", "points": 150},
                      pending_days=14)
    person, me = await seller(client, program)
    awarded = await sale(client, program, person, random_ref("INV"))
    assert awarded["awards"][0]["lot_id"] and awarded["awards"][0]["releases_at"]
    wallet = await my_wallet(client, me)
    assert (wallet["available"], wallet["pending"]) == (0, 150) and "owed" not in wallet
    [lot] = wallet["pending_lots"]
    assert set(lot) == {"points", "releases_at", "reason"} and lot["reason"] == spec["name"]
    releases_at = datetime.fromisoformat(lot["releases_at"].replace("Z", "+00:00"))
    assert releases_at.second == 0 and timedelta(days=14) <= releases_at - datetime.now(timezone.utc) \
        <= timedelta(days=14, minutes=1)
    # Pending points cannot be spent.
    spend = await client.post("/v1/points/deductions", json={"participant_id": person["id"], "points": 1,
                                                             "reason": "try"},
                              headers={**program.headers, "Idempotency-Key": random_ref()})
    assert spend.status_code == 422 and spend.json()["code"] == "insufficient_points"

    assert await release_due(store, program.id, releases_at - timedelta(minutes=1)) == 0
    assert await release_due(store, program.id, releases_at - timedelta(milliseconds=1)) == 0
    assert (await my_wallet(client, me))["pending"] == 150
    assert await release_due(store, program.id, releases_at) == 1
    assert await release_due(store, program.id, releases_at + timedelta(days=1)) == 0  # once
    wallet = await my_wallet(client, me)
    assert (wallet["available"], wallet["pending"], wallet["pending_lots"]) == (150, 0, [])
    assert wallet["lifetime_earned"] == 150
    texts = await feed_until(client, me, lambda t: f"+150 ThermoPoints released: {spec['name']}" in t)
    assert any(t.startswith("+150 ThermoPoints pending until") for t in texts)
    await settled(store.client, program)


async def test_a_manager_releases_an_approval_lot_once(client, store) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    await rule(client, program, activity_type="sale", award={"type": "fixed", "points": 80}, pending_until="approval")
    person, me = await seller(client, program)
    await sale(client, program, person, random_ref("INV"))
    assert (await my_wallet(client, me))["pending_lots"][0]["releases_at"] is None
    # The worker never releases an approval lot.
    assert await release_due(store, program.id, datetime.now(timezone.utc) + timedelta(days=9999)) == 0
    lots = (await client.get(f"/v1/participants/{person['id']}/pending-lots", headers=program.headers)).json()
    [lot] = lots["items"]
    path = f"/v1/participants/{person['id']}/pending-lots/{lot['id']}/release"
    headers = {**program.headers, "Idempotency-Key": random_ref()}
    first = await client.post(path, headers=headers)
    assert first.status_code == 200, first.text
    assert (first.json()["points"], first.json()["available"]) == (80, 80)
    again = await client.post(path, headers=headers)
    assert again.status_code == 200 and again.headers.get("idempotent-replayed") == "true"
    assert again.json() == first.json()
    other = await client.post(path, headers={**program.headers, "Idempotency-Key": random_ref()})
    assert other.status_code == 409 and other.json()["code"] == "already_released"
    unknown = await client.post(f"/v1/participants/{person['id']}/pending-lots/tx_nope/release",
                                headers={**program.headers, "Idempotency-Key": random_ref()})
    assert unknown.status_code == 404
    assert (await my_wallet(client, me))["available"] == 80
    await settled(store.client, program)


async def test_a_sale_returned_before_release_cancels_its_lot(client, store) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client, point_name="ThermoPoints")
    await rule(client, program, activity_type="sale", award={"type": "fixed", "points": 150}, pending_days=30)
    person, me = await seller(client, program)
    invoice = random_ref("INV")
    await sale(client, program, person, invoice)
    budget = (await client.get("/v1/program/budget", headers=program.headers)).json()
    first = await reverse(client, program, invoice)
    assert first.status_code == 200, first.text
    body = first.json()
    assert (body["points"], body["cancelled"], body["taken_back"], body["owed"]) == (150, 150, 0, 0)
    wallet = await my_wallet(client, me)
    assert (wallet["available"], wallet["pending"], wallet["pending_lots"]) == (0, 0, [])
    after = (await client.get("/v1/program/budget", headers=program.headers)).json()
    assert after != budget  # the points went back to the budget
    # A second reversal (another key, another reason) changes nothing and answers the first.
    second = await reverse(client, program, invoice, reason="returned again?")
    assert second.status_code == 200 and second.json() == body
    assert await release_due(store, program.id, datetime.now(timezone.utc) + timedelta(days=60)) == 0
    assert (await my_wallet(client, me))["available"] == 0
    missing = await reverse(client, program, "INV-never-sent")
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    await feed_until(client, me, lambda t: any(x.startswith("-150 ThermoPoints: pending points cancelled, sale " + invoice)
                                   for x in t))
    await settled(store.client, program)


async def test_a_return_after_release_with_too_little_left_owes_the_rest_paid_by_the_next_award(client, store) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client, point_name="ThermoPoints")
    await rule(client, program, activity_type="sale", award={"type": "fixed", "points": 100})
    person, me = await seller(client, program)
    invoice = random_ref("INV")
    await sale(client, program, person, invoice)
    spent = await client.post("/v1/points/deductions", json={"participant_id": person["id"], "points": 70,
                                                             "reason": "redeemed elsewhere"},
                              headers={**program.headers, "Idempotency-Key": random_ref()})
    assert spent.status_code == 201
    key = random_ref("rev")
    first = await reverse(client, program, invoice, key=key)
    body = first.json()
    assert (body["taken_back"], body["owed"]) == (30, 70), body
    retried = await reverse(client, program, invoice, key=key)
    assert retried.headers.get("idempotent-replayed") == "true" and retried.json() == body
    wallet = await my_wallet(client, me)
    assert (wallet["available"], wallet["owed"]) == (0, 70)
    # A grant of 50 pays 50 of it; the next sale's 100 pays the last 20 and leaves 80.
    assert (await grant(client, program, person["id"], 50)).status_code == 201
    assert (await my_wallet(client, me))["owed"] == 20
    await sale(client, program, person, random_ref("INV"))
    wallet = await my_wallet(client, me)
    assert wallet["available"] == 80 and "owed" not in wallet
    # The feed is written by the journal projector: wait for the last line, the second sale's.
    texts = await feed_until(client, me, lambda t: "-20 ThermoPoints: paid back what a returned sale left owing" in t)
    assert any(x.startswith(f"-30 ThermoPoints: taken back, sale {invoice} returned") for x in texts)
    assert any(x.startswith(f"70 ThermoPoints owed, sale {invoice}") for x in texts)
    assert "-20 ThermoPoints: paid back what a returned sale left owing" in texts
    await settled(store.client, program)
    # After a Redis loss, the ledger brings back owed points and the reversal's record.
    redis = store.client
    await redis.delete(f"rw:{{p:{program.id}}}:rev:{body['activity_id']}")
    await rebuild_program(redis, program.id, [person["id"]])
    assert await reconcile_program(redis, program.id) == []
    again = await reverse(client, program, invoice)
    assert again.json() == body
    assert (await my_wallet(client, me))["available"] == 80


async def test_a_rebuild_restores_pending_lots(client, store) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    await rule(client, program, activity_type="sale", award={"type": "fixed", "points": 40}, pending_days=3)
    person, me = await seller(client, program)
    for _ in range(2):
        await sale(client, program, person, random_ref("INV"))
    before = await my_wallet(client, me)
    path = f"/v1/participants/{person['id']}/pending-lots"
    first = (await client.get(path, params={"limit": 1}, headers=program.headers)).json()
    rest = (await client.get(path, params={"limit": 1, "cursor": first["next_cursor"]}, headers=program.headers)).json()
    assert rest["next_cursor"] is None and len({first["items"][0]["id"], rest["items"][0]["id"]}) == 2
    await settled(store.client, program)
    redis = store.client
    await redis.delete(f"rw:{{p:{program.id}}}:pl:{person['id']}", f"rw:{{p:{program.id}}}:lots:due")
    await rebuild_program(redis, program.id, [person["id"]])
    assert await my_wallet(client, me) == before
    books = (await client.get("/v1/program/ledger", headers=program.headers)).json()
    assert books["participants_pending"] == 80
    due = datetime.fromisoformat(before["pending_lots"][0]["releases_at"].replace("Z", "+00:00"))
    assert await release_due(store, program.id, due) == 2
    await settled(store.client, program)


@pytest.mark.parametrize("counts", [False, True])
async def test_pending_points_count_on_boards_only_if_the_program_says_so(client, store, counts: bool) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client, pending_counts_on_boards=counts)
    board = await leaderboard(client, program)
    await rule(client, program, activity_type="sale", award={"type": "fixed", "points": 60}, pending_days=1)
    person, _ = await seller(client, program)
    awarded = await sale(client, program, person, random_ref("INV"))
    assert await standings_of(client, program, board["id"]) == ([(person["id"], 60)] if counts else [])
    due = datetime.fromisoformat(awarded["awards"][0]["releases_at"].replace("Z", "+00:00"))
    assert await release_due(store, program.id, due) == 1
    assert await standings_of(client, program, board["id"]) == [(person["id"], 60)]


async def test_a_rule_cannot_wait_both_ways(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    response = await client.post("/v1/earning-rules", json={
        "name": "both", "activity_type": "sale", "award": {"type": "fixed", "points": 1}, "pending_days": 2,
        "pending_until": "approval"}, headers=program.headers)
    assert response.status_code in (400, 422) and "pending" in response.text


async def test_a_returned_sale_that_earned_nothing_changes_nothing(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    person, me = await seller(client, program)
    invoice = random_ref("INV")
    await sale(client, program, person, invoice)  # no rule: earns nothing
    response = await reverse(client, program, invoice)
    assert response.status_code == 200, response.text
    assert response.json()["steps"] == [] and response.json()["points"] == 0
    assert (await reverse(client, program, invoice)).json() == response.json()


def racing_award(program: ProgramHandle, person: dict[str, Any], activity_id: str, points: int) -> GrantSpec:
    """The award evaluate() makes for a sale (programs/earning.py), as its wallet call sees it."""
    key = f"{activity_id}:rul_race:{person['id']}"
    return GrantSpec(idem=Idem(key=kernel_keys.idempotency(program.id, "award", key), fingerprint="award"),
                     tx=new_id("tx"), participant_id=person["id"], points=points, kind="award",
                     reference=activity_id, metadata='{"reason": "Race"}')


async def award_row(program: ProgramHandle, spec: GrantSpec) -> None:
    """The award's SQL row, written after its wallet call, as evaluate() writes it."""
    await Award.insert(Award(award_key=f"{spec.reference}:rul_race:{spec.participant_id}", program_id=program.id,
                             activity_id=spec.reference, rule_id="rul_race", rule_version=1,
                             participant_id=spec.participant_id, points=spec.points, outcome="granted",
                             transaction_id=spec.tx, created_at=datetime.now(timezone.utc))).run()


async def test_an_award_paid_while_its_sale_is_returned_is_taken_back(client, store) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    person, me = await seller(client, program)
    # A rule's award for a sale is paid, and its SQL row never comes (its process died right
    # after the wallet call): the return finds the award in the ledger and takes it back.
    lost = random_ref("INV")
    activity_id = (await sale(client, program, person, lost))["activity_id"]  # no rule: earns nothing yet
    [paid] = await store.award_batch(program.id, [racing_award(program, person, activity_id, 100)])
    assert paid.ok and paid.points == 100
    await projected(store.client, program.id, "pending-test")
    back = await reverse(client, program, lost)
    assert back.status_code == 200, back.text
    assert (back.json()["points"], back.json()["taken_back"]) == (100, 100)
    assert (await my_wallet(client, me))["available"] == 0
    # Another sale's award row arrives while its return waits for it (the use case and the
    # row's writer on one loop: the test client answers a request before the test's loop
    # runs again). Taken back, from the row or from the ledger, whichever comes first.
    late = random_ref("INV")
    activity_id = (await sale(client, program, person, late))["activity_id"]
    spec = racing_award(program, person, activity_id, 60)
    assert (await store.award_batch(program.id, [spec]))[0].ok

    async def row_a_moment_later() -> None:
        await asyncio.sleep(0.1)
        await award_row(program, spec)

    (view, replayed), _ = await asyncio.gather(
        reverse_sale(store, program.id, ReversalRequest(external_id=late, reason="returned")), row_a_moment_later())
    assert (view.points, view.taken_back, replayed) == (60, 60, False)
    assert (await my_wallet(client, me))["available"] == 0
    await settled(store.client, program)


async def test_an_award_paid_after_a_refusal_has_its_row_so_it_is_paid_once_and_taken_back(client, store) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    person, _ = await seller(client, program)  # deactivated below: their tokens stop
    invoice = random_ref("INV")
    activity_id = (await sale(client, program, person, invoice))["activity_id"]
    # A rule written after the sale, applied while the seller is away: refused, a row of 0.
    assert (await client.patch(f"/v1/participants/{person['id']}", json={"status": "deactivated"},
                               headers=program.headers)).status_code == 200
    late = await rule(client, program, activity_type="sale", award={"type": "fixed", "points": 100})
    window = {"starts_at": (NOW - timedelta(minutes=1)).isoformat(), "ends_at": (NOW + timedelta(minutes=1)).isoformat()}

    async def apply() -> Any:
        response = await client.post(f"/v1/earning-rules/{late['id']}/apply", json=window,
                                     headers={**program.headers, "Idempotency-Key": random_ref()})
        assert response.status_code == 200, response.text
        return response.json()

    assert (await apply())["points_awarded"] == 0
    assert (await client.patch(f"/v1/participants/{person['id']}", json={"status": "active"},
                               headers=program.headers)).status_code == 200
    assert (await apply())["points_awarded"] == 100  # back: the award is paid, and its row says so
    assert await available(client, program, person["id"]) == 100
    # Applied again once the award's idempotency record expired (2 days): the row says it
    # was paid, so nothing is paid twice.
    await store.client.delete(kernel_keys.idempotency(program.id, "award", f"{activity_id}:{late['id']}:{person['id']}"))
    assert (await apply())["points_awarded"] == 0
    assert await available(client, program, person["id"]) == 100
    back = await reverse(client, program, invoice)
    assert (back.status_code, back.json()["taken_back"]) == (200, 100), back.text
    assert await available(client, program, person["id"]) == 0
    await settled(store.client, program)


async def test_an_award_that_reaches_the_wallet_after_its_sale_was_returned_pays_nothing(client, store) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    person, me = await seller(client, program)
    invoice = random_ref("INV")
    activity_id = (await sale(client, program, person, invoice))["activity_id"]
    assert (await reverse(client, program, invoice)).status_code == 200
    budget = (await client.get("/v1/program/budget", headers=program.headers)).json()
    # An evaluation that checked the sale just before it was returned: its call pays nothing.
    [late] = await store.award_batch(program.id, [racing_award(program, person, activity_id, 100)])
    assert not late.ok and late.code == "activity_reversed", late
    assert (await my_wallet(client, me))["available"] == 0
    assert (await client.get("/v1/program/budget", headers=program.headers)).json() == budget
    await settled(store.client, program)


async def test_a_returned_sale_takes_back_the_free_spins_its_award_gave_that_are_left(client, store) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client, point_name="ThermoPoints")
    await rule(client, program, activity_type="sale", award={"type": "fixed", "points": 100}, free_spins=3)
    wheel = await points_wheel(client, program, 5, cost_points=10)
    person, me = await seller(client, program)
    invoice = random_ref("INV")
    await sale(client, program, person, invoice)
    assert (await client.get("/v1/me/campaigns", headers=me)).json()["free_spins"] == 3
    spun = await spin(client, wheel, me)  # one token spent: that spin stays made
    assert spun.status_code == 201 and spun.json()["free_spins"] == 2, spun.text
    back = await reverse(client, program, invoice)
    assert back.status_code == 200, back.text
    assert (back.json()["free_spins"], back.json()["steps"][0]["free_spins"], back.json()["taken_back"]) == (2, 2, 100)
    assert (await client.get("/v1/me/campaigns", headers=me)).json()["free_spins"] == 0
    assert (await reverse(client, program, invoice)).json() == back.json()  # once
    await feed_until(client, me, lambda t: any(x.startswith(f"2 free spins taken back, sale {invoice} returned")
                                               for x in t))
    await settled(store.client, program)
    # Redis lost the wallet's tokens: the rebuild counts what the ledger says, the return included.
    await store.client.hset(wallet_keys.wallet(program.id, person["id"]), "free_spins", 7)
    await rebuild_program(store.client, program.id, [person["id"]])
    assert (await client.get("/v1/me/campaigns", headers=me)).json()["free_spins"] == 0


async def test_an_approved_claim_under_a_waiting_rule_pends_and_its_return_cancels_the_lot(client, store) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    await rule(client, program, activity_type="sale", award={"type": "fixed", "points": 90}, pending_until="approval")
    person, me = await seller(client, program)
    claim = {"invoice_number": random_ref("INV"), "invoice_date": NOW.date().isoformat(),
             "amount": {"amount": 45_000, "currency": "USD"}, "product": "ThermoPro 200"}
    filed = await client.post("/v1/me/claims", json=claim, headers={**me, "Idempotency-Key": random_ref()})
    assert filed.status_code == 201, filed.text
    approved = await client.post(f"/v1/claims/{filed.json()['id']}/approve", headers=program.headers)
    assert approved.status_code == 200, approved.text
    wallet = await my_wallet(client, me)
    assert (wallet["available"], wallet["pending"], wallet["pending_lots"][0]["releases_at"]) == (0, 90, None)
    returned = await reverse(client, program, f"claim:{filed.json()['id']}")
    assert returned.json()["cancelled"] == 90
    assert (await my_wallet(client, me))["pending"] == 0
    await settled(store.client, program)


# --- what a returned sale must also undo, and what it must never be paid again -------------


async def test_a_returned_sale_lowers_the_boards_its_award_raised_and_no_other(client, store) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    board = await leaderboard(client, program)
    await rule(client, program, activity_type="sale", award={"type": "fixed", "points": 100})
    person, _ = await seller(client, program)
    assert (await grant(client, program, person["id"], 40)).status_code == 201
    invoice = random_ref("INV")
    await sale(client, program, person, invoice)
    assert await standings_of(client, program, board["id"]) == [(person["id"], 140)]
    newer = await leaderboard(client, program)  # created after the sale: it never counted it
    assert (await grant(client, program, person["id"], 10)).status_code == 201
    assert (await reverse(client, program, invoice)).json()["taken_back"] == 100
    assert await standings_of(client, program, board["id"]) == [(person["id"], 50)]
    assert await standings_of(client, program, newer["id"]) == [(person["id"], 10)]
    await settled(store.client, program)


async def test_a_returned_sale_comes_off_the_activity_score_boards_that_counted_it(client, store) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    weights = {"sale": 5, "training": 1}
    people = await leaderboard(client, program, metric="activity_score", weights=weights)
    teams = await leaderboard(client, program, entity="teams", metric="activity_score", weights=weights)
    team = await client.post("/v1/teams", json={"name": random_ref("Dealer")}, headers=program.headers)
    assert team.status_code == 201, team.text
    person = await new_participant(client, program, external_id=random_ref("rep"), team_id=team.json()["id"])
    returned, kept = random_ref("INV"), random_ref("INV")
    await sale(client, program, person, returned)  # no rule: it earns nothing, yet it scores
    await sale(client, program, person, kept)
    assert await standings_of(client, program, people["id"]) == [(person["id"], 10)]
    back = await reverse(client, program, returned)
    assert back.status_code == 200 and back.json()["points"] == 0, back.text
    assert await standings_of(client, program, people["id"]) == [(person["id"], 5)]
    assert await standings_of(client, program, teams["id"]) == [(team.json()["id"], 5)]
    assert (await reverse(client, program, returned)).status_code == 200  # answered again: lowers nothing twice
    assert await standings_of(client, program, people["id"]) == [(person["id"], 5)]
    # A sale returned between its evaluation and the count of its score (the wallet's
    # reversal record written first): the count skips it.
    racing = new_id("act")
    assert (await store.reverse(program.id, racing, [])).ok
    await record_activity_scores(store, program.id, [ActivityFacts(id=racing, type="sale", participant_id=person["id"],
                                                                   occurred_at=NOW, attributes={})])
    assert await standings_of(client, program, people["id"]) == [(person["id"], 5)]


@pytest.mark.parametrize("counts", [False, True])
async def test_a_returned_lot_lowers_the_boards_only_by_what_it_counted(client, store, counts: bool) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client, pending_counts_on_boards=counts)
    board = await leaderboard(client, program)
    await rule(client, program, activity_type="sale", award={"type": "fixed", "points": 60}, pending_until="approval")
    person, _ = await seller(client, program)
    assert (await grant(client, program, person["id"], 40)).status_code == 201
    waiting, released = random_ref("INV"), random_ref("INV")
    await sale(client, program, person, waiting)
    lot = (await sale(client, program, person, released))["awards"][0]["lot_id"]
    if counts:  # the lots counted when awarded: turning the setting off now must not count one twice
        patched = await client.patch("/v1/program", json={"pending_counts_on_boards": False}, headers=program.headers)
        assert patched.status_code == 200, patched.text
    release = await client.post(f"/v1/participants/{person['id']}/pending-lots/{lot}/release",
                                headers={**program.headers, "Idempotency-Key": random_ref()})
    assert release.status_code == 200, release.text
    assert await standings_of(client, program, board["id"]) == [(person["id"], 160 if counts else 100)]
    await settled(store.client, program)
    # The lot still pending lowers the board only if it had counted there.
    assert (await reverse(client, program, waiting)).json()["cancelled"] == 60
    assert await standings_of(client, program, board["id"]) == [(person["id"], 100)]
    # The released one lowers it by what it counted, when awarded or when released.
    assert (await reverse(client, program, released)).json()["taken_back"] == 60
    assert await standings_of(client, program, board["id"]) == [(person["id"], 40)]
    await settled(store.client, program)


async def test_a_returned_sale_is_never_paid_again_by_a_rule_applied_later(client, store) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    await rule(client, program, activity_type="sale", award={"type": "fixed", "points": 100})
    person, me = await seller(client, program)
    returned, kept = random_ref("INV"), random_ref("INV")
    await sale(client, program, person, returned)
    kept_id = (await sale(client, program, person, kept))["activity_id"]
    assert (await reverse(client, program, returned)).json()["taken_back"] == 100
    draft = {"name": "Late bonus", "activity_type": "sale", "award": {"type": "fixed", "points": 30}}
    window = {"starts_at": (NOW - timedelta(minutes=1)).isoformat(), "ends_at": (NOW + timedelta(minutes=1)).isoformat()}
    simulated = await client.post("/v1/earning-rules/simulate", json={"rule": draft, **window}, headers=program.headers)
    assert simulated.json()["total_points"] == 30, simulated.text
    bonus = await rule(client, program, **draft)
    applied = await client.post(f"/v1/earning-rules/{bonus['id']}/apply", json=window,
                                headers={**program.headers, "Idempotency-Key": random_ref()})
    assert applied.status_code == 200, applied.text
    assert applied.json()["points_awarded"] == 30  # the kept sale's bonus only
    assert (await my_wallet(client, me))["available"] == 130
    # Applied again once the award's idempotency record expired (2 days): its row says it was
    # paid, so nothing is paid twice and the reversal below finds every payment.
    await store.client.delete(kernel_keys.idempotency(program.id, "award", f"{kept_id}:{bonus['id']}:{person['id']}"))
    again = await client.post(f"/v1/earning-rules/{bonus['id']}/apply", json=window,
                              headers={**program.headers, "Idempotency-Key": random_ref()})
    assert again.json()["points_awarded"] == 0 and again.json()["awards"][0]["already_awarded"], again.text
    assert (await my_wallet(client, me))["available"] == 130
    # A sale returned after the rule was applied gives back what both rules paid for it.
    back = (await reverse(client, program, kept)).json()
    assert (back["points"], back["taken_back"], back["owed"]) == (130, 130, 0)
    assert (await my_wallet(client, me))["available"] == 0
    await settled(store.client, program)


async def owing(client, program: ProgramHandle, points: int) -> tuple[dict[str, Any], dict[str, str], str]:  # type: ignore[no-untyped-def]
    """A participant whose `points` from a sale were spent before the sale was returned:
    they owe them all."""
    await rule(client, program, activity_type="sale", award={"type": "fixed", "points": points})
    person, me = await seller(client, program)
    invoice = random_ref("INV")
    await sale(client, program, person, invoice)
    return person, me, invoice


async def test_a_spin_points_prize_pays_what_a_returned_sale_left_owing_first(client, store) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client, point_name="ThermoPoints")
    person, me, invoice = await owing(client, program, 100)
    spent = await client.post("/v1/points/deductions", json={"participant_id": person["id"], "points": 100,
                                                             "reason": "redeemed elsewhere"},
                              headers={**program.headers, "Idempotency-Key": random_ref()})
    assert spent.status_code == 201, spent.text
    assert (await reverse(client, program, invoice)).json()["owed"] == 100
    wheel = await points_wheel(client, program, 60)
    first = await spin(client, wheel, me)
    assert first.status_code == 201, first.text
    assert first.json()["balance"]["available"] == 0
    wallet = await my_wallet(client, me)
    assert (wallet["available"], wallet["owed"], wallet["lifetime_earned"]) == (0, 40, 160)
    second = await spin(client, wheel, me)
    assert second.json()["balance"]["available"] == 20
    assert "owed" not in await my_wallet(client, me)
    paid = "ThermoPoints: paid back what a returned sale left owing"
    texts = await feed_until(client, me, lambda t: f"-60 {paid}" in t and f"-40 {paid}" in t)
    assert sum(x.startswith("Won 60 ThermoPoints") for x in texts) == 2
    await settled(store.client, program)


async def test_a_refund_pays_nothing_owed_and_a_sweepstakes_points_prize_does(client, store) -> None:  # type: ignore[no-untyped-def]
    program, _, item = await shop(client, face_value=500, point_name="ThermoPoints")
    person, me, invoice = await owing(client, program, 500)
    order = await redeem(client, me, item["id"])
    assert order.status_code == 201 and order.json()["points"] == 500, order.text
    assert (await reverse(client, program, invoice)).json()["owed"] == 500
    # The cancelled order's points come back in full: a refund is not earnings.
    cancelled = await client.post(f"/v1/me/redemptions/{order.json()['id']}/cancel", headers=me)
    assert cancelled.json()["status"] == "cancelled", cancelled.text
    wallet = await my_wallet(client, me)
    assert (wallet["available"], wallet["owed"]) == (500, 500)
    await won_sweepstakes(client, program, me, 300)  # a 10-point ticket, then the 300-point prize
    wallet = await my_wallet(client, me)
    assert (wallet["available"], wallet["owed"]) == (490, 200)
    await feed_until(client, me, lambda t: "-300 ThermoPoints: paid back what a returned sale left owing" in t)
    await settled(store.client, program)
