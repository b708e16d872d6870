"""Spin campaigns and sweepstakes in the console through HTTP, as a browser speaks it: the
wheel designer (its figures are the domain's), a refused design, a campaign's report, a
sweepstakes from its rules preview to a forfeit, and the roles and CSRF refusals."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest

from console.manager.wheel_picture import percent, points, slices
from tests.console.sessions import csrf_of, get, person_in, post
from tests.factories import (ProgramHandle, buy_entries, catalog_item, new_program, random_ref, spin,
                             spinning_participant, wait_until)

# Pages over domain reads and use cases that their own tests run on Postgres too: SQLite
# only, to keep CI under its 20 minutes.


def wheel_form(csrf: str, **fields: str) -> dict[str, str]:
    """A designer form: three segments (nothing, points, and a free spin) unless told otherwise."""
    form = {"csrf": csrf, "intent": "save", "name": "Friday wheel", "cost_points": "10", "cap": "3",
            "budget": "", "starts_at": "", "ends_at": "", "segments": "",
            "seg-0-label": "Try again", "seg-0-weight": "5", "seg-0-colour": "#1f5fbf", "seg-0-prize": "nothing",
            "seg-1-label": "25 points", "seg-1-weight": "2", "seg-1-colour": "#f2a900", "seg-1-prize": "points",
            "seg-1-points": "25",
            "seg-2-label": "Spin again", "seg-2-weight": "1", "seg-2-colour": "#1e7b34", "seg-2-prize": "free_spin",
            "seg-2-spins": "1"}
    form.update(fields)
    return form


def text_of(page: str, element_id: str) -> str:
    found = re.search(rf'id="{element_id}"[^>]*>([^<]*)<', page)
    assert found, element_id
    return html.unescape(found.group(1)).strip()


def wheel_paths(page: str) -> list[str]:
    group = re.search(r'<g id="wheel-slices">(.*?)</g>', page, re.S)
    assert group
    return re.findall(r'<path d="([^"]+)"', group.group(1))


async def campaigns_of(client: Any, program: ProgramHandle) -> list[dict[str, Any]]:
    return (await client.get("/v1/campaigns", headers=program.headers)).json()["items"]


async def audit_kinds(client: Any, program: ProgramHandle) -> list[str]:
    return [e["kind"] for e in (await client.get("/v1/audit-events", headers=program.headers)).json()["items"]]


async def test_a_designed_wheel_shows_the_domains_figures_and_picture(client: Any) -> None:
    program = await new_program(client)
    item = await catalog_item(client, program, face_value=500)
    _, session = await person_in(client, program, "manager")
    base = f"/console/p/{program.id}/spin-campaigns"
    designer = await get(client, f"{base}/new", session)
    assert designer.status_code == 200 and ">Create campaign</button>" in designer.text
    assert re.search(r'<script type="module" src="/console/static/[0-9a-f]{12}/wheel\.js"></script>', designer.text)
    # The starting design (3 x nothing, 1 x 50 points, 20 a spin): the figures are already there.
    assert text_of(designer.text, "expected-cost") == "12.50 points"
    assert text_of(designer.text, "rtp") == "62.50%"

    form = wheel_form(csrf_of(designer.text), **{
        "seg-3-label": "Gift card", "seg-3-weight": "1", "seg-3-colour": "#b3261e", "seg-3-prize": "item",
        "seg-3-item-id": item["id"], "seg-3-stock": "4", "segments": "gold, silver"})
    created = await post(client, f"{base}/new", session, form)
    assert created.status_code == 303, created.text
    campaign_id = created.headers["location"].split("/")[-1].split("?")[0]
    [campaign] = await campaigns_of(client, program)
    assert campaign["id"] == campaign_id and campaign["status"] == "draft"
    assert [s["prize"] for s in campaign["segments"]] == [
        {"type": "nothing"}, {"type": "points", "points": 25}, {"type": "free_spin", "spins": 1},
        {"type": "item", "item_id": item["id"], "stock": 4}]
    assert campaign["max_spins_per_participant_per_day"] == 3
    assert campaign["eligibility"] == {"segments": ["gold", "silver"], "team_ids": None}

    # The campaign's page and the designer show the domain's economics, written alike.
    economics = campaign["economics"]
    expected = f"{points(economics['expected_payout_points'])} points"
    rtp = percent(economics["return_to_player"])
    assert economics["expected_payout_points"] == (2 * 25 + 1 * 10 + 1 * item["points_price"]) / 9
    page = await get(client, created.headers["location"], session)
    assert page.status_code == 200 and "Campaign created" in page.text
    assert (text_of(page.text, "expected-cost"), text_of(page.text, "rtp")) == (expected, rtp)
    for odds in economics["odds"]:
        assert f'<td class="num">{percent(odds["probability"])}</td>' in page.text
    weights = [s["weight"] for s in campaign["segments"]]
    assert wheel_paths(page.text) == [s.path for s in slices(weights, [s.get("color") for s in campaign["segments"]])]
    edit = await get(client, f"{base}/{campaign_id}/design", session)
    assert (text_of(edit.text, "expected-cost"), text_of(edit.text, "rtp")) == (expected, rtp)
    assert wheel_paths(edit.text) == wheel_paths(page.text)
    assert 'value="Friday wheel"' in edit.text and 'value="gold, silver"' in edit.text

    # A draft's design changes; the audit log names both changes.
    saved = await post(client, f"{base}/{campaign_id}/design", session,
                       wheel_form(csrf_of(edit.text), **{"seg-0-weight": "1", "name": "Friday wheel v2"}))
    assert saved.status_code == 303, saved.text
    [campaign] = await campaigns_of(client, program)
    assert campaign["name"] == "Friday wheel v2" and campaign["segments"][0]["weight"] == 1
    assert campaign["economics"]["expected_payout_points"] == (2 * 25 + 10) / 4
    kinds = await audit_kinds(client, program)
    assert "campaign.created" in kinds and "campaign.designed" in kinds

    # Launched, its design is fixed: the domain refuses and the form says why.
    page = await get(client, f"{base}/{campaign_id}", session)
    assert "Edit design" in page.text
    assert (await post(client, f"{base}/{campaign_id}/launch", session, {"csrf": csrf_of(page.text)})).status_code == 303
    assert "Edit design" not in (await get(client, f"{base}/{campaign_id}", session)).text
    refused = await post(client, f"{base}/{campaign_id}/design", session, wheel_form(csrf_of(page.text)))
    assert refused.status_code == 409
    assert "only a draft can change" in html.unescape(refused.text)
    assert (await campaigns_of(client, program))[0]["name"] == "Friday wheel v2"


async def test_the_designer_adds_and_removes_segments_without_script(client: Any) -> None:
    program = await new_program(client)
    _, session = await person_in(client, program, "owner")
    path = f"/console/p/{program.id}/spin-campaigns/new"
    csrf = csrf_of((await get(client, path, session)).text)
    added = await post(client, path, session, wheel_form(csrf, intent="add"))
    assert added.status_code == 200
    assert 'name="seg-3-label"' in added.text and 'value="Spin again"' in added.text
    removed = await post(client, path, session, wheel_form(csrf, intent="remove-1"))
    assert 'name="seg-1-label"' not in removed.text and 'name="seg-2-label"' in removed.text
    assert text_of(removed.text, "expected-cost") == "1.67 points"  # (1 x 10) / 6
    assert await campaigns_of(client, program) == []


@pytest.mark.parametrize(("fields", "message"), [
    ({"starts_at": "2027-01-02T10:00", "ends_at": "2027-01-01T10:00"}, "starts_at must be before ends_at"),
    ({"seg-1-weight": "0"}, "Segment 2, weight: Expected `int` >= 1"),
    ({"seg-0-label": ""}, "Segment 1, label: Expected `str` of length >= 1"),
    ({"seg-1-prize": "item", "seg-1-item-id": "itm_nothere", "seg-1-stock": "3"}, "no active fixed-value item 'itm_nothere'"),
    ({"cost_points": "ten"}, "Cost per spin: Expected `int`, got `str`"),
])
async def test_a_refused_design_shows_the_domains_message_and_creates_nothing(
        client: Any, fields: dict[str, str], message: str) -> None:
    program = await new_program(client)
    _, session = await person_in(client, program, "manager")
    path = f"/console/p/{program.id}/spin-campaigns/new"
    csrf = csrf_of((await get(client, path, session)).text)
    refused = await post(client, path, session, wheel_form(csrf, name="Kept as typed", **fields))
    assert refused.status_code == 422
    assert message in html.unescape(text_of(refused.text, "form-error"))
    assert 'value="Kept as typed"' in refused.text
    assert await campaigns_of(client, program) == []
    assert "campaign.created" not in await audit_kinds(client, program)


async def test_the_campaign_report_charts_wins_against_the_odds(client: Any) -> None:
    program = await new_program(client)
    _, session = await person_in(client, program, "manager")
    base = f"/console/p/{program.id}/spin-campaigns"
    csrf = csrf_of((await get(client, f"{base}/new", session)).text)
    form = wheel_form(csrf, cost_points="1", cap="")
    created = await post(client, f"{base}/new", session, form)
    campaign_id = created.headers["location"].split("/")[-1].split("?")[0]
    assert (await post(client, f"{base}/{campaign_id}/launch", session, {"csrf": csrf})).status_code == 303
    _, headers = await spinning_participant(client, program, 20)
    for _ in range(6):
        assert (await spin(client, campaign_id, headers)).status_code == 201
    async def spins_reported() -> int:
        return (await client.get(f"/v1/campaigns/{campaign_id}/report", headers=program.headers)).json()["spins"]

    assert await wait_until(spins_reported, 6) == 6
    report = await client.get(f"/v1/campaigns/{campaign_id}/report", headers=program.headers)
    page = await get(client, f"{base}/{campaign_id}", session)
    assert text_of(page.text, "report-spins") == str(report.json()["spins"])
    assert 'id="wins-chart"' in page.text and 'role="img"' in page.text
    table = re.search(r'<table id="wins">(.*?)</table>', page.text, re.S)
    assert table
    for segment in report.json()["segments"]:
        row = f'<td>{segment["label"]}</td><td class="num">{percent(segment["configured_probability"])}</td>' \
              f'<td class="num">{segment["wins"]}</td><td class="num">{percent(segment["observed_share"])}</td>'
        assert row in table.group(1)


def sweepstakes_form(csrf: str, intent: str, **fields: str) -> dict[str, str]:
    form = {"csrf": csrf, "intent": intent, "name": "Dealer of the month", "description": "",
            "starts_at": "", "closes_at": "2099-01-01T12:00", "entry_cost_points": "5",
            "max_entries_per_participant": "3", "winners": "1", "alternates": "1", "sponsor": "",
            "eligibility": "Dealers enrolled before the close.", "free_entry_method": "Write to us.",
            "claim_days": "14", "rules_extra": "",
            "prize-0-type": "points", "prize-0-points": "1000", "prize-0-quantity": "1", "prize-0-description": ""}
    form.update(fields)
    return form


async def sweepstakes_of(client: Any, program: ProgramHandle) -> list[dict[str, Any]]:
    return (await client.get("/v1/sweepstakes", headers=program.headers)).json()["items"]


async def test_a_sweepstakes_is_previewed_created_closed_drawn_and_forfeited(client: Any) -> None:
    program = await new_program(client)
    _, session = await person_in(client, program, "manager")
    base = f"/console/p/{program.id}/sweepstakes"
    csrf = csrf_of((await get(client, f"{base}/new", session)).text)

    preview = await post(client, f"{base}/new", session, sweepstakes_form(csrf, "preview"))
    assert preview.status_code == 200
    rules = html.unescape(re.search(r'<pre class="rules" id="rules-preview"[^>]*>(.*?)</pre>', preview.text,
                                    re.S).group(1))  # type: ignore[union-attr]
    assert rules.startswith("OFFICIAL RULES: Dealer of the month")
    assert "1 x 1,000 points (approximate retail value 10.00 USD each)" in rules
    assert "Free alternate method of entry: Write to us." in rules
    assert "10.00 USD" in preview.text and await sweepstakes_of(client, program) == []
    refused = await post(client, f"{base}/new", session, sweepstakes_form(csrf, "create", winners="2"))
    assert refused.status_code == 422
    assert "the prizes' quantities add up to 1, not to the 2 winners" in html.unescape(refused.text)
    assert await sweepstakes_of(client, program) == []

    # No prize (handled outside): a winner who does not claim can be forfeited to the alternate.
    created = await post(client, f"{base}/new", session, sweepstakes_form(
        csrf, "create", **{"prize-0-type": "", "prize-0-points": ""}))
    assert created.status_code == 422  # a prize row left half-filled is the domain's to refuse
    form = {k: v for k, v in sweepstakes_form(csrf, "create").items() if not k.startswith("prize-")}
    created = await post(client, f"{base}/new", session, form)
    assert created.status_code == 303, created.text
    [sweep] = await sweepstakes_of(client, program)
    assert sweep["name"] == "Dealer of the month" and sweep["entry_cost_points"] == 5
    page_path = created.headers["location"].split("?")[0]
    assert page_path == f"{base}/{sweep['id']}"

    people = [await spinning_participant(client, program, 50) for _ in range(2)]
    for _, headers in people:
        assert (await buy_entries(client, sweep["id"], headers, 2)).status_code == 201
    page = await get(client, page_path, session)
    assert (text_of(page.text, "tickets"), text_of(page.text, "entrants")) == ("4", "2")
    assert ">Close</button>" in page.text and ">Draw</button>" not in page.text

    assert (await post(client, f"{page_path}/close", session, {"csrf": csrf})).status_code == 303
    closed = (await client.get(f"/v1/sweepstakes/{sweep['id']}", headers=program.headers)).json()
    page = await get(client, page_path, session)
    assert text_of(page.text, "sweepstakes-status") == "closed"
    assert text_of(page.text, "entries-hash") == closed["entries_hash"]
    assert ">Draw</button>" in page.text

    # A draw needs a beacon (no drand is configured here): the domain says so, nothing is drawn.
    no_beacon = await post(client, f"{page_path}/draw", session, {"csrf": csrf})
    assert no_beacon.status_code == 422 and "send a beacon" in html.unescape(no_beacon.text)
    beacon = {"beacon-source": "drand quicknet", "beacon-round": "12345", "beacon-value": "ab" * 32}
    assert (await post(client, f"{page_path}/draw", session, {"csrf": csrf, **beacon})).status_code == 303
    proof = (await client.get(f"/v1/public/sweepstakes/{sweep['id']}/proof")).json()
    assert proof["beacon"] == {"source": "drand quicknet", "round": 12345, "value": "ab" * 32}
    page = await get(client, page_path, session)
    assert f'href="/v1/public/sweepstakes/{sweep["id"]}/proof"' in page.text
    report = (await client.get(f"/v1/sweepstakes/{sweep['id']}/report", headers=program.headers)).json()
    [winner, alternate] = report["winners"]
    assert winner["public_id"] in page.text and alternate["public_id"] in page.text
    assert ">Forfeit pick 1</button>" in page.text and ">Forfeit pick 2</button>" not in page.text

    no_reason = await post(client, f"{page_path}/winners/1/forfeit", session, {"csrf": csrf, "reason": " "})
    assert no_reason.status_code == 422
    forfeited = await post(client, f"{page_path}/winners/1/forfeit", session,
                           {"csrf": csrf, "reason": "Did not claim in 14 days"})
    assert forfeited.status_code == 303, forfeited.text
    report = (await client.get(f"/v1/sweepstakes/{sweep['id']}/report", headers=program.headers)).json()
    assert [(w["pick"], w["role"], w["status"]) for w in report["winners"]] == [(1, "winner", "forfeited"),
                                                                                 (2, "winner", "none")]
    assert "replaces pick 1" in (await get(client, page_path, session)).text
    kinds = await audit_kinds(client, program)
    for kind in ("sweepstakes.created", "sweepstakes.closed", "sweepstakes.drawn", "sweepstakes.forfeited"):
        assert kind in kinds


async def test_a_viewer_sees_no_change_button_and_the_server_refuses_their_forged_posts(client: Any) -> None:
    program = await new_program(client)
    _, manager = await person_in(client, program, "manager")
    _, viewer = await person_in(client, program, "viewer")
    base = f"/console/p/{program.id}"
    csrf = csrf_of((await get(client, f"{base}/spin-campaigns/new", manager)).text)
    created = await post(client, f"{base}/spin-campaigns/new", manager, wheel_form(csrf))
    campaign_id = created.headers["location"].split("/")[-1].split("?")[0]
    sweep_made = await post(client, f"{base}/sweepstakes/new", manager, sweepstakes_form(csrf, "create"))
    sweep_path = sweep_made.headers["location"].split("?")[0]

    pages = {path: await get(client, f"{base}/{path}", viewer) for path in (
        "spin-campaigns", "spin-campaigns/new", f"spin-campaigns/{campaign_id}", f"spin-campaigns/{campaign_id}/design",
        "sweepstakes", "sweepstakes/new")}
    pages["sweep"] = await get(client, sweep_path, viewer)
    for path, shown in pages.items():
        assert shown.status_code == 200, path
        buttons = re.findall(r"<button[^>]*>(.*?)</button>", shown.text, re.S)
        assert buttons == ["Sign out", "Close all my sessions"], path
        for link in (">New campaign</a>", ">Edit design</a>", ">New sweepstakes</a>"):
            assert link not in shown.text, (path, link)
    viewer_csrf = csrf_of(pages["sweep"].text)
    forged = [
        (f"{base}/spin-campaigns/new", wheel_form(viewer_csrf, name="Forged")),
        (f"{base}/spin-campaigns/{campaign_id}/design", wheel_form(viewer_csrf, name="Forged")),
        (f"{base}/sweepstakes/new", sweepstakes_form(viewer_csrf, "create", name="Forged")),
        (f"{sweep_path}/close", {"csrf": viewer_csrf}),
        (f"{sweep_path}/draw", {"csrf": viewer_csrf, "beacon-source": "x", "beacon-round": "1", "beacon-value": "y"}),
        (f"{sweep_path}/winners/1/forfeit", {"csrf": viewer_csrf, "reason": "forged"}),
    ]
    for path, form in forged:
        refused = await post(client, path, viewer, form)
        assert refused.status_code == 403, path
    [campaign] = await campaigns_of(client, program)
    assert campaign["name"] == "Friday wheel" and campaign["status"] == "draft"
    [sweep] = await sweepstakes_of(client, program)
    assert sweep["name"] == "Dealer of the month" and sweep["status"] == "open"


async def test_a_change_without_the_forms_token_is_refused_and_changes_nothing(client: Any) -> None:
    program = await new_program(client)
    _, manager = await person_in(client, program, "owner")
    base = f"/console/p/{program.id}"
    csrf = csrf_of((await get(client, f"{base}/sweepstakes/new", manager)).text)
    made = await post(client, f"{base}/sweepstakes/new", manager, sweepstakes_form(csrf, "create"))
    sweep_path = made.headers["location"].split("?")[0]
    for token in (None, "guessed"):
        extra = {} if token is None else {"csrf": token}
        for path, form in ((f"{base}/spin-campaigns/new", wheel_form("")), (f"{sweep_path}/close", {}),
                           (f"{base}/sweepstakes/new", sweepstakes_form("", "create", name=random_ref("sw")))):
            form = {k: v for k, v in form.items() if k != "csrf"} | extra
            assert (await post(client, path, manager, form)).status_code == 403, (path, token)
    assert await campaigns_of(client, program) == []
    [sweep] = await sweepstakes_of(client, program)
    assert sweep["status"] == "open"
