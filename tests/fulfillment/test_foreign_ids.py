"""Ids in bodies must be the caller's program's own: another program's partner or team is
refused with 422 naming the field, and nothing is stored."""

from __future__ import annotations

import pytest

from tests.factories import new_participant, new_program, random_ref, shop

pytestmark = pytest.mark.sql


def assert_refused(response, field: str) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 422, response.text
    assert response.json()["code"] == "validation_error"
    assert [p["name"] for p in response.json()["invalid_params"]] == [field]


async def test_an_item_or_brand_cannot_be_routed_to_another_programs_partner(client) -> None:  # type: ignore[no-untyped-def]
    program, own, item = await shop(client)
    _, foreign, _ = await shop(client)
    body = {"brand": "Target", "name": "Target $10", "face_value": {"amount": 1000, "currency": "USD"},
            "sku": random_ref("sku")}
    assert_refused(await client.post("/v1/catalog/items", headers=program.headers,
                                     json={**body, "partner_id": foreign["id"]}), "partner_id")
    assert_refused(await client.post("/v1/catalog/items", headers=program.headers,
                                     json={**body, "partner_id": "ptn_nosuchpartner"}), "partner_id")
    assert_refused(await client.patch(f"/v1/catalog/items/{item['id']}", headers=program.headers,
                                      json={"partner_id": foreign["id"]}), "partner_id")
    assert_refused(await client.post("/v1/catalog/brands", headers=program.headers,
                                     json={"name": "Amazon", "partner_id": foreign["id"]}), "partner_id")
    stored = (await client.get(f"/v1/catalog/items/{item['id']}", headers=program.headers)).json()
    assert stored.get("partner_id") is None and stored["brand"]["partner_id"] is None
    skus = [i["sku"] for i in (await client.get("/v1/catalog/items", headers=program.headers)).json()["items"]]
    assert body["sku"] not in skus
    # The program's own partner is fine, and "" clears the route.
    routed = await client.patch(f"/v1/catalog/items/{item['id']}", headers=program.headers,
                                json={"partner_id": own["id"]})
    assert routed.status_code == 200 and routed.json()["partner_id"] == own["id"]
    cleared = await client.patch(f"/v1/catalog/items/{item['id']}", headers=program.headers, json={"partner_id": ""})
    assert cleared.status_code == 200 and cleared.json().get("partner_id") is None


async def test_rules_and_campaigns_cannot_name_another_programs_team(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    other = await new_program(client)
    own = (await client.post("/v1/teams", json={"name": "North"}, headers=program.headers)).json()
    foreign = (await client.post("/v1/teams", json={"name": "South"}, headers=other.headers)).json()
    spec = {"name": random_ref("rule"), "activity_type": "sale", "award": {"type": "fixed", "points": 10}}
    assert_refused(await client.post("/v1/earning-rules", headers=program.headers, json={
        **spec, "participants": {"team_ids": [own["id"], foreign["id"]]}}), "participants.team_ids")
    assert (await client.get("/v1/earning-rules", headers=program.headers)).text.count(spec["name"]) == 0
    created = await client.post("/v1/earning-rules", headers=program.headers,
                                json={**spec, "participants": {"team_ids": [own["id"]]}})
    assert created.status_code == 201, created.text
    assert_refused(await client.put(f"/v1/earning-rules/{created.json()['id']}", headers=program.headers, json={
        **spec, "participants": {"team_ids": [foreign["id"]]}}), "participants.team_ids")

    wheel = {"name": "Wheel", "cost_points": 10, "max_spins_per_participant_per_day": 3, "budget_points": 1000,
             "segments": [{"label": "10 points", "weight": 1, "prize": {"type": "points", "points": 10}},
                          {"label": "Try again", "weight": 9, "prize": {"type": "nothing"}}]}
    assert_refused(await client.post("/v1/campaigns/spin", headers=program.headers, json={
        **wheel, "eligibility": {"team_ids": [foreign["id"]]}}), "eligibility.team_ids")
    draft = await client.post("/v1/campaigns/spin", headers=program.headers,
                              json={**wheel, "eligibility": {"team_ids": [own["id"]]}})
    assert draft.status_code == 201, draft.text
    assert_refused(await client.put(f"/v1/campaigns/{draft.json()['id']}", headers=program.headers, json={
        **wheel, "eligibility": {"team_ids": [foreign["id"]]}}), "eligibility.team_ids")


async def test_a_participant_cannot_join_another_programs_team(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    other = await new_program(client)
    foreign = (await client.post("/v1/teams", json={"name": "South"}, headers=other.headers)).json()
    refused = await client.post("/v1/participants", headers=program.headers, json={
        "external_id": random_ref("rep"), "display_name": "Rep", "team_id": foreign["id"]})
    assert_refused(refused, "team_id")
    person = await new_participant(client, program)
    assert_refused(await client.patch(f"/v1/participants/{person['id']}", headers=program.headers,
                                      json={"team_id": foreign["id"]}), "team_id")
