"""Sweepstakes through HTTP: design, paid and free entries under one maximum, close by the
admin or by time, the draw with a beacon (given, or fetched from a drand stand-in), prizes
paid once, and a proof that `reward-wallet verify` accepts."""

from __future__ import annotations

import asyncio
import hashlib
import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from games.drand import ChainInfo, first_round_after
from games.fairness import parse_entries_file
from tests.factories import bearer, buy_entries, fund, grant, later, new_participant, new_program, new_sweepstakes, \
    random_ref, shop, sweepstakes_design, tokens_for

pytestmark = pytest.mark.sql

REWARD_WALLET = str(Path(sys.executable).parent / "reward-wallet")
BEACON = {"source": "drand quicknet", "round": 1234, "value": "drand-quicknet-round-1234:abcdef"}


async def entrant(client: Any, program: Any, points: int) -> tuple[str, dict[str, str]]:
    person = await new_participant(client, program)
    if points:
        assert (await grant(client, program, person["id"], points)).status_code == 201
    return person["id"], bearer((await tokens_for(client, program, person["id"]))["access_token"])


async def give(client: Any, program: Any, sweepstakes_id: str, participant_id: str, count: int,
               reason: str = "mail-in entry") -> Any:
    return await client.post(f"/v1/sweepstakes/{sweepstakes_id}/free-entries",
                             json={"participant_id": participant_id, "count": count, "reason": reason},
                             headers={**program.headers, "Idempotency-Key": random_ref("free")})


async def available(client: Any, headers: dict[str, str]) -> int:
    return int((await client.get("/v1/me/wallet", headers=headers)).json()["available"])


def verify(tmp_path: Path, proof: dict[str, Any], entries: bytes) -> subprocess.CompletedProcess[str]:
    (tmp_path / "proof.json").write_text(json.dumps(proof))
    (tmp_path / "entries.csv").write_bytes(entries)
    return subprocess.run([REWARD_WALLET, "verify", "sweepstakes", str(tmp_path / "proof.json"), "--entries",
                           str(tmp_path / "entries.csv")], capture_output=True, text=True, timeout=60, env={})


async def test_a_sweepstakes_end_to_end_entries_close_draw_and_a_proof_the_cli_verifies(client, redis,  # type: ignore[no-untyped-def]
                                                                                        tmp_path: Path) -> None:
    program = await new_program(client, point_name="ThermoPoints")
    created = await new_sweepstakes(client, program)
    sid = created["id"]
    assert created["status"] == "open" and len(created["server_seed_hash"]) == 64
    assert "NO PURCHASE" in created["rules"] and "alternate method of entry" in created["rules"]
    assert created["prizes"][0]["retail_value"] == {"amount": 1000, "currency": "USD"}
    assert created["odds"]["total_tickets"] == 0 and created["odds"]["chance_per_ticket"] is None

    people = [await entrant(client, program, 100) for _ in range(4)]
    (a, a_tok), (b, b_tok), (c, c_tok), (d, d_tok) = people
    first = await buy_entries(client, sid, a_tok, 3, key="a-first")
    assert first.status_code == 201, first.text
    assert (first.json()["count"], first.json()["points"], first.json()["tickets"]) == (3, 30, 3)
    assert first.json()["balance"] == {"available": 70, "held": 0}
    replay = await buy_entries(client, sid, a_tok, 3, key="a-first")
    assert replay.status_code == 201 and replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json() and await available(client, a_tok) == 70
    assert (await buy_entries(client, sid, a_tok, 2, key="a-first")).json()["code"] == "idempotency_key_reused"
    assert (await buy_entries(client, sid, b_tok, 5)).status_code == 201
    over = await buy_entries(client, sid, b_tok, 1)
    assert over.status_code == 409 and over.json()["code"] == "limit_reached"
    # Free entries: same tickets, same maximum, no points.
    assert (await buy_entries(client, sid, c_tok, 2)).status_code == 201
    free = await give(client, program, sid, c, 3)
    assert free.status_code == 201, free.text
    assert (free.json()["points"], free.json()["tickets"]) == (0, 5)
    assert await available(client, c_tok) == 80
    capped = await give(client, program, sid, c, 1)
    assert capped.status_code == 409 and capped.json()["code"] == "limit_reached"
    assert (await give(client, program, sid, d, 1)).status_code == 201
    poor_id, poor = await entrant(client, program, 15)
    broke = await buy_entries(client, sid, poor, 2)
    assert broke.status_code == 422 and broke.json()["code"] == "insufficient_points"
    assert await available(client, poor) == 15

    mine = (await client.get("/v1/me/sweepstakes", headers=a_tok)).json()["items"]
    assert [(m["sweepstakes"]["id"], m["my_tickets"], m["tickets_left"]) for m in mine] == [(sid, 3, 2)]
    assert mine[0]["sweepstakes"]["odds"]["total_tickets"] == 14 and mine[0]["my_chance"] == pytest.approx(3 / 14)

    assert (await client.get(f"/v1/public/sweepstakes/{sid}/entries.csv")).status_code == 404
    assert (await client.get(f"/v1/public/sweepstakes/{sid}/proof")).status_code == 404
    early = await client.post(f"/v1/sweepstakes/{sid}/draw", json={"beacon": BEACON}, headers=program.headers)
    assert early.status_code == 409

    closed = await client.post(f"/v1/sweepstakes/{sid}/close", headers=program.headers)
    assert closed.status_code == 200, closed.text
    assert closed.json()["status"] == "closed" and len(closed.json()["entries_hash"]) == 64
    late = await buy_entries(client, sid, d_tok, 1)
    assert late.status_code == 409 and late.json()["code"] == "sweepstakes_closed"
    assert (await give(client, program, sid, d, 1)).json()["code"] == "sweepstakes_closed"

    entries = await client.get(f"/v1/public/sweepstakes/{sid}/entries.csv")
    assert entries.status_code == 200 and entries.headers["content-type"].startswith("text/csv")
    assert hashlib.sha256(entries.content).hexdigest() == closed.json()["entries_hash"]
    listed = parse_entries_file(entries.content)
    assert sorted(t for _, t in listed) == [1, 3, 5, 5] and all(a not in entries.text for a, _ in people)
    assert poor_id not in entries.text

    no_beacon = await client.post(f"/v1/sweepstakes/{sid}/draw", json={}, headers=program.headers)
    assert no_beacon.status_code == 422 and no_beacon.json()["code"] == "validation_error"
    drawn = await client.post(f"/v1/sweepstakes/{sid}/draw", json={"beacon": BEACON}, headers=program.headers)
    assert drawn.status_code == 200, drawn.text
    proof = drawn.json()
    assert proof["server_seed_hash"] == created["server_seed_hash"] and proof["beacon"] == BEACON
    assert (len(proof["winners"]), len(proof["alternates"]), proof["total_tickets"], proof["entrants"]) == (2, 2, 14, 4)
    assert (await client.get(f"/v1/public/sweepstakes/{sid}/proof")).json() == proof

    assert verify(tmp_path, proof, entries.content).returncode == 0
    tampered = {**proof, "winners": list(reversed(proof["winners"]))}
    assert verify(tmp_path, tampered, entries.content).returncode == 1

    # Winners are paid once, from the budget, with a feed message.
    report = (await client.get(f"/v1/sweepstakes/{sid}/report", headers=program.headers)).json()
    assert (report["paid_tickets"], report["free_tickets"], report["points_collected"]) == (10, 4, 100)
    picks = {w["public_id"]: w for w in report["winners"]}
    tokens = dict((pid, tok) for pid, tok in people)
    balances_before = {pid: await available(client, tok) for pid, tok in people}
    winner_ids = [picks[p]["participant_id"] for p in proof["winners"]]
    assert [picks[p]["status"] for p in proof["winners"]] == ["paid", "paid"]
    assert [picks[p]["status"] for p in proof["alternates"]] == ["alternate", "alternate"]
    feed = (await client.get("/v1/me/feed", headers=tokens[winner_ids[0]])).json()["items"]
    assert feed[0]["text"] == "+1,000 ThermoPoints: you won Q4 dealer sweepstakes"
    again = await client.post(f"/v1/sweepstakes/{sid}/draw", json={"beacon": {**BEACON, "value": "other"}},
                              headers=program.headers)
    assert again.status_code == 200 and again.json() == proof
    assert {pid: await available(client, tok) for pid, tok in people} == balances_before
    spent = {a: 30, b: 50, c: 20, d: 0}
    prize = dict(zip(winner_ids, (1000, 500)))
    assert balances_before == {pid: 100 - spent[pid] + prize.get(pid, 0) for pid, _ in people}
    from wallet.store import WalletStore

    assert (await WalletStore(redis).program_accounts(program.id))["sweepstakes"] == 100


async def test_an_item_prize_becomes_an_order_for_the_winner(client) -> None:  # type: ignore[no-untyped-def]
    program, _, item = await shop(client)
    sweep = await new_sweepstakes(client, program, winners=1, alternates=0, entry_cost_points=0,
                         prizes=[{"type": "item", "item_id": item["id"]}])
    assert sweep["prizes"][0]["retail_value"] == {"amount": 2500, "currency": "USD"}
    pid, tok = await entrant(client, program, 0)
    assert (await buy_entries(client, sweep["id"], tok, 1)).status_code == 201
    await client.post(f"/v1/sweepstakes/{sweep['id']}/close", headers=program.headers)
    for _ in range(2):  # a retried draw places no second order
        drawn = await client.post(f"/v1/sweepstakes/{sweep['id']}/draw", json={"beacon": BEACON},
                                  headers=program.headers)
        assert drawn.status_code == 200, drawn.text
    orders = (await client.get("/v1/me/redemptions", headers=tok)).json()["items"]
    assert [(o["item_id"], o["points"]) for o in orders] == [(item["id"], 0)]


async def test_a_prize_not_paid_passes_to_the_next_alternate_on_forfeit(client, redis) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client, allow_overdraft=False)
    await fund(redis, program, 30)
    sweep = await new_sweepstakes(client, program, winners=1, alternates=2, prizes=[{"type": "points", "points": 500}])
    people = dict([await entrant(client, program, 10) for _ in range(3)])
    for tok in people.values():
        assert (await buy_entries(client, sweep["id"], tok, 1)).status_code == 201
    await client.post(f"/v1/sweepstakes/{sweep['id']}/close", headers=program.headers)
    drawn = await client.post(f"/v1/sweepstakes/{sweep['id']}/draw", json={"beacon": BEACON}, headers=program.headers)
    assert drawn.status_code == 200, drawn.text
    report = (await client.get(f"/v1/sweepstakes/{sweep['id']}/report", headers=program.headers)).json()
    assert [(w["pick"], w["role"], w["status"]) for w in report["winners"]] == [
        (1, "winner", "failed"), (2, "alternate", "alternate"), (3, "alternate", "alternate")]
    assert "budget" in report["winners"][0]["detail"]
    await fund(redis, program, 500)
    url = f"/v1/sweepstakes/{sweep['id']}/winners/{{}}/forfeit"
    forfeited = await client.post(url.format(1), json={"reason": "did not claim in 14 days"}, headers=program.headers)
    assert forfeited.status_code == 200, forfeited.text
    picks = forfeited.json()["winners"]
    assert [(w["pick"], w["role"], w["status"]) for w in picks] == [
        (1, "winner", "forfeited"), (2, "winner", "paid"), (3, "alternate", "alternate")]
    assert picks[1]["detail"] == "replaces pick 1" and picks[1]["transaction_id"]
    assert await available(client, people[picks[1]["participant_id"]]) == 500
    assert await available(client, people[picks[0]["participant_id"]]) == 0
    assert (await client.post(url.format(1), json={"reason": "again"}, headers=program.headers)).status_code == 409
    assert (await client.post(url.format(2), json={"reason": "paid"}, headers=program.headers)).status_code == 409
    assert (await client.post(url.format(3), json={"reason": "alt"}, headers=program.headers)).status_code == 404
    assert (await client.post(url.format(9), json={}, headers=program.headers)).status_code == 400


async def test_entries_stop_at_the_close_time_and_the_file_is_published_on_first_sight(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    sweep = await new_sweepstakes(client, program, closes_at=later(1.0), prizes=[])
    _, tok = await entrant(client, program, 100)
    assert (await buy_entries(client, sweep["id"], tok, 2)).status_code == 201
    await asyncio.sleep(1.2)
    late = await buy_entries(client, sweep["id"], tok, 1)
    assert late.status_code == 409 and late.json()["code"] == "sweepstakes_closed"
    assert await available(client, tok) == 80
    entries = await client.get(f"/v1/public/sweepstakes/{sweep['id']}/entries.csv")
    assert entries.status_code == 200 and parse_entries_file(entries.content)[0][1] == 2
    view = (await client.get(f"/v1/sweepstakes/{sweep['id']}", headers=program.headers)).json()
    assert view["status"] == "closed" and view["entries_hash"] == hashlib.sha256(entries.content).hexdigest()


async def test_entries_before_the_start_are_refused(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    sweep = await new_sweepstakes(client, program, starts_at=later(600))
    _, tok = await entrant(client, program, 100)
    early = await buy_entries(client, sweep["id"], tok, 1)
    assert early.status_code == 409 and early.json()["code"] == "sweepstakes_not_open"


@pytest.mark.parametrize("change, status", [
    ({"closes_at": "2020-01-01T00:00:00Z"}, 422),
    ({"closes_at": "2030-01-01T00:00:00"}, 400),  # no time zone
    ({"starts_at": "2999-01-01T00:00:00Z"}, 422),
    ({"winners": 0}, 400),
    ({"winners": 3}, 422),  # prizes cover 2
    ({"entry_cost_points": -1}, 400),
    ({"prizes": [{"type": "item", "item_id": "item_nope", "quantity": 2}]}, 422),
    ({"odds": "rigged"}, 400),
    ({"entry_cost_points": 10**9, "max_entries_per_participant": 10**9}, 422),  # past exact Lua arithmetic
    # 1.23e14 would reach the journal in Lua's 14-digit JSON and stop the ledger's projection.
    ({"entry_cost_points": 123_456_789, "max_entries_per_participant": 1_000_000}, 422),
])
async def test_bad_designs_are_refused_with_a_problem(client, change: dict[str, Any], status: int) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    response = await client.post("/v1/sweepstakes", json=sweepstakes_design(**change), headers=program.headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert (await client.get("/v1/sweepstakes", headers=program.headers)).json()["items"] == []


async def test_bad_requests_change_nothing_and_other_programs_see_nothing(client) -> None:  # type: ignore[no-untyped-def]
    program, other = await new_program(client), await new_program(client)
    sweep = await new_sweepstakes(client, program)
    pid, tok = await entrant(client, program, 100)
    url = f"/v1/me/sweepstakes/{sweep['id']}/entries"
    assert (await client.post(url, json={"count": 1}, headers=tok)).status_code == 400  # no Idempotency-Key
    for body in ({"count": 0}, {"count": -3}, {"count": 1, "extra": 1}, {}, {"count": 2**40}):
        response = await client.post(url, json=body, headers={**tok, "Idempotency-Key": random_ref()})
        assert response.status_code == 400, response.text
    assert (await buy_entries(client, "swp_nope", tok, 1)).status_code == 404
    assert (await give(client, program, sweep["id"], "pt_nope", 1)).status_code == 404
    assert await available(client, tok) == 100
    assert (await client.get(f"/v1/sweepstakes/{sweep['id']}", headers=other.headers)).status_code == 404
    assert (await client.post(f"/v1/sweepstakes/{sweep['id']}/close", headers=other.headers)).status_code == 404
    assert (await give(client, other, sweep["id"], pid, 1)).status_code == 404
    assert (await client.post(f"/v1/sweepstakes/{sweep['id']}/close", headers=tok)).status_code == 403
    bad_beacon = await client.post(f"/v1/sweepstakes/{sweep['id']}/draw", headers=program.headers,
                                   json={"beacon": {"source": "x", "round": 1}})
    assert bad_beacon.status_code == 400
    assert (await client.get("/v1/public/sweepstakes/swp_nope/proof")).status_code == 404


async def test_the_maximum_holds_under_many_concurrent_purchases(client, live_server) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    sweep = await new_sweepstakes(client, program, max_entries_per_participant=7)
    _, tok = await entrant(client, program, 10_000)
    url = f"{live_server.url}/v1/me/sweepstakes/{sweep['id']}/entries"

    async def one(http: httpx.AsyncClient) -> httpx.Response:
        return await http.post(url, json={"count": 1}, headers={**tok, "Idempotency-Key": random_ref()})

    # Separate connections, all at once: requests race inside the server, not in one client.
    limits = httpx.Limits(max_connections=60)
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:
        answers = await asyncio.gather(*(one(http) for _ in range(60)))
    statuses = sorted(r.status_code for r in answers)
    assert statuses.count(201) == 7 and statuses.count(409) == 53, statuses
    assert {r.json()["code"] for r in answers if r.status_code == 409} == {"limit_reached"}
    assert sorted(r.json()["tickets"] for r in answers if r.status_code == 201) == list(range(1, 8))
    assert await available(client, tok) == 10_000 - 70


async def test_a_close_racing_many_purchases_freezes_exactly_the_accepted_entries(client, live_server) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    sweep = await new_sweepstakes(client, program, max_entries_per_participant=1000)
    people = [await entrant(client, program, 1000) for _ in range(8)]
    base = live_server.url

    async def purchase(http: httpx.AsyncClient, tok: dict[str, str]) -> httpx.Response:
        return await http.post(f"{base}/v1/me/sweepstakes/{sweep['id']}/entries", json={"count": 1},
                               headers={**tok, "Idempotency-Key": random_ref()})

    async def close_soon(http: httpx.AsyncClient) -> httpx.Response:
        await asyncio.sleep(0.05)
        return await http.post(f"{base}/v1/sweepstakes/{sweep['id']}/close", headers=program.headers)

    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=50), timeout=30) as http:
        answers = await asyncio.gather(close_soon(http), *(purchase(http, tok) for _, tok in people * 25))
    assert answers[0].status_code == 200
    accepted = [r for r in answers[1:] if r.status_code == 201]
    refused = [r for r in answers[1:] if r.status_code != 201]
    assert {r.json()["code"] for r in refused} <= {"sweepstakes_closed"}
    entries = parse_entries_file((await client.get(f"/v1/public/sweepstakes/{sweep['id']}/entries.csv")).content)
    assert sum(t for _, t in entries) == len(accepted) == answers[0].json()["odds"]["total_tickets"]
    spent = sum([1000 - await available(client, tok) for _, tok in people])
    assert spent == 10 * len(accepted)


async def test_a_sweepstakes_nobody_entered_draws_no_one_and_still_verifies(client, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    sweep = await new_sweepstakes(client, program)
    await client.post(f"/v1/sweepstakes/{sweep['id']}/close", headers=program.headers)
    drawn = await client.post(f"/v1/sweepstakes/{sweep['id']}/draw", json={"beacon": BEACON}, headers=program.headers)
    assert drawn.status_code == 200, drawn.text
    assert (drawn.json()["winners"], drawn.json()["alternates"], drawn.json()["entrants"]) == ([], [], 0)
    entries = (await client.get(f"/v1/public/sweepstakes/{sweep['id']}/entries.csv")).content
    assert entries == b"participant,tickets\n"
    assert verify(tmp_path, drawn.json(), entries).returncode == 0


# --- A drand stand-in on loopback ----------------------------------------------------


class DrandStandIn:
    """drand's two HTTP endpoints, with a one-second period starting shortly before now."""

    def __init__(self) -> None:
        self.info = {"genesis_time": int(datetime.now(timezone.utc).timestamp()) - 100, "period": 1,
                     "public_key": "stand-in", "hash": "stand-in"}
        self.asked: list[int] = []
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the stdlib's name)
                if self.path == "/info":
                    self._answer(200, stand_in.info)
                elif self.path.startswith("/public/") and self.path[8:].isdigit():
                    number = int(self.path[8:])
                    stand_in.asked.append(number)
                    self._answer(200, {"round": number, "randomness": stand_in.randomness(number),
                                       "signature": "00"})
                else:
                    self._answer(404, {"error": "not found"})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @staticmethod
    def randomness(number: int) -> str:
        return hashlib.sha256(f"round {number}".encode()).hexdigest()


@pytest.fixture
def drand() -> Iterator[DrandStandIn]:
    stand_in = DrandStandIn()
    stand_in.thread.start()
    yield stand_in
    stand_in.server.shutdown()
    stand_in.server.server_close()


async def test_without_a_beacon_the_draw_uses_the_first_drand_round_after_the_close(settings, migrated,  # type: ignore[no-untyped-def]
                                                                                    drand: DrandStandIn,
                                                                                    tmp_path: Path) -> None:
    from litestar.testing import AsyncTestClient

    from api.app import create_app

    app = create_app(msgspec.structs.replace(settings, drand_url=drand.url, journal_consumer=False,
                                             background_tasks=False))
    async with AsyncTestClient(app=app, base_url="http://rw.test") as client:
        program = await new_program(client)
        sweep = await new_sweepstakes(client, program)
        _, tok = await entrant(client, program, 100)
        assert (await buy_entries(client, sweep["id"], tok, 2)).status_code == 201
        closed = (await client.post(f"/v1/sweepstakes/{sweep['id']}/close", headers=program.headers)).json()
        closed_at = datetime.fromisoformat(closed["closed_at"])
        expected = first_round_after(ChainInfo(genesis_time=drand.info["genesis_time"], period=1), closed_at)
        drawn = await client.post(f"/v1/sweepstakes/{sweep['id']}/draw", headers=program.headers)
        if drawn.status_code == 409:  # the round after the close is at most a second away
            await asyncio.sleep(1.1)
            drawn = await client.post(f"/v1/sweepstakes/{sweep['id']}/draw", headers=program.headers)
        assert drawn.status_code == 200, drawn.text
        proof = drawn.json()
        assert proof["beacon"]["round"] == expected and drand.asked == [expected]
        assert proof["beacon"]["value"] == DrandStandIn.randomness(expected)
        assert drand.info["genesis_time"] + (expected - 1) > closed_at.timestamp()
        entries = (await client.get(f"/v1/public/sweepstakes/{sweep['id']}/entries.csv")).content
        assert verify(tmp_path, proof, entries).returncode == 0


async def test_a_drand_service_that_does_not_answer_is_a_503_and_changes_nothing(settings, migrated) -> None:  # type: ignore[no-untyped-def]
    from litestar.testing import AsyncTestClient

    from api.app import create_app
    from tests.conftest import free_port

    app = create_app(msgspec.structs.replace(settings, drand_url=f"http://127.0.0.1:{free_port()}",
                                             journal_consumer=False, background_tasks=False))
    async with AsyncTestClient(app=app, base_url="http://rw.test") as client:
        program = await new_program(client)
        sweep = await new_sweepstakes(client, program)
        await client.post(f"/v1/sweepstakes/{sweep['id']}/close", headers=program.headers)
        drawn = await client.post(f"/v1/sweepstakes/{sweep['id']}/draw", headers=program.headers)
        assert drawn.status_code == 503 and drawn.json()["code"] == "unavailable"
        view = (await client.get(f"/v1/sweepstakes/{sweep['id']}", headers=program.headers)).json()
        assert view["status"] == "closed"


async def test_tickets_bought_leave_the_budget_outstanding_figure(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    sweep = await new_sweepstakes(client, program)
    _, me = await entrant(client, program, 100)
    assert (await buy_entries(client, sweep["id"], me, 3)).status_code == 201
    budget = (await client.get("/v1/program/budget", headers=program.headers)).json()
    # Outstanding is the liability: exactly what the participant still holds.
    assert await available(client, me) == 70
    assert budget["outstanding"]["points"] == 70
    assert budget["spent_on_games"]["points"] == 30
    assert budget["issued"]["points"] == 100


async def test_a_points_prize_is_paid_once_even_when_the_draw_is_retried_after_the_key_expired(client, redis) -> None:  # type: ignore[no-untyped-def]
    from games.sweepstakes.tables import SweepstakesWinner
    from kernel import keys as kernel_keys

    program = await new_program(client)
    sweep = await new_sweepstakes(client, program, winners=1, alternates=0, prizes=[{"type": "points", "points": 700}])
    person, tok = await entrant(client, program, 10)
    assert (await buy_entries(client, sweep["id"], tok, 1)).status_code == 201
    await client.post(f"/v1/sweepstakes/{sweep['id']}/close", headers=program.headers)
    draw = f"/v1/sweepstakes/{sweep['id']}/draw"
    assert (await client.post(draw, json={"beacon": BEACON}, headers=program.headers)).status_code == 200
    assert await available(client, tok) == 700
    for _ in range(100):  # the prize reaches the SQL ledger
        history = (await client.get(f"/v1/participants/{person}/transactions", headers=program.headers)).json()
        if any(t["kind"] == "sweepstakes_prize" for t in history["items"]):
            break
        await asyncio.sleep(0.1)
    # The payer crashed after the grant but before marking the pick paid, and the retry
    # comes after the payment's idempotency record has expired.
    await SweepstakesWinner.update({SweepstakesWinner.status: "pending"}).where(
        SweepstakesWinner.id == f"{sweep['id']}:1").run()
    await redis.delete(kernel_keys.idempotency(program.id, "sweepstakes", f"{sweep['id']}:1"))

    again = await client.post(draw, json={"beacon": BEACON}, headers=program.headers)
    assert again.status_code == 200, again.text
    assert await available(client, tok) == 700
    report = (await client.get(f"/v1/sweepstakes/{sweep['id']}/report", headers=program.headers)).json()
    paid = [t for t in history["items"] if t["kind"] == "sweepstakes_prize"]
    assert [(w["status"], w["transaction_id"]) for w in report["winners"]] == [("paid", paid[0]["id"])]
