"""Earning rules from the console: a rule is written in a form, simulated against the last
90 days of activities, and activated exactly as simulated; the figures on the page are the
API's simulator's; a viewer can neither simulate nor activate."""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta, timezone
from typing import Any


from tests.console.sessions import csrf_of, get, person_in, post
from tests.factories import new_participant, new_program, random_ref, wait_until

# Pages over domain reads and use cases that their own tests run on Postgres too: SQLite
# only, to keep CI under its 20 minutes.


def sale(who: str, days_ago: int, amount: int) -> dict[str, Any]:
    at = datetime.now(timezone.utc) - timedelta(days=days_ago)
    return {"external_id": random_ref("evt"), "type": "sale", "participant_external_id": who,
            "occurred_at": at.isoformat(), "attributes": {"amount": amount, "product": "ThermoPro"}}


def rule_form(csrf: str, **fields: str) -> dict[str, str]:
    return {"csrf": csrf, "rule_id": "", "name": "ThermoPro sales", "activity_type": "sale", "award_type": "per_unit",
            "points": "1", "unit_attribute": "amount", "unit": "100", "cond0_attribute": "product", "cond0_op": "eq",
            "cond0_value": "ThermoPro", "cap_points": "", "cap_period": "day", **fields}


async def test_a_rule_is_simulated_on_90_days_then_activated_as_simulated(client: Any) -> None:
    program = await new_program(client)
    ann, bob = await new_participant(client, program), await new_participant(client, program)
    sent = await client.post("/v1/activities", headers=program.headers, json={"activities": [
        sale(ann["external_id"], 3, 12_550), sale(bob["external_id"], 10, 5_000), sale(bob["external_id"], 120, 9_900),
    ]})
    assert sent.status_code == 200, sent.text
    _, session = await person_in(client, program, "manager")
    editor = await get(client, f"/console/p/{program.id}/earning-rules/new", session)
    assert editor.status_code == 200 and "Activate" not in editor.text, "nothing activates before a simulation"
    form = rule_form(csrf_of(editor.text))
    simulated = await post(client, f"/console/p/{program.id}/earning-rules/simulate", session, form)
    assert simulated.status_code == 200, simulated.text
    # The API's simulator over the same window gives the figures the page shows.
    now = datetime.now(timezone.utc)
    api = (await client.post("/v1/earning-rules/simulate", headers=program.headers, json={
        "starts_at": (now - timedelta(days=90)).isoformat(), "ends_at": now.isoformat(),
        "rule": {"name": "ThermoPro sales", "activity_type": "sale",
                 "award": {"type": "per_unit", "points_per_unit": 1, "attribute": "amount", "unit": 100},
                 "conditions": [{"attribute": "product", "op": "eq", "value": "ThermoPro"}]}})).json()
    assert api["total_points"] == 125 + 50 and api["participants"] == 2, "the 120-day-old sale is outside"
    assert re.search(r'id="sim-points">175 ', simulated.text) and re.search(r'id="sim-participants">2<', simulated.text)
    assert f'id="sim-cost">{api["cost"]["amount"] / 100:,.2f}' in simulated.text
    assert (await client.get("/v1/earning-rules", headers=program.headers)).json()["items"] == [], "nothing stored"
    digest = re.search(r'name="simulated" value="([^"]+)"', simulated.text).group(1)  # type: ignore[union-attr]

    changed = await post(client, f"/console/p/{program.id}/earning-rules/activate", session,
                         {**form, "points": "5", "simulated": digest})
    assert changed.status_code == 422 and "simulate it again" in html.unescape(changed.text)
    assert (await client.get("/v1/earning-rules", headers=program.headers)).json()["items"] == []

    done = await post(client, f"/console/p/{program.id}/earning-rules/activate", session, {**form, "simulated": digest})
    assert done.status_code == 303, done.text
    (stored,) = (await client.get("/v1/earning-rules", headers=program.headers)).json()["items"]
    assert stored["rule"]["award"] == {"type": "per_unit", "points_per_unit": 1, "attribute": "amount", "unit": 100,
                                       "max_points": None}
    assert stored["rule"]["conditions"] == [{"attribute": "product", "op": "eq", "value": "ThermoPro"}]

    # Editing shows the stored rule in the form; activating a change makes version 2.
    edit = await get(client, f"/console/p/{program.id}/earning-rules/{stored['id']}", session)
    assert 'value="ThermoPro sales"' in edit.text and 'value="product"' in edit.text
    form2 = rule_form(csrf_of(edit.text), rule_id=stored["id"], cap_points="100", cap_period="week")
    sim2 = await post(client, f"/console/p/{program.id}/earning-rules/simulate", session, form2)
    digest2 = re.search(r'name="simulated" value="([^"]+)"', sim2.text).group(1)  # type: ignore[union-attr]
    assert re.search(r'id="sim-points">150 ', sim2.text), "Ann's 125 capped at 100 a week, Bob's 50"
    assert (await post(client, f"/console/p/{program.id}/earning-rules/activate", session,
                       {**form2, "simulated": digest2})).status_code == 303
    detail = (await client.get(f"/v1/earning-rules/{stored['id']}", headers=program.headers)).json()
    assert detail["version"] == 2 and detail["rule"]["cap"] == {"points": 100, "period": "week"}
    audit = (await client.get("/v1/audit-events?kind=rule.activated", headers=program.headers)).json()["items"]
    assert len(audit) == 2


async def test_a_bad_rule_shows_the_domains_words_and_a_viewer_is_refused(client: Any) -> None:
    program = await new_program(client)
    _, manager = await person_in(client, program, "manager")
    editor = await get(client, f"/console/p/{program.id}/earning-rules/new", manager)
    bad = await post(client, f"/console/p/{program.id}/earning-rules/simulate", manager,
                     rule_form(csrf_of(editor.text), points="0"))
    assert bad.status_code in (400, 422) and 'role="alert"' in bad.text
    late = await post(client, f"/console/p/{program.id}/earning-rules/simulate", manager,
                      rule_form(csrf_of(editor.text), starts_at="2026-05-01", ends_at="2026-04-01"))
    assert late.status_code == 422 and "starts_at must be before ends_at" in late.text
    _, viewer = await person_in(client, program, "viewer")
    page = await get(client, f"/console/p/{program.id}/earning-rules/new", viewer)
    assert page.status_code == 200 and ">Simulate<" not in page.text
    for action in ("simulate", "activate"):
        refused = await post(client, f"/console/p/{program.id}/earning-rules/{action}", viewer,
                             rule_form(csrf_of(page.text)))
        assert refused.status_code == 403
    assert (await client.get("/v1/earning-rules", headers=program.headers)).json()["items"] == []


async def test_a_participants_history_says_why_each_line_happened(client: Any) -> None:
    program = await new_program(client)
    ann = await new_participant(client, program)
    rule = await client.post("/v1/earning-rules", headers=program.headers, json={
        "name": "Training bonus", "activity_type": "training_completed", "award": {"type": "fixed", "points": 40}})
    assert rule.status_code == 201
    sent = await client.post("/v1/activities", headers=program.headers, json={"activities": [{
        "external_id": "LMS-77", "type": "training_completed", "participant_external_id": ann["external_id"],
        "occurred_at": datetime.now(timezone.utc).isoformat(), "attributes": {"course": "ThermoPro 101"}}]})
    assert sent.status_code == 200
    _, session = await person_in(client, program, "manager")
    page = await get(client, f"/console/p/{program.id}/participants/{ann['id']}", session)
    granted = await post(client, f"/console/p/{program.id}/participants/{ann['id']}/grant", session, {
        "csrf": csrf_of(page.text), "key": "k1", "points": "25", "reason": "Booth help"})
    assert granted.status_code == 303

    async def both_lines() -> bool:
        text = html.unescape((await get(client, f"/console/p/{program.id}/participants/{ann['id']}", session)).text)
        return "rule “Training bonus” v1 for training_completed LMS-77" in text and "by Casey Manager" in text

    assert await wait_until(both_lines, True), "the award names its rule, version and activity; the grant its person"


async def test_a_participants_page_shows_points_that_wait_and_when_they_release(client: Any) -> None:
    program = await new_program(client)
    ann = await new_participant(client, program)
    rule = await client.post("/v1/earning-rules", headers=program.headers, json={
        "name": "Sales, after the return window", "activity_type": "sale", "pending_days": 14,
        "award": {"type": "fixed", "points": 70}})
    assert rule.status_code == 201, rule.text
    sent = await client.post("/v1/activities", headers=program.headers, json={"activities": [{
        "external_id": "INV-9", "type": "sale", "participant_external_id": ann["external_id"],
        "occurred_at": datetime.now(timezone.utc).isoformat(), "attributes": {"amount": 5000}}]})
    assert sent.status_code == 200
    _, session = await person_in(client, program, "viewer")
    page = html.unescape((await get(client, f"/console/p/{program.id}/participants/{ann['id']}", session)).text)
    release = (datetime.now(timezone.utc) + timedelta(days=14)).strftime("%Y-%m-%d")
    assert 'id="pending">70<' in page and "<caption>Pending points</caption>" in page and release in page


async def test_a_manager_releases_an_approval_lot_once_and_a_viewer_cannot(client: Any) -> None:
    program = await new_program(client)
    ann = await new_participant(client, program)
    rule = await client.post("/v1/earning-rules", headers=program.headers, json={
        "name": "Deals, once the distributor confirms", "activity_type": "deal_registered", "pending_until": "approval",
        "award": {"type": "fixed", "points": 400}})
    assert rule.status_code == 201, rule.text
    sent = await client.post("/v1/activities", headers=program.headers, json={"activities": [{
        "external_id": "DEAL-1", "type": "deal_registered", "participant_external_id": ann["external_id"],
        "occurred_at": datetime.now(timezone.utc).isoformat(), "attributes": {}}]})
    assert sent.status_code == 200, sent.text
    lots = (await client.get(f"/v1/participants/{ann['id']}/pending-lots", headers=program.headers)).json()["items"]
    assert [lot["points"] for lot in lots] == [400]
    path = f"/console/p/{program.id}/participants/{ann['id']}"
    release = f"{path}/pending-lots/{lots[0]['id']}/release"

    _, viewer = await person_in(client, program, "viewer")
    seen = html.unescape((await get(client, path, viewer)).text)
    assert "on a manager's approval" in seen and "Approve and release" not in seen
    refused = await post(client, release, viewer, {"csrf": csrf_of(seen)})
    assert refused.status_code == 403

    _, manager = await person_in(client, program, "manager")
    shown = (await get(client, path, manager)).text
    assert "Approve and release" in shown
    without_token = await post(client, release, manager, {"csrf": "forged"})
    assert without_token.status_code == 403
    for _ in range(2):  # a double submit releases once
        done = await post(client, release, manager, {"csrf": csrf_of(shown)})
        assert done.status_code == 303 and done.headers["location"].endswith("done=lot-released")
    wallet = (await client.get(f"/v1/participants/{ann['id']}/wallet", headers=program.headers)).json()
    assert (wallet["available"], wallet["pending"]) == (400, 0), wallet
    after = html.unescape((await get(client, path, manager)).text)
    assert "<caption>Pending points</caption>" not in after and 'id="available">400 ' in after
    log = (await client.get("/v1/audit-events", headers=program.headers, params={"kind": "pending_lot.released"}))
    assert len(log.json()["items"]) == 1, log.text
