"""The lean path (api/lean.py): the hot routes answer without Litestar's router, and a caller
cannot tell them apart from Litestar's answers: same statuses, bodies, problem documents and
headers, for successes, refusals and bad input alike."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from litestar._asgi.asgi_router import ASGIRouter

from tests.factories import (
    another_worker, bearer, grant, launched_wheel, new_participant, new_program, projected, random_ref, redeem, shop,
    shopper, tokens_for, upload_codes,
)

# Headers whose value differs between two answers by nature (a new id, a clock).
VARYING = {"x-request-id", "date", "ratelimit-remaining", "ratelimit-reset"}


@pytest.fixture
def routed(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The paths of the requests that reached Litestar's router."""
    seen: list[str] = []
    original = ASGIRouter.__call__

    async def counting(self: ASGIRouter, scope: Any, receive: Any, send: Any) -> None:
        seen.append(f"{scope['method']} {scope['path']}")
        await original(self, scope, receive, send)

    monkeypatch.setattr(ASGIRouter, "__call__", counting)
    return seen


@asynccontextmanager
async def both_paths(settings: Any) -> AsyncIterator[tuple[Any, Any]]:
    """Two apps on the same stores: the lean path on, and off."""
    async with another_worker(settings, lean_routes=True) as lean, \
            another_worker(settings, lean_routes=False) as litestar:
        yield lean, litestar


def shape(response: Any) -> tuple[int, Any, set[str]]:
    """What a caller sees, less what differs by nature: the status, the body with ids and
    request ids and balances blanked (each path moves the same wallet), the header names."""
    body = response.json() if response.content else None
    if isinstance(body, dict):
        body = {k: ("<id>" if k in ("transaction_id", "request_id", "spin_id", "id", "balance") else v) for k, v in body.items()}
    return response.status_code, body, {name for name in response.headers if name not in VARYING}


async def test_the_hot_routes_never_reach_litestars_router(settings, migrated, routed):
    async with another_worker(settings, lean_routes=True) as app:
        program = await new_program(app)
        person = await new_participant(app, program)
        access = bearer((await tokens_for(app, program, person["id"]))["access_token"])
        campaign = await launched_wheel(app, program, cost_points=1)
        routed.clear()
        assert (await grant(app, program, person["id"], 10)).status_code == 201
        deduction = {"participant_id": person["id"], "points": 2, "reason": "lean"}
        assert (await app.post("/v1/points/deductions", json=deduction,
                               headers={**program.headers, "Idempotency-Key": random_ref()})).status_code == 201
        assert (await app.get("/v1/me/wallet", headers=access)).json()["available"] == 8
        spin = await app.post(f"/v1/me/campaigns/{campaign}/spins",
                              headers={**access, "Idempotency-Key": random_ref()})
        assert spin.status_code == 201, spin.text
        shop_program, _, item = await shop(app)
        await upload_codes(app, shop_program, item["id"], [random_ref("CARD")])
        _, me = await shopper(app, shop_program, item["points_price"])
        routed.clear()
        redeemed = await app.post("/v1/me/redemptions", json={"item_id": item["id"]},
                                  headers={**me, "Idempotency-Key": random_ref()})
        assert redeemed.status_code == 201 and redeemed.json()["status"] == "fulfilled", redeemed.text
        assert routed == []
        # What the lean path is not sure of goes to Litestar whole: a body it cannot decode.
        bad = await app.post("/v1/points/deductions", content=b'{"participant_id": "x", "points": "2"',
                             headers={**program.headers, "Idempotency-Key": random_ref()})
        assert bad.status_code == 400 and routed == ["POST /v1/points/deductions"]


async def test_answers_are_the_same_on_both_paths(settings, migrated, routed):
    async with both_paths(settings) as (lean, litestar):
        program = await new_program(lean)
        person = await new_participant(lean, program)
        access = bearer((await tokens_for(lean, program, person["id"]))["access_token"])
        campaign = await launched_wheel(lean, program, cost_points=1)
        assert (await grant(lean, program, person["id"], 100)).status_code == 201
        admin = program.headers

        def move(points: Any, participant: str = person["id"]) -> dict[str, Any]:
            return {"participant_id": participant, "points": points, "reason": "same"}

        cases: list[tuple[str, str, dict[str, str], Any]] = [
            ("GET", "/v1/me/wallet", access, None),
            ("GET", "/v1/me/wallet", admin, None),  # an admin key: 403
            ("GET", "/v1/me/wallet", {"Authorization": "Bearer nonsense"}, None),  # 401
            ("GET", "/v1/me/wallet", {}, None),  # no credentials: 401
            ("POST", "/v1/points/deductions", admin, move(3)),
            ("POST", "/v1/points/deductions", admin, move(10**6)),  # 422 insufficient_points
            ("POST", "/v1/points/deductions", admin, move(3, "pt_nobody")),  # 404
            ("POST", "/v1/points/deductions", admin, move("3")),  # strict: 400
            ("POST", "/v1/points/deductions", admin, move(0)),  # 400, below the bound
            ("POST", "/v1/points/grants", admin, move(5)),
            ("POST", "/v1/points/grants", access, move(5)),  # a participant's token: 403
            ("POST", f"/v1/me/campaigns/{campaign}/spins", access, None),
            ("POST", f"/v1/me/campaigns/{random_ref('cmp')}/spins", access, None),  # 404
            ("POST", f"/v1/me/campaigns/{campaign}/spins", admin, None),  # 403
        ]
        for method, path, headers, body in cases:
            answers = []
            for app in (lean, litestar):
                sent = {**headers, "Idempotency-Key": random_ref()} if method == "POST" else headers
                answers.append(await app.request(method, path, headers=sent, json=body))
            lean_answer, litestar_answer = answers
            if path.endswith("/spins") and lean_answer.status_code == 201:
                # Two spins draw two segments: the same fields, not the same values.
                assert lean_answer.json().keys() == litestar_answer.json().keys()
                assert shape(lean_answer)[2] == shape(litestar_answer)[2], (path, lean_answer.headers)
                continue
            assert shape(lean_answer) == shape(litestar_answer), (method, path, body, lean_answer.text)
        # The same key and body answer the first result again on the lean path, flagged.
        key = {**admin, "Idempotency-Key": random_ref()}
        first = await lean.post("/v1/points/grants", json=move(7), headers=key)
        again = await lean.post("/v1/points/grants", json=move(7), headers=key)
        assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
        reused = await lean.post("/v1/points/grants", json=move(8), headers=key)
        assert reused.status_code == 422 and reused.json()["code"] == "idempotency_key_reused"
        missing = await lean.post("/v1/points/grants", json=move(7), headers=admin)
        assert missing.status_code == 400 and missing.json()["code"] == "validation_error"
        assert "Idempotency-Key" in missing.json()["detail"]


async def test_bad_bodies_change_nothing_and_answer_what_litestar_answers(settings, migrated):
    async with both_paths(settings) as (lean, litestar):
        program = await new_program(lean)
        person = await new_participant(lean, program)
        assert (await grant(lean, program, person["id"], 40)).status_code == 201
        bodies: list[tuple[bytes, dict[str, str]]] = [
            (b"", {}),
            (b"not json", {}),
            (b'{"participant_id": "%s", "points": 1, "reason": "x"}' % person["id"].encode(),
             {"content-type": "text/plain"}),
            (b"[" * 40 + b"]" * 40, {}),
            (b'{"participant_id": "%s", "points": 1.0, "reason": "x"}' % person["id"].encode(), {}),
            (b'{"participant_id": "%s", "points": 1, "reason": "x", "extra": 1}' % person["id"].encode(), {}),
            (b'{"participant_id": "%s", "points": 1, "reason": "x"}' % person["id"].encode() + b" " * (3 * 1024 * 1024), {}),  # past RW_MAX_BODY_BYTES
        ]
        for body, headers in bodies:
            sent = {**program.headers, **headers}
            lean_answer = await lean.post("/v1/points/deductions", content=body,
                                          headers={**sent, "Idempotency-Key": random_ref()})
            litestar_answer = await litestar.post("/v1/points/deductions", content=body,
                                                  headers={**sent, "Idempotency-Key": random_ref()})
            assert lean_answer.status_code >= 400, body[:60]
            assert shape(lean_answer) == shape(litestar_answer), (body[:60], lean_answer.text)
        wallet = await lean.get(f"/v1/participants/{person['id']}/wallet", headers=program.headers)
        assert wallet.json()["available"] == 40


async def test_a_redemption_answers_the_same_on_both_paths(settings, migrated):
    async with both_paths(settings) as (lean, litestar):
        program, _, item = await shop(lean)
        await upload_codes(lean, program, item["id"], [random_ref("CARD") for _ in range(2)])
        _, me = await shopper(lean, program, 3 * item["points_price"])
        _, broke = await shopper(lean, program, 0)
        cases: list[tuple[dict[str, str], Any]] = [
            (me, {"item_id": item["id"]}),  # 201, a card from the pool on each path
            (me, {"item_id": item["id"]}),  # 409 out_of_stock: the pool's two codes are gone
            (broke, {"item_id": item["id"]}),  # 422 insufficient_points
            (me, {"item_id": random_ref("item")}),  # 404
            (program.headers, {"item_id": item["id"]}),  # an admin key: 403
            (me, {"item_id": 5}),  # strict: 400, Litestar's answer
            (me, {"item_id": item["id"], "extra": 1}),  # an unknown field: 400
        ]
        cards = set()
        for headers, body in cases:
            answers = [await app.post("/v1/me/redemptions", json=body, headers={**headers, "Idempotency-Key": random_ref()})
                       for app in (lean, litestar)]
            lean_answer, litestar_answer = answers
            if lean_answer.status_code == 201:
                assert litestar_answer.status_code == 201, litestar_answer.text
                assert lean_answer.json().keys() == litestar_answer.json().keys()
                assert shape(lean_answer)[2] == shape(litestar_answer)[2], lean_answer.headers
                cards |= {a.json()["credentials"]["code"] for a in answers}
                continue
            assert shape(lean_answer) == shape(litestar_answer), (body, lean_answer.text)
        assert len(cards) == 2  # two orders, two cards: each code handed out once
        # A retry with the same key answers the same order and card on the lean path, flagged.
        more = await shopper(lean, program, item["points_price"])
        await upload_codes(lean, program, item["id"], [random_ref("CARD")])
        key = {**more[1], "Idempotency-Key": random_ref()}
        first = await lean.post("/v1/me/redemptions", json={"item_id": item["id"]}, headers=key)
        again = await lean.post("/v1/me/redemptions", json={"item_id": item["id"]}, headers=key)
        assert first.status_code == 201 and again.status_code == 201, again.text
        assert again.headers["idempotent-replayed"] == "true"
        assert again.json()["id"] == first.json()["id"]
        assert again.json()["credentials"] == first.json()["credentials"]


def page_shape(response: Any) -> tuple[int, Any, set[str]]:
    """A history page's shape: its `as_of` is a clock when nothing waits to be projected."""
    status, body, headers = shape(response)
    if isinstance(body, dict) and "as_of" in body:
        body = {**body, "as_of": "<now>"}
    return status, body, headers


async def test_history_pages_answer_the_same_on_both_paths(settings, migrated, routed, redis):
    async with both_paths(settings) as (lean, litestar):
        program = await new_program(lean)
        person = await new_participant(lean, program)
        access = bearer((await tokens_for(lean, program, person["id"]))["access_token"])
        for points in (3, 5, 7):
            assert (await grant(lean, program, person["id"], points)).status_code == 201
        await projected(redis, program.id, "lean")
        first = await lean.get("/v1/me/transactions?limit=2", headers=access)
        assert first.status_code == 200 and [i["points"] for i in first.json()["items"]] == [7, 5]
        cursor = first.json()["next_cursor"]
        queries = ["", "?limit=2", f"?limit=2&cursor={cursor}", f"?cursor={cursor}&limit=1",
                   "?limit=0", "?limit=201", "?limit=abc", "?limit=2&limit=3", "?cursor=%21%21",
                   "?cursor=not-one-we-issued", "?limit=+2", "?other=1", "?limit"]
        routed.clear()
        for query in queries:
            lean_answer = await lean.get(f"/v1/me/transactions{query}", headers=access)
            litestar_answer = await litestar.get(f"/v1/me/transactions{query}", headers=access)
            assert page_shape(lean_answer) == page_shape(litestar_answer), (query, lean_answer.text,
                                                                             litestar_answer.text)
        # The plainest forms were the lean path's; the rest went to Litestar, which names the problem.
        plain = {"", "?limit=2", f"?limit=2&cursor={cursor}", f"?cursor={cursor}&limit=1",
                 "?cursor=not-one-we-issued"}
        reached = [seen.split("?")[0] for seen in routed]
        assert len([q for q in queries if q not in plain]) * 2 + len(plain) == len(reached), routed
        for headers in ({}, program.headers):  # no credentials: 401; an admin key: 403
            assert shape(await lean.get("/v1/me/transactions", headers=headers)) == \
                shape(await litestar.get("/v1/me/transactions", headers=headers))


async def test_a_partners_claim_and_fulfil_answer_the_same_on_both_paths(settings, migrated, routed):
    async with both_paths(settings) as (lean, litestar):
        program, partner, item = await shop(lean)
        _, me = await shopper(lean, program, 10 * item["points_price"])
        placed = [(await redeem(lean, me, item["id"])).json() for _ in range(4)]
        assert {order["status"] for order in placed} == {"pending"}
        key = bearer(partner["api_key"])
        routed.clear()
        answers = [await app.post("/v1/fulfillment/orders/claim", json={"limit": 2, "lease_seconds": 60}, headers=key)
                   for app in (lean, litestar)]
        assert routed == ["POST /v1/fulfillment/orders/claim"]  # Litestar's own, not the lean one's
        assert [a.status_code for a in answers] == [200, 200]
        assert answers[0].json()["items"][0].keys() == answers[1].json()["items"][0].keys()
        assert shape(answers[0])[2] == shape(answers[1])[2]
        claimed = [order for a in answers for order in a.json()["items"]]
        assert len({order["id"] for order in claimed}) == 4  # each order leased once across the two paths
        # Fulfils: each path delivers two orders; the same delivery again is 200, other credentials 409.
        cases: list[tuple[str, dict[str, Any], dict[str, str]]] = []
        for app_index, order in enumerate(claimed):
            body = {"lease_id": order["lease_id"], "credentials": {"code": random_ref("CODE")}}
            cases.append((order["id"], body, key))
        bad_bodies = [{}, {"credentials": {"code": 5}}, {"credentials": {"code": "x"}, "extra": 1}]
        for i in range(0, 4, 2):
            results = []
            for app, (order_id, body, headers) in zip((lean, litestar), cases[i:i + 2]):
                results.append(await app.post(f"/v1/fulfillment/orders/{order_id}/fulfill", json=body,
                                              headers=headers))
            assert [r.status_code for r in results] == [200, 200], [r.text for r in results]
            assert shape(results[0])[1].keys() == shape(results[1])[1].keys()
            assert results[0].json()["status"] == "fulfilled"
            for app, (order_id, body, headers) in zip((lean, litestar), cases[i:i + 2]):
                again = await app.post(f"/v1/fulfillment/orders/{order_id}/fulfill", json=body, headers=headers)
                assert again.status_code == 200
                other = {**body, "credentials": {"code": "ANOTHER"}}
                refused = await app.post(f"/v1/fulfillment/orders/{order_id}/fulfill", json=other, headers=headers)
                assert refused.status_code == 409 and refused.json()["code"] == "conflict", refused.text
        order_id = claimed[0]["id"]
        for body, headers, path in [
            *((b, key, f"/v1/fulfillment/orders/{order_id}/fulfill") for b in bad_bodies),
            ({"credentials": {"code": "x"}}, key, f"/v1/fulfillment/orders/{random_ref('ord')}/fulfill"),  # 404
            ({"credentials": {"code": "x"}}, me, f"/v1/fulfillment/orders/{order_id}/fulfill"),  # a token: 403
            ({"limit": 0}, key, "/v1/fulfillment/orders/claim"),  # 400
            ({"limit": 1}, program.headers, "/v1/fulfillment/orders/claim"),  # an admin key: 403
        ]:
            lean_answer = await lean.post(path, json=body, headers=headers)
            litestar_answer = await litestar.post(path, json=body, headers=headers)
            assert lean_answer.status_code >= 400
            assert shape(lean_answer) == shape(litestar_answer), (path, body, lean_answer.text)
        # The participant sees each order delivered, whichever path delivered it.
        for order in claimed:
            mine = await lean.get(f"/v1/me/redemptions/{order['id']}", headers=me)
            assert mine.json()["status"] == "fulfilled" and mine.json()["credentials"]["code"]


async def test_catalog_pages_and_their_304s_answer_the_same_on_both_paths(settings, migrated, routed):
    async with both_paths(settings) as (lean, litestar):
        program, _, _ = await shop(lean)
        for face in (1000, 5000):
            assert (await lean.post("/v1/catalog/items", headers=program.headers, json={
                "brand": "Target", "name": f"Target ${face // 100}", "sku": random_ref("sku"),
                "face_value": {"amount": face, "currency": "USD"}})).status_code == 201
        _, phone = await shopper(lean, program, 0)
        first = await lean.get("/v1/catalog/items?limit=2", headers=phone)
        assert first.status_code == 200 and len(first.json()["items"]) == 2
        cursor, etag = first.json()["next_cursor"], first.headers["etag"]
        cases: list[tuple[str, dict[str, str]]] = [
            ("", phone), ("?limit=2", phone), (f"?limit=2&cursor={cursor}", phone),
            ("?limit=2", {**phone, "If-None-Match": etag}),  # 304, no body
            ("?limit=2", {**phone, "If-None-Match": 'W/"another"'}),  # the page again
            ("?limit=1", {**phone, "If-None-Match": etag}),  # another query, another ETag: the page
            ("", program.headers),  # an admin browses too
            ("?q=Target", phone), ("?include_disabled=true", phone),  # Litestar's: a search, an admin's flag
            ("?limit=0", phone), ("?cursor=not-one-we-issued", phone), ("", {}),
        ]
        routed.clear()
        for query, headers in cases:
            lean_answer = await lean.get(f"/v1/catalog/items{query}", headers=headers)
            litestar_answer = await litestar.get(f"/v1/catalog/items{query}", headers=headers)
            assert shape(lean_answer) == shape(litestar_answer), (query, headers, lean_answer.text)
            for name in ("etag", "cache-control", "content-type", "content-length"):
                assert lean_answer.headers.get(name) == litestar_answer.headers.get(name), (query, name)
        assert len(routed) == len(cases) + 3  # Litestar's every time; the lean app's: the search, the flag, limit=0
        # A change moves the ETag on both paths at once.
        item = first.json()["items"][0]
        assert (await lean.patch(f"/v1/catalog/items/{item['id']}", headers=program.headers,
                                 json={"status": "disabled"})).status_code == 200
        for app in (lean, litestar):
            fresh = await app.get("/v1/catalog/items?limit=2", headers={**phone, "If-None-Match": etag})
            assert fresh.status_code == 200 and fresh.headers["etag"] != etag
            assert item["id"] not in {i["id"] for i in fresh.json()["items"]}


def test_a_hot_route_with_a_guard_the_lean_path_cannot_apply_stops_the_start(settings, monkeypatch):
    """A guard other than a principal kind (a program's state, say) would be skipped by the
    lean path: the app refuses to start rather than answer without it."""
    from api.app import create_app
    from api.routes import me

    async def only_on_tuesdays(connection: Any, handler: Any) -> None:
        return None

    monkeypatch.setattr(me.my_transactions, "guards", [*me.my_transactions.guards, only_on_tuesdays])
    with pytest.raises(RuntimeError, match="listMyTransactions: a guard or middleware the lean path cannot apply"):
        create_app(settings)


@pytest.mark.parametrize("coalesce", [True, False])
async def test_a_pages_own_redis_commands_share_the_coalesced_connection(settings, migrated, private_valkey,
                                                                         monkeypatch, coalesce):
    """The gate's call, a history page's `as_of` read and the catalog's version go out with the
    turn's other commands on the coalescer's connection (RW_REDIS_COALESCE), not one by one
    through redis-py; with it off, through redis-py as before. On a Valkey of this test alone,
    and counted by the connection's peer: the session's own app projects every program from
    the shared server meanwhile."""
    from urllib.parse import urlsplit

    from redis.asyncio.connection import AbstractConnection

    from kernel.redis_functions import connect
    from kernel.redis_pipe import RedisPipe

    port = urlsplit(private_valkey).port
    async with another_worker(settings, redis_url=private_valkey, redis_cluster=False, lean_routes=True,
                              redis_coalesce=coalesce) as app:
        program, _, _ = await shop(app)
        person, phone = await shopper(app, program, 5)
        own = connect(private_valkey)
        try:
            await projected(own, program.id, "lean")
        finally:
            await own.aclose()
        piped: list[str] = []
        alone: list[str] = []
        send, packed = RedisPipe.send, AbstractConnection.send_packed_command

        def noting(self: Any, batch: list[Any]) -> None:
            transport = self._replies.transport
            if transport is not None and transport.get_extra_info("peername")[1] == port:
                piped.extend(str(command[0]) for command, _ in batch)
            return send(self, batch)

        async def counting(self: Any, command: Any, check_health: bool = True) -> None:
            if getattr(self, "port", None) == port:
                raw = b"".join(command) if isinstance(command, list) else command
                alone.append(raw.split(b"\r\n")[2].decode())  # the (first) command's name
            await packed(self, command, check_health)

        for path in ("/v1/me/transactions", "/v1/catalog/items"):  # warm: the pipe open, caches full
            assert (await app.get(path, headers=phone)).status_code == 200
        monkeypatch.setattr(RedisPipe, "send", noting)
        monkeypatch.setattr(AbstractConnection, "send_packed_command", counting)
        history = await app.get("/v1/me/transactions", headers=phone)
        catalog = await app.get("/v1/catalog/items", headers=phone)
        monkeypatch.undo()
        assert history.status_code == 200 and [i["points"] for i in history.json()["items"]] == [5]
        assert catalog.status_code == 200 and catalog.json()["items"]
        names = sorted(piped if coalesce else alone)
        assert names == ["FCALL", "FCALL", "GET", "XRANGE"], (piped, alone)
        assert (alone if coalesce else piped) == []
