"""Enrolling, finding and managing participants and teams."""

from __future__ import annotations

import pytest

from tests.factories import new_participant, new_program, random_ref

pytestmark = pytest.mark.sql


async def test_upsert_by_external_id_answers_201_then_200_with_the_same_participant(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    body = {"external_id": "dealer-7-sam", "display_name": "Sam Ortiz", "email": "sam@dealer.example"}
    first = await client.post("/v1/participants", json=body, headers=program.headers)
    again = await client.post("/v1/participants", json={**body, "display_name": "Other"}, headers=program.headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["display_name"] == "Sam Ortiz"
    assert first.json()["public_id"].startswith("p-")


async def test_list_pages_through_everyone_newest_first_without_repeats(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    made = [(await new_participant(client, program))["id"] for _ in range(7)]
    seen, cursor = [], None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = (await client.get("/v1/participants", params=params, headers=program.headers)).json()
        seen += [p["id"] for p in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == list(reversed(made))


async def test_search_finds_by_name_email_and_external_id(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    jill = await new_participant(client, program, display_name="Jill Dawson", email="jill@northside.example",
                                 external_id="crm-991")
    await new_participant(client, program, display_name="Tom Baker")
    for q in ("dawson", "NORTHSIDE", "crm-99"):
        items = (await client.get("/v1/participants", params={"q": q}, headers=program.headers)).json()["items"]
        assert [p["id"] for p in items] == [jill["id"]], q


async def test_search_matches_percent_and_underscore_literally(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    underscored = await new_participant(client, program, display_name="Kim Lee", email="kim_lee@dealer.example")
    await new_participant(client, program, display_name="Kim Loo", email="kimxlee@dealer.example")
    percent = await new_participant(client, program, display_name="Top 5% Club")
    for q, expected in (("kim_lee", [underscored["id"]]), ("5%", [percent["id"]]), ("%", [percent["id"]]),
                        ("_", [underscored["id"]]), ("\\", [])):
        items = (await client.get("/v1/participants", params={"q": q}, headers=program.headers)).json()["items"]
        assert [p["id"] for p in items] == expected, q


async def test_update_changes_segment_and_team_and_refuses_unknown_teams(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    team = (await client.post("/v1/teams", json={"name": "Northside"}, headers=program.headers)).json()
    person = await new_participant(client, program)
    updated = await client.patch(f"/v1/participants/{person['id']}", json={"segment": "gold", "team_id": team["id"]},
                                 headers=program.headers)
    assert (updated.json()["segment"], updated.json()["team_id"]) == ("gold", team["id"])
    members = (await client.get(f"/v1/teams/{team['id']}/members", headers=program.headers)).json()["items"]
    assert [m["id"] for m in members] == [person["id"]]
    bad = await client.patch(f"/v1/participants/{person['id']}", json={"team_id": "team_nope"},
                             headers=program.headers)
    assert bad.status_code == 422 and bad.json()["code"] == "validation_error"
    assert (await client.get(f"/v1/participants/{person['id']}", headers=program.headers)).json()["team_id"] == team["id"]


async def test_team_names_are_unique_within_a_program(client) -> None:  # type: ignore[no-untyped-def]
    program, other = await new_program(client), await new_program(client)
    assert (await client.post("/v1/teams", json={"name": "East"}, headers=program.headers)).status_code == 201
    again = await client.post("/v1/teams", json={"name": "East"}, headers=program.headers)
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    assert (await client.post("/v1/teams", json={"name": "East"}, headers=other.headers)).status_code == 201


async def test_csv_import_upserts_good_rows_and_reports_each_bad_one(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    existing = await new_participant(client, program, external_id="crm-1", display_name="Old Name")
    csv = (
        "external_id,display_name,email,team_id,segment\n"
        "crm-1,New Name,,,gold\n"           # update
        "crm-2,Ana Ruiz,ana@d.example,,\n"  # create
        ",No Id,,,\n"                       # bad: no external id
        "crm-3,Bad Mail,not-an-email,,\n"   # bad: email
        "crm-4,Lost Team,,team_missing,\n"  # bad: team
        "crm-5,Lee Chan,,,silver\n"         # create, after the bad rows
    )
    response = await client.post("/v1/participants/import", json={"csv": csv}, headers=program.headers)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["created"], report["updated"]) == (2, 1)
    assert [e["row"] for e in report["errors"]] == [4, 5, 6]
    assert "email" in report["errors"][1]["error"]
    updated = (await client.get(f"/v1/participants/{existing['id']}", headers=program.headers)).json()
    assert (updated["display_name"], updated["segment"]) == ("New Name", "gold")
    names = {p["external_id"] for p in
             (await client.get("/v1/participants", headers=program.headers)).json()["items"]}
    assert names == {"crm-1", "crm-2", "crm-5"}


async def test_csv_without_the_required_columns_is_refused_whole(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    response = await client.post("/v1/participants/import", json={"csv": "name,email\nx,y\n"},
                                 headers=program.headers)
    assert response.status_code == 422
    assert "external_id" in response.json()["detail"]


async def test_imported_participants_can_receive_points(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    ext = random_ref("crm")
    await client.post("/v1/participants/import", json={"csv": f"external_id,display_name\n{ext},Kim\n"},
                      headers=program.headers)
    person = (await client.get("/v1/participants", params={"q": ext}, headers=program.headers)).json()["items"][0]
    response = await client.post("/v1/points/grants", json={"participant_id": person["id"], "points": 5, "reason": "x"},
                                 headers={**program.headers, "Idempotency-Key": random_ref()})
    assert response.status_code == 201


async def test_a_deactivated_participant_earns_nothing_new_until_reactivated(client) -> None:  # type: ignore[no-untyped-def]
    from tests.factories import grant

    program = await new_program(client)
    person = await new_participant(client, program)
    assert (await grant(client, program, person["id"], 100)).status_code == 201
    off = await client.patch(f"/v1/participants/{person['id']}", json={"status": "deactivated"},
                             headers=program.headers)
    assert off.status_code == 200, off.text
    refused = await grant(client, program, person["id"], 50, key="after-leaving")
    assert refused.status_code == 409 and refused.json()["code"] == "participant_inactive", refused.text
    # A clawback still works on a departed rep.
    clawback = await client.post("/v1/points/deductions", headers={**program.headers, "Idempotency-Key": "claw"},
                                 json={"participant_id": person["id"], "points": 30, "reason": "returned sale"})
    assert clawback.status_code == 201, clawback.text
    wallet = (await client.get(f"/v1/participants/{person['id']}/wallet", headers=program.headers)).json()
    assert wallet["available"] == 70
    await client.patch(f"/v1/participants/{person['id']}", json={"status": "active"}, headers=program.headers)
    again = await grant(client, program, person["id"], 50, key="after-leaving")
    assert again.status_code == 201 and again.json()["balance"]["available"] == 120


@pytest.mark.parametrize("line_end", ["\r\n", "\r", "\n"], ids=["excel-crlf", "bare-cr", "lf"])
async def test_csv_import_takes_what_excel_and_google_sheets_write(client, line_end) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    # Excel's "CSV UTF-8": a byte-order mark, headers as people type them, quoted cells, an
    # empty formatted row.
    rows = ["External ID,Display Name,Email", 'x-1,"Ruiz, Ana",ana@d.example', "x-2,Lee Chan,", ",,"]
    csv = "\ufeff" + line_end.join(rows) + line_end
    response = await client.post("/v1/participants/import", json={"csv": csv}, headers=program.headers)
    assert response.status_code == 200, response.text
    report = response.json()
    assert {k: v for k, v in report.items() if k != "participants"} == {
        "created": 2, "updated": 0, "unchanged": 0, "errors": []}
    assert [p["status"] for p in report["participants"]] == ["created", "created"]
    names = sorted(p["display_name"] for p in
                   (await client.get("/v1/participants", headers=program.headers)).json()["items"])
    assert names == ["Lee Chan", "Ruiz, Ana"]


async def test_csv_import_reports_bad_rows_in_words_not_python(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    csv = "\r".join([
        "external_id,display_name,email",
        "ok-1,Ann,",
        "long-1," + "n" * 201 + ",",
        ",No Id,",
        "mail-1,Bad Mail,not-an-email",
        "nul-1,Nul\x00Name,",
        "ok-2,Bob,",
    ])
    report = (await client.post("/v1/participants/import", json={"csv": csv}, headers=program.headers)).json()
    assert report["created"] == 2
    assert [(e["row"], e["error"]) for e in report["errors"]] == [
        (3, "display_name must be at most 200 characters"),
        (4, "external_id is required"),
        (5, "email is not in the expected form"),
        (6, "display_name contains a NUL character"),
    ]
    assert not any("Expected" in e["error"] or "$." in e["error"] for e in report["errors"])


async def test_csv_import_takes_excel_semicolons_from_a_comma_decimal_locale(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    # What Excel writes in Germany or France: `;` between cells (a comma is the decimal mark).
    csv = "\ufeffexternal_id;display_name;segment\r\nde-1;\"Müller; Anna\";gold\r\nde-2;Jörg Weiß;\r\n"
    report = (await client.post("/v1/participants/import", json={"csv": csv}, headers=program.headers)).json()
    assert {k: v for k, v in report.items() if k != "participants"} == {
        "created": 2, "updated": 0, "unchanged": 0, "errors": []}
    people = (await client.get("/v1/participants", headers=program.headers)).json()["items"]
    assert sorted((p["display_name"], p["segment"]) for p in people) == [("Jörg Weiß", None),
                                                                          ("Müller; Anna", "gold")]
