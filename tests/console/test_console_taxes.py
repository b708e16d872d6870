"""Taxes in the manager console, through HTTP as a browser speaks it: the Funding page's tax
report (owners only, the API's own file, each download audited) and a participant's tax
form status with the name and the last 4 digits of the TIN only."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from tests.console.sessions import csrf_of, get, person_in, post
from tests.factories import new_participant, redeem, shop, shopper
from tests.fulfillment.test_taxes import W9, this_year

pytestmark = pytest.mark.sql


async def exports_of(client: Any, program: Any) -> list[dict[str, Any]]:
    answer = await client.get("/v1/audit-events", params={"kind": "tax_report.exported"}, headers=program.headers)
    assert answer.status_code == 200, answer.text
    return answer.json()["items"]


async def test_an_owner_downloads_the_tax_report_the_api_answers_and_it_is_audited(client: Any) -> None:
    year = this_year()
    program, _, item = await shop(client, face_value=2500, tax_thresholds={str(year): 2500})
    seller, me = await shopper(client, program, 5000)
    assert (await client.put("/v1/me/tax-profile", json=W9, headers=me)).status_code == 200
    assert (await redeem(client, me, item["id"])).status_code == 201
    _, owner = await person_in(client, program, "owner")

    funding = await get(client, f"/console/p/{program.id}/funding", owner)
    assert funding.status_code == 200 and ">Tax report</h2>" in funding.text
    assert f'<option value="{year - 1}" selected>' in funding.text and f'<option value="{year}"' in funding.text
    download = await post(client, f"/console/p/{program.id}/tax-report", owner,
                          {"csrf": csrf_of(funding.text), "year": str(year)})
    assert download.status_code == 200, download.text
    assert download.headers["content-type"].startswith("text/csv")
    assert f'filename="tax-report-{year}.csv"' in download.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(download.text)))
    assert [(r["participant_id"], r["tin"], r["box3_other_income"]) for r in rows] == [(seller["id"], "123456789",
                                                                                        "25.00")]
    api = await client.get("/v1/program/tax-report", params={"year": year}, headers=program.headers)
    assert api.text == download.text, "the console serves the API's file"
    exported = await exports_of(client, program)
    assert [e["actor"].split(":")[0] for e in exported] == ["key", "user"]  # newest first
    assert exported[1]["subject"] == str(year)

    refused = await post(client, f"/console/p/{program.id}/tax-report", owner,
                         {"csrf": csrf_of(funding.text), "year": "twenty"})
    assert refused.status_code == 422 and "tax year" in refused.text
    assert len(await exports_of(client, program)) == 2


@pytest.mark.parametrize("role", ["manager", "viewer"])
async def test_a_manager_or_viewer_sees_no_tax_report_and_the_server_refuses(client: Any, role: str) -> None:
    program, _, _ = await shop(client)
    _, session = await person_in(client, program, role)
    funding = await get(client, f"/console/p/{program.id}/funding", session)
    assert funding.status_code == 200 and "Tax report" not in funding.text and "tax-report" not in funding.text
    refused = await post(client, f"/console/p/{program.id}/tax-report", session,
                         {"csrf": csrf_of(funding.text), "year": str(this_year())})
    assert refused.status_code == 403 and "tax_year" not in refused.text
    assert await exports_of(client, program) == []


async def test_the_participant_page_shows_the_tax_form_status_name_and_last_4_only(client: Any) -> None:
    program, _, _ = await shop(client)
    _, session = await person_in(client, program, "viewer")
    nobody = await new_participant(client, program)
    page = await get(client, f"/console/p/{program.id}/participants/{nobody['id']}", session)
    assert 'id="tax-form-status">Not requested<' in page.text

    seller, me = await shopper(client, program, 0)
    assert (await client.put("/v1/me/tax-profile", json=W9, headers=me)).status_code == 200
    page = await get(client, f"/console/p/{program.id}/participants/{seller['id']}", session)
    assert 'id="tax-form-status">Received<' in page.text
    assert "Dana Q. Seller" in page.text and "ending 6789" in page.text
    for secret in ("123456789", "123-45", "45-6789", "Springfield", "1 Main St"):
        assert secret not in page.text
