"""GET /v1/me/sweepstakes-entries through HTTP: the sweepstakes I entered, open, closed and
drawn, with my tickets and the outcome, paged by cursor; never another participant's."""

from __future__ import annotations

from typing import Any

import pytest

from tests.factories import bearer, buy_entries, grant, new_participant, new_program, new_sweepstakes, tokens_for

pytestmark = pytest.mark.sql

BEACON = {"source": "drand quicknet", "round": 77, "value": "drand-quicknet-round-77:0123"}
ONE_PRIZE = [{"type": "points", "points": 100}]


async def entrant(client: Any, program: Any) -> tuple[str, dict[str, str]]:
    person = await new_participant(client, program)
    assert (await grant(client, program, person["id"], 1000)).status_code == 201
    return person["id"], bearer((await tokens_for(client, program, person["id"]))["access_token"])


async def entered(client: Any, headers: dict[str, str], **query: Any) -> dict[str, Any]:
    response = await client.get("/v1/me/sweepstakes-entries", params=query, headers=headers)
    assert response.status_code == 200, response.text
    return response.json()


async def drawn(client: Any, program: Any, sweepstakes_id: str) -> None:
    assert (await client.post(f"/v1/sweepstakes/{sweepstakes_id}/close", headers=program.headers)).status_code == 200
    draw = await client.post(f"/v1/sweepstakes/{sweepstakes_id}/draw", json={"beacon": BEACON},
                             headers=program.headers)
    assert draw.status_code == 200, draw.text


async def test_my_entries_show_open_closed_and_drawn_sweepstakes_with_their_outcome(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    me_id, me = await entrant(client, program)
    _, other = await entrant(client, program)
    # Two entrants, one winner and one alternate: one of us wins, the other is the alternate.
    with_alternate = await new_sweepstakes(client, program, name="Alternate draw", winners=1, alternates=1,
                                           prizes=ONE_PRIZE)
    # Two entrants, one winner and no alternate: one wins, the other does not.
    no_alternate = await new_sweepstakes(client, program, name="Plain draw", winners=1, alternates=0,
                                         prizes=ONE_PRIZE)
    waiting = await new_sweepstakes(client, program, name="Closed, not drawn")
    only_other = await new_sweepstakes(client, program, name="Not mine")
    still_open = await new_sweepstakes(client, program, name="Still open")
    for sweep in (with_alternate, no_alternate, waiting):
        assert (await buy_entries(client, sweep["id"], me, 2)).status_code == 201
        assert (await buy_entries(client, sweep["id"], other, 1)).status_code == 201
    assert (await buy_entries(client, only_other["id"], other, 1)).status_code == 201
    assert (await buy_entries(client, still_open["id"], me, 3)).status_code == 201
    await drawn(client, program, with_alternate["id"])
    await drawn(client, program, no_alternate["id"])
    assert (await client.post(f"/v1/sweepstakes/{waiting['id']}/close", headers=program.headers)).status_code == 200

    mine = await entered(client, me)
    assert [e["name"] for e in mine["items"]] == ["Still open", "Closed, not drawn", "Plain draw", "Alternate draw"]
    assert mine["next_cursor"] is None
    by_name = {e["name"]: e for e in mine["items"]}
    assert by_name["Still open"]["outcome"] == "open" and by_name["Still open"]["my_tickets"] == 3
    assert by_name["Still open"]["total_tickets"] == 3
    assert by_name["Closed, not drawn"]["outcome"] == "awaiting_draw"
    assert by_name["Closed, not drawn"]["my_tickets"] == 2 and by_name["Closed, not drawn"]["total_tickets"] == 3
    theirs = {e["name"]: e for e in (await entered(client, other))["items"]}
    assert "Still open" not in theirs and theirs["Not mine"]["outcome"] == "open"
    assert {by_name["Alternate draw"]["outcome"], theirs["Alternate draw"]["outcome"]} == {"won", "alternate"}
    assert {by_name["Plain draw"]["outcome"], theirs["Plain draw"]["outcome"]} == {"won", "not_won"}
    for name in ("Alternate draw", "Plain draw"):
        outcome = by_name[name]
        assert outcome["proof_url"] == f"/v1/public/sweepstakes/{outcome['sweepstakes_id']}/proof"
        assert (await client.get(outcome["proof_url"])).status_code == 200
        if outcome["outcome"] == "won":
            assert outcome["pick"] == 1 and outcome["prize"]["points"] == 100
        elif outcome["outcome"] == "alternate":
            assert outcome["pick"] == 2 and "prize" not in outcome
        else:
            assert "pick" not in outcome
    assert me_id not in str(theirs)

    # Cursor paging: two at a time, the same four in the same order.
    first = await entered(client, me, limit=2)
    assert len(first["items"]) == 2 and first["next_cursor"]
    second = await entered(client, me, limit=2, cursor=first["next_cursor"])
    assert [e["sweepstakes_id"] for e in first["items"] + second["items"]] == \
        [e["sweepstakes_id"] for e in mine["items"]]
    assert second["next_cursor"] is None


async def test_my_entries_need_a_participant_and_a_good_cursor(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    _, me = await entrant(client, program)
    assert (await entered(client, me)) == {"items": [], "next_cursor": None}
    assert (await client.get("/v1/me/sweepstakes-entries", headers=program.headers)).status_code in (401, 403)
    assert (await client.get("/v1/me/sweepstakes-entries")).status_code == 401
    bad = await client.get("/v1/me/sweepstakes-entries", params={"cursor": "%%%"}, headers=me)
    assert bad.status_code in (400, 422) and bad.json()["code"] == "validation_error"
