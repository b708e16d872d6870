"""Rewards valued for taxes: the year's threshold, the W-9 that lets a salesperson pass it,
the program's choice to flag or refuse, and the year-end report."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from fulfillment.tables import Order
from fulfillment.taxes import reportable_total, threshold
from programs.programs import get_program
from tests.factories import available, new_participant, random_ref, redeem, shop, shopper

pytestmark = pytest.mark.sql

W9 = {"legal_name": "Dana Q. Seller", "tin": "123-45-6789", "tin_type": "ssn", "certified": True,
      "address": {"line1": "1 Main St", "city": "Springfield", "state": "IL", "postal_code": "62701"}}


def this_year(zone: str = "UTC") -> int:
    return datetime.now(ZoneInfo(zone)).year


async def test_reaching_the_threshold_exactly_needs_the_form_under_refuse(client) -> None:  # type: ignore[no-untyped-def]
    program, _, item = await shop(client, face_value=2500, tax_form_policy="refuse",
                                  tax_thresholds={str(this_year()): 5000})
    person, me = await shopper(client, program, 20_000)
    first = await redeem(client, me, item["id"])
    assert first.status_code == 201, first.text  # $25 of $50
    before = await available(client, program, person["id"])
    refused = await redeem(client, me, item["id"])  # would make exactly $50: reportable
    assert refused.status_code == 409, refused.text
    problem = refused.json()
    assert problem["code"] == "tax_form_required"
    assert "W-9" in problem["detail"] and "$50.00" in problem["detail"]
    assert await available(client, program, person["id"]) == before  # nothing held

    summary = (await client.get("/v1/me/tax-profile", headers=me)).json()
    assert (summary["reportable"], summary["threshold"], summary["profile"]["status"]) == (2500, 5000, "none")
    sent = await client.put("/v1/me/tax-profile", json=W9, headers=me)
    assert sent.status_code == 200, sent.text
    assert sent.json()["profile"] == {"status": "received", "legal_name": "Dana Q. Seller", "tin_last4": "6789",
                                      "received_at": sent.json()["profile"]["received_at"]}
    assert "123456789" not in sent.text and "123-45" not in sent.text
    assert (await redeem(client, me, item["id"])).status_code == 201

    as_admin = await client.get(f"/v1/participants/{person['id']}/tax-profile", headers=program.headers)
    assert as_admin.json()["profile"]["tin_last4"] == "6789" and "123456789" not in as_admin.text
    assert as_admin.json()["reportable"] == 5000


async def test_under_flag_the_order_goes_through_marked_for_the_program(client) -> None:  # type: ignore[no-untyped-def]
    program, _, item = await shop(client, face_value=2500, tax_thresholds={str(this_year()): 2500})
    person, me = await shopper(client, program, 5000)
    order = await redeem(client, me, item["id"])
    assert order.status_code == 201, order.text
    assert "tax_flagged" not in order.text  # the participant is not shown the program's flag
    seen = (await client.get(f"/v1/orders/{order.json()['id']}", headers=program.headers)).json()
    assert seen["tax_flagged"] is True
    summary = (await client.get("/v1/me/tax-profile", headers=me)).json()
    assert summary["form_needed"] is True
    asked = await client.post(f"/v1/participants/{person['id']}/tax-profile/request", headers=program.headers)
    assert asked.json()["profile"]["status"] == "requested"
    feed = (await client.get("/v1/me/feed", headers=me)).json()["items"]
    assert any(line["kind"] == "tax_form_requested" for line in feed)


async def test_the_year_end_report_lists_everyone_at_the_threshold_with_their_form(client) -> None:  # type: ignore[no-untyped-def]
    year = this_year()
    program, partner, item = await shop(client, face_value=2500, tax_thresholds={str(year): 5000})
    with_form, me = await shopper(client, program, 10_000)
    assert (await client.put("/v1/me/tax-profile", json={**W9, "legal_name": "=HYPERLINK(1)"}, headers=me)).status_code == 200
    without_form, other = await shopper(client, program, 10_000)
    under, third = await shopper(client, program, 10_000)
    for headers in (me, me, other, other, third):
        assert (await redeem(client, headers, item["id"])).status_code == 201
    # A cancelled order gave nothing: it does not count.
    cancelled = (await redeem(client, third, item["id"])).json()
    assert (await client.post(f"/v1/orders/{cancelled['id']}/cancel", headers=program.headers)).status_code == 200

    answer = await client.get("/v1/program/tax-report", params={"year": year}, headers=program.headers)
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text)))
    assert {r["participant_id"] for r in rows} == {with_form["id"], without_form["id"]}
    mine = next(r for r in rows if r["participant_id"] == with_form["id"])
    assert (mine["form"], mine["tin"], mine["state"], mine["box3_other_income"]) == ("received", "123456789", "IL",
                                                                                     "50.00")
    assert mine["legal_name"] == "'=HYPERLINK(1)"  # a spreadsheet must not run it
    theirs = next(r for r in rows if r["participant_id"] == without_form["id"])
    assert (theirs["form"], theirs["tin"]) == ("missing", "")
    assert (await client.get("/v1/program/tax-report", params={"year": 1800},
                             headers=program.headers)).status_code == 400


async def test_the_tax_year_is_the_programs_calendar_year(client) -> None:  # type: ignore[no-untyped-def]
    zone = "Pacific/Auckland"
    program_handle, partner, item = await shop(client, timezone=zone)
    program = await get_program(program_handle.id)
    person = await new_participant(client, program_handle)
    new_year = datetime(2027, 1, 1, tzinfo=ZoneInfo(zone))
    for moment, value in [(new_year - timedelta(minutes=1), 100), (new_year, 1000), (new_year + timedelta(hours=1), 10)]:
        await Order.insert(Order(id=random_ref("ord"), program_id=program.id, participant_id=person["id"],
                                 item_id=item["id"], partner_id=partner["id"], face_value=value, currency="USD",
                                 points=1, status="fulfilled", created_at=moment.astimezone(timezone.utc),
                                 updated_at=moment.astimezone(timezone.utc))).run()
    # 2026-12-31 23:59 in Auckland is already 2026-12-31 10:59 UTC; midnight is 11:00 UTC.
    assert await reportable_total(program, person["id"], 2026) == 100
    assert await reportable_total(program, person["id"], 2027) == 1010
    assert (threshold(program, 2025), threshold(program, 2026), threshold(program, 2030)) == (60_000, 200_000, 200_000)


@pytest.mark.parametrize("change", [{"tin": "12345678"}, {"tin": "111-11-1111"}, {"certified": False},
                                    {"address": {**W9["address"], "state": "Illinois"}}, {"tin_type": "itin"}])
async def test_a_bad_form_is_refused_and_nothing_is_kept(client, change) -> None:  # type: ignore[no-untyped-def]
    program, _, _ = await shop(client)
    _, me = await shopper(client, program, 0)
    refused = await client.put("/v1/me/tax-profile", json={**W9, **change}, headers=me)
    assert refused.status_code in (400, 422), refused.text
    assert (await client.get("/v1/me/tax-profile", headers=me)).json()["profile"] == {"status": "none"}


async def test_the_years_total_every_redemption_reads_comes_from_one_index_alone(client) -> None:  # type: ignore[no-untyped-def]
    """Read before every redemption: one table read per order of the participant would grow
    with every order they ever placed (migration orders_tax_year)."""
    from piccolo.engine.postgres import PostgresEngine

    from fulfillment import taxes

    if isinstance(Order._meta.db, PostgresEngine):
        pytest.skip("reads SQLite's query plan")
    program, _, item = await shop(client)
    person, me = await shopper(client, program, 100_000)
    assert (await redeem(client, me, item["id"])).status_code == 201
    view = await get_program(program.id)
    year = taxes.tax_year(view, datetime.now(timezone.utc))
    start, end = taxes.year_bounds(view, year)
    plan = await Order.raw("EXPLAIN QUERY PLAN " + taxes._TOTAL, program.id, start, end, person["id"]).run()
    assert [row["detail"] for row in plan] == [
        "SEARCH orders USING COVERING INDEX orders_tax_year "
        "(participant_id=? AND program_id=? AND created_at>? AND created_at<?)"], plan
    assert await reportable_total(view, person["id"], year) == item["face_value"]["amount"]
