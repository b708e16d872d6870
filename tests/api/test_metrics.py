"""`/metrics`: who may read it, and that requests and wallet operations show up in it."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar.testing import AsyncTestClient
from prometheus_client.parser import text_string_to_metric_families

from tests.factories import OPERATOR, bearer, grant, new_participant, new_program, random_ref


async def scrape(client: Any, headers: dict[str, str] = OPERATOR) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics", headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    return sum(v for (n, ls), v in samples.items() if n == name and set(labels.items()) <= set(ls))


async def test_metrics_need_the_operator_key_or_the_metrics_token(client, settings, migrated):
    anonymous = await client.get("/metrics")
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "unauthenticated"
    program = await new_program(client)
    assert (await client.get("/metrics", headers=program.headers)).status_code == 401
    await scrape(client)
    token = "metrics-" + "x" * 24
    tuned = msgspec.structs.replace(settings, metrics_token=token, journal_consumer=False, background_tasks=False)
    from api.app import create_app

    async with AsyncTestClient(app=create_app(tuned), base_url="http://rw.test") as other:
        await scrape(other, bearer(token))
        assert (await other.get("/metrics", headers=bearer("metrics-" + "y" * 24))).status_code == 401


async def test_wallet_operations_are_counted_by_kind_and_outcome(client):
    program = await new_program(client)
    person = await new_participant(client, program)
    before = await scrape(client)
    key = random_ref("grant")
    assert (await grant(client, program, person["id"], 10, key=key)).status_code == 201
    assert (await grant(client, program, person["id"], 10, key=key)).status_code == 201  # replay
    refused = await client.post("/v1/points/deductions",
                                json={"participant_id": person["id"], "points": 1_000, "reason": "too much"},
                                headers={**program.headers, "Idempotency-Key": random_ref()})
    assert refused.status_code == 422
    after = await scrape(client)
    ops = "rw_wallet_operations_total"
    assert value(after, ops, kind="grant", outcome="ok") - value(before, ops, kind="grant", outcome="ok") == 1
    assert value(after, ops, kind="grant", outcome="replayed") - value(before, ops, kind="grant",
                                                                         outcome="replayed") == 1
    assert value(after, ops, kind="deduct", outcome="insufficient_points") - value(
        before, ops, kind="deduct", outcome="insufficient_points") == 1


async def test_requests_are_counted_per_route_template_and_status(client):
    program = await new_program(client)
    person = await new_participant(client, program)
    before = await scrape(client)
    for _ in range(3):
        assert (await client.get(f"/v1/participants/{person['id']}", headers=program.headers)).status_code == 200
    assert (await client.get("/v1/participants", headers=bearer("rwk.nope.nope"))).status_code == 401
    after = await scrape(client)
    total = "rw_http_requests_total"
    routes = {dict(labels).get("path") for (name, labels) in after if name == total}
    template = next(p for p in routes if p and p.startswith("/v1/participants/{") and p.endswith("}"))
    assert person["id"] not in "".join(p or "" for p in routes)  # no ids: bounded series
    assert value(after, total, path=template, status_code="200") - value(before, total, path=template,
                                                                           status_code="200") == 3
    # A 401 raised by the auth middleware is counted as a 401, not as the default 200.
    assert value(after, total, path="/v1/participants", status_code="401") - value(
        before, total, path="/v1/participants", status_code="401") == 1
    assert value(after, "rw_http_request_duration_seconds_count", path=template) >= 3


async def test_scrape_time_gauges_are_present(client):
    samples = await scrape(client)
    names = {name for name, _ in samples}
    for name in ("rw_journal_pending_entries", "rw_journal_oldest_pending_seconds", "rw_fulfillment_orders",
                 "rw_webhook_deliveries", "rw_webhook_deliveries_retrying"):
        assert name in names, name
        assert value(samples, name) >= 0
    assert {dict(ls)["status"] for n, ls in samples if n == "rw_fulfillment_orders"} == {"new", "pending",
                                                                                          "claimed"}


async def test_a_hot_routes_requests_land_in_every_series_by_the_next_scrape(client):
    """The lean path's wallet read: tallied per request, moved into the series at the scrape."""
    program = await new_program(client)
    person = await new_participant(client, program)
    tokens = await client.post(f"/v1/participants/{person['id']}/tokens", headers=program.headers)
    mine = bearer(tokens.json()["access_token"])
    before = await scrape(client)
    for _ in range(5):
        assert (await client.get("/v1/me/wallet", headers=mine)).status_code == 200
    assert (await client.get("/v1/me/wallet", headers=bearer("rwk.nope.nope"))).status_code == 401
    after = await scrape(client)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, path="/v1/me/wallet", **labels) - value(before, name, path="/v1/me/wallet", **labels)

    assert moved("rw_http_requests_total", status_code="200") == 5
    assert moved("rw_http_requests_total", status_code="401") == 1
    assert moved("rw_http_request_duration_seconds_count", status_code="200") == 5
    assert moved("rw_http_request_duration_seconds_bucket", status_code="200", le="+Inf") == 5
    # Buckets are cumulative: none holds more than the next, and each holds what it should.
    buckets = sorted(((float(dict(ls)["le"]), v) for (n, ls), v in after.items()
                      if n == "rw_http_request_duration_seconds_bucket"
                      and dict(ls).get("path") == "/v1/me/wallet" and dict(ls).get("status_code") == "200"))
    assert [v for _, v in buckets] == sorted(v for _, v in buckets)
    assert moved("rw_http_request_duration_seconds_sum", status_code="200") > 0
    assert value(after, "rw_http_requests_in_progress", path="/v1/me/wallet") == 0
