"""Bad input gets a clear problem document, changes nothing, and never a 500."""

from __future__ import annotations

import json
import logging

import pytest

from tests.factories import grant, new_participant, new_program, random_ref

pytestmark = pytest.mark.sql


def assert_problem(response, status: int, code: str) -> dict:  # type: ignore[no-untyped-def]
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["status"] == status and body["code"] == code
    assert {"type", "title", "detail"} <= set(body)
    assert "Traceback" not in response.text
    return body


async def test_malformed_bodies_name_the_offending_field(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    person = await new_participant(client, program)
    headers = {**program.headers, "Idempotency-Key": random_ref()}
    body = assert_problem(await client.post("/v1/points/grants", headers=headers,
                                            json={"participant_id": person["id"], "points": "ten", "reason": "x"}),
                          400, "validation_error")
    assert body["invalid_params"][0]["name"] == "points"
    assert_problem(await client.post("/v1/points/grants", headers=headers, content=b"{not json"), 400,
                   "validation_error")
    assert_problem(await client.post("/v1/points/grants", headers=headers,
                                     json={"participant_id": person["id"], "points": 1, "reason": "x", "extra": 1}),
                   400, "validation_error")
    assert_problem(await client.post("/v1/participants", headers=program.headers, json={"display_name": "x"}),
                   400, "validation_error")
    wallet = (await client.get(f"/v1/participants/{person['id']}/wallet", headers=program.headers)).json()
    assert wallet["available"] == 0


async def test_bad_query_values_and_unknown_routes(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    assert_problem(await client.get("/v1/participants", params={"limit": 0}, headers=program.headers), 400,
                   "validation_error")
    assert_problem(await client.get("/v1/participants", params={"limit": "many"}, headers=program.headers), 400,
                   "validation_error")
    assert_problem(await client.get("/v1/participants", params={"cursor": "%%%"}, headers=program.headers), 422,
                   "validation_error")
    assert_problem(await client.get("/v1/nowhere", headers=program.headers), 404, "not_found")


async def test_a_status_or_format_outside_its_set_is_refused(client) -> None:  # type: ignore[no-untyped-def]
    # Each set is written once, as the domain's Literal; a value outside it answers as a bad pattern did.
    program = await new_program(client)
    for path, good in (("/v1/campaigns", "draft"), ("/v1/sweepstakes", "open"), ("/v1/claims", "duplicate"),
                       ("/v1/orders", "cancelled"), ("/v1/orders/export.csv", "failed"),
                       ("/v1/participants", "deactivated")):
        assert (await client.get(path, params={"status": good}, headers=program.headers)).status_code == 200
        body = assert_problem(await client.get(path, params={"status": "bogus"}, headers=program.headers), 400,
                              "validation_error")
        assert "status" in json.dumps(body)
    assert_problem(await client.post("/v1/catalog/import", json={"format": "xml", "content": "<a/>"},
                                     headers=program.headers), 400, "validation_error")


async def test_idempotency_key_rules(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    person = await new_participant(client, program)
    body = {"participant_id": person["id"], "points": 3, "reason": "x"}
    assert_problem(await client.post("/v1/points/grants", headers=program.headers, json=body), 400,
                   "validation_error")
    assert_problem(await client.post("/v1/points/grants", headers={**program.headers, "Idempotency-Key": "x" * 256},
                                     json=body), 400, "validation_error")
    first = await grant(client, program, person["id"], 3, key="same")
    # Same body in another key order is the same request.
    replay = await client.post("/v1/points/grants", headers={**program.headers, "Idempotency-Key": "same"},
                               json={"reason": "test grant", "points": 3, "participant_id": person["id"]})
    assert replay.status_code == 201 and replay.json() == first.json()
    assert replay.headers["idempotent-replayed"] == "true"
    assert_problem(await grant(client, program, person["id"], 4, key="same"), 422, "idempotency_key_reused")
    # Keys belong to the caller: another program may use the same key for its own request.
    other = await new_program(client)
    someone = await new_participant(client, other)
    assert (await grant(client, other, someone["id"], 3, key="same")).status_code == 201


async def test_a_failed_deduction_is_replayed_as_the_same_failure(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    person = await new_participant(client, program)
    headers = {**program.headers, "Idempotency-Key": "ded-1"}
    body = {"participant_id": person["id"], "points": 10, "reason": "chargeback"}
    first = await client.post("/v1/points/deductions", headers=headers, json=body)
    assert_problem(first, 422, "insufficient_points")
    await grant(client, program, person["id"], 50)
    again = await client.post("/v1/points/deductions", headers=headers, json=body)
    assert_problem(again, 422, "insufficient_points")
    assert again.headers["idempotent-replayed"] == "true"


async def test_lone_surrogates_are_refused_not_stored(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    response = await client.post("/v1/participants", headers={**program.headers, "Content-Type": "application/json"},
                                 content=b'{"external_id": "x1", "display_name": "\\ud800"}')
    assert_problem(response, 400, "validation_error")
    listed = (await client.get("/v1/participants", headers=program.headers)).json()["items"]
    assert listed == []


async def test_a_csv_the_reader_cannot_parse_is_reported_not_a_500(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    csv = "external_id,display_name\nok-1,Ann\n" + "x" * 200_000 + ",Bob\n"
    response = await client.post("/v1/participants/import", json={"csv": csv}, headers=program.headers)
    assert response.status_code == 200
    report = response.json()
    assert report["created"] == 1 and report["errors"][0]["row"] == 3


async def test_values_a_database_cannot_hold_answer_400_not_500(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client, point_value_cents=1_000_000)
    nul = await client.post("/v1/activity-types", json={"name": "webinar", "description": "a\u0000b"},
                            headers=program.headers)
    assert nul.status_code in (201, 400) and nul.status_code != 500
    huge = await client.get("/v1/catalog/items", params={"max_points": 10**12, "min_points": 10**12, "q": "a\x00"},
                            headers=program.headers)
    assert huge.status_code == 200


async def test_json_nested_too_deep_answers_400_and_logs_no_traceback(client, caplog) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    person = await new_participant(client, program)
    json_type = {"Content-Type": "application/json"}
    deep = b"[" * 1000 + b"]" * 1000
    with caplog.at_level(logging.INFO):
        # Public: no credentials needed to reach the decoder.
        body = assert_problem(await client.post("/v1/auth/refresh", content=b'{"refresh_token": ' + deep + b"}",
                                                headers=json_type), 400, "validation_error")
        assert "nested" in body["detail"]
        # With an Idempotency-Key the body is also fingerprinted: still a 400, and nothing moves.
        grant_body = b'{"participant_id": "%s", "points": 5, "reason": ' % person["id"].encode() + deep + b"}"
        assert_problem(await client.post("/v1/points/grants", content=grant_body,
                                         headers={**program.headers, **json_type, "Idempotency-Key": random_ref()}),
                       400, "validation_error")
        # Too deep for any body of ours, though the decoder itself could go on.
        assert_problem(await client.post("/v1/participants", headers={**program.headers, **json_type},
                                         content=b'{"external_id": "d", "display_name": "D", "x": ' +
                                         b"[" * 40 + b"]" * 40 + b"}"), 400, "validation_error")
    assert [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []
    wallet = (await client.get(f"/v1/participants/{person['id']}/wallet", headers=program.headers)).json()
    assert wallet["available"] == 0


async def test_a_body_that_is_not_json_answers_415(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    person = {"external_id": "m1", "display_name": "Mo"}
    for content_type in ("text/plain", "application/x-www-form-urlencoded", "text/csv"):
        response = await client.post("/v1/participants", content=json.dumps(person).encode(),
                                     headers={**program.headers, "Content-Type": content_type})
        assert "application/json" in assert_problem(response, 415, "unsupported_media_type")["detail"]
    assert (await client.get("/v1/participants", headers=program.headers)).json()["items"] == []
    # What JSON clients send is accepted, and so is a body with no declared type (curl --data-binary).
    for number, content_type in enumerate(("application/json; charset=utf-8", "application/merge-patch+json",
                                           "Application/JSON", None)):
        headers = {**program.headers, **({"Content-Type": content_type} if content_type else {})}
        response = await client.post("/v1/participants", headers=headers,
                                     content=json.dumps({**person, "external_id": f"ok-{number}"}).encode())
        assert response.status_code == 201, (content_type, response.text)


async def test_invalid_params_name_the_field_not_the_body(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    person = await new_participant(client, program)
    headers = {**program.headers, "Idempotency-Key": random_ref()}

    def names(response):  # type: ignore[no-untyped-def]
        return [p["name"] for p in assert_problem(response, 400, "validation_error")["invalid_params"]]

    assert names(await client.post("/v1/points/grants", headers=headers, json={
        "participant_id": person["id"], "points": 1, "reason": "x", "extra": 1})) == ["extra"]
    assert names(await client.post("/v1/participants", headers=program.headers, json={"display_name": "x"})) == [
        "external_id"]
    item = {"idempotency_id": "a", "participant_id": person["id"], "points": 1, "reason": "x"}
    assert names(await client.post("/v1/points/grants/batch", headers=headers, json={
        "grants": [item, item, item, {**item, "points": "lots"}]})) == ["grants[3].points"]
    assert names(await client.post("/v1/points/grants/batch", headers=headers, json={
        "grants": [{**item, "colour": "red"}]})) == ["grants[0].colour"]
    empty = await client.post("/v1/participants", headers={**program.headers, "Content-Type": "application/json"})
    assert names(empty) == ["body"] and "body is required" in empty.json()["detail"]


@pytest.mark.parametrize("path", ["/v1/participants", "/v1/points/grants"])
async def test_a_client_that_closes_its_connection_mid_body_is_not_a_server_error(client, caplog, path) -> None:  # type: ignore[no-untyped-def]
    """A phone that gives up (or a keep-alive connection closing under a request) cuts the body
    off: nobody is there for the answer, and it is not logged as the server failing."""
    program = await new_program(client)
    sent: list[dict] = []
    arrived = iter([{"type": "http.request", "body": b'{"external_id": "x', "more_body": True},
                    {"type": "http.disconnect"}])

    async def receive() -> dict:
        return next(arrived)

    async def send(message: dict) -> None:
        sent.append(message)

    headers = [(b"host", b"rw.test"), (b"content-type", b"application/json"), (b"content-length", b"200"),
               (b"idempotency-key", random_ref().encode()),
               *((k.lower().encode(), v.encode()) for k, v in program.headers.items())]
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
             "path": path, "raw_path": path.encode(), "root_path": "", "query_string": b"", "headers": headers,
             "client": ("127.0.0.1", 5000), "server": ("rw.test", 80), "state": {}}
    import asyncio

    with caplog.at_level(logging.INFO):
        # On the app's own event loop, where the test client runs it (its stores live there).
        await asyncio.to_thread(client.blocking_portal.call, client.app, scope, receive, send)
    start = next(m for m in sent if m["type"] == "http.response.start")
    assert start["status"] == 400, sent
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
