"""The catalog as admins build it and participants browse it."""

from __future__ import annotations

import asyncio
import json

import pytest

from catalog import keys as catalog_keys, kept_pages
from catalog.tables import CatalogItem
from tests.factories import new_program, random_ref, shopper

pytestmark = pytest.mark.sql


async def item(client, program, **body):  # type: ignore[no-untyped-def]
    response = await client.post("/v1/catalog/items", headers=program.headers, json={"sku": random_ref(), **body})
    assert response.status_code == 201, response.text
    return response.json()


async def test_points_price_follows_the_point_value_and_markup(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client, point_value_cents=2, catalog_markup_bps=500)
    fixed = await item(client, program, brand="Target", name="Target $50", face_value={"amount": 5000, "currency": "USD"})
    assert fixed["points_price"] == 2625  # 5000 * 1.05 / 2
    variable = await item(client, program, brand="Visa", name="Visa prepaid", value_type="variable",
                          min_value={"amount": 1000, "currency": "USD"}, max_value={"amount": 50000, "currency": "USD"})
    assert (variable["points_price"], variable["points_per_unit"]) == (525, 53)
    wrong = await client.post("/v1/catalog/items", headers=program.headers, json={
        "brand": "Target", "name": "EUR card", "face_value": {"amount": 5000, "currency": "EUR"}})
    assert wrong.status_code == 422 and "currency" in wrong.json()["detail"]
    # Changing the program's point value reprices everything.
    await client.patch("/v1/program", json={"catalog_markup_bps": 0}, headers=program.headers)
    repriced = (await client.get(f"/v1/catalog/items/{fixed['id']}", headers=program.headers)).json()
    assert repriced["points_price"] == 2500


async def test_participants_search_by_text_brand_category_country_and_points(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    await client.post("/v1/catalog/brands", headers=program.headers,
                      json={"name": "Home Depot", "categories": ["home", "tools"], "terms": "No cash value."})
    depot = await item(client, program, brand="Home Depot", name="Home Depot $100",
                       face_value={"amount": 10000, "currency": "USD"}, countries=["US"])
    coffee = await item(client, program, brand="Starbucks", name="Starbucks $10",
                        face_value={"amount": 1000, "currency": "USD"}, countries=["US", "CA"])
    anywhere = await item(client, program, brand="Uber", name="Uber $25", face_value={"amount": 2500, "currency": "USD"})
    hidden = await item(client, program, brand="Uber", name="Uber $500", face_value={"amount": 50000, "currency": "USD"})
    await client.patch(f"/v1/catalog/items/{hidden['id']}", json={"status": "disabled"}, headers=program.headers)
    _, me = await shopper(client, program, 0)

    async def ids(**params) -> set[str]:  # type: ignore[no-untyped-def]
        page = (await client.get("/v1/catalog/items", params=params, headers=me)).json()
        return {i["id"] for i in page["items"]}

    assert await ids() == {depot["id"], coffee["id"], anywhere["id"]}
    assert await ids(q="starb") == {coffee["id"]}
    assert await ids(brand="Home Depot") == {depot["id"]}
    assert await ids(category="tools") == {depot["id"]}
    assert await ids(country="CA") == {coffee["id"], anywhere["id"]}
    assert await ids(max_points=2500) == {coffee["id"], anywhere["id"]}
    assert await ids(min_points=2501) == {depot["id"]}
    assert (await client.get(f"/v1/catalog/items/{hidden['id']}", headers=me)).status_code == 404
    assert (await client.get("/v1/catalog/items", params={"include_disabled": True}, headers=me)).status_code == 422


async def test_an_unchanged_catalog_answers_304_to_its_etag(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    await item(client, program, brand="Uber", name="Uber $25", face_value={"amount": 2500, "currency": "USD"})
    _, me = await shopper(client, program, 0)
    first = await client.get("/v1/catalog/items", headers=me)
    etag = first.headers["etag"]
    again = await client.get("/v1/catalog/items", headers={**me, "If-None-Match": etag})
    assert again.status_code == 304 and again.content == b""
    other_query = await client.get("/v1/catalog/items", params={"q": "uber"}, headers={**me, "If-None-Match": etag})
    assert other_query.status_code == 200
    await item(client, program, brand="Lyft", name="Lyft $25", face_value={"amount": 2500, "currency": "USD"})
    changed = await client.get("/v1/catalog/items", headers={**me, "If-None-Match": etag})
    assert changed.status_code == 200 and len(changed.json()["items"]) == 2
    # New prices are a new catalog too: a markup change must not answer 304.
    etag = changed.headers["etag"]
    await client.patch("/v1/program", json={"catalog_markup_bps": 300}, headers=program.headers)
    repriced = await client.get("/v1/catalog/items", headers={**me, "If-None-Match": etag})
    assert repriced.status_code == 200 and repriced.json()["items"][0]["points_price"] == 2575


async def test_a_page_is_kept_under_its_etag_until_the_catalog_version_moves(client, redis, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    uber = await item(client, program, brand="Uber", name="Uber $25", face_value={"amount": 2500, "currency": "USD"})
    _, me = await shopper(client, program, 0)
    first = await client.get("/v1/catalog/items", headers=me)
    assert first.headers["content-type"].startswith("application/json")
    # Another process renames the item in SQL; until it moves the catalog's version, this
    # process answers the page its ETag stands for, kept, and the same bytes as the first.
    await CatalogItem.update({CatalogItem.name: "Uber $25 (renamed)"}).where(CatalogItem.id == uber["id"]).run()
    kept = await client.get("/v1/catalog/items", headers=me)
    assert (kept.headers["etag"], kept.content) == (first.headers["etag"], first.content)
    await redis.incr(catalog_keys.catalog_version(program.id))
    moved = await client.get("/v1/catalog/items", headers=me)
    assert moved.headers["etag"] != first.headers["etag"]
    assert [i["name"] for i in moved.json()["items"]] == ["Uber $25 (renamed)"]
    # A change whose version never moved (its process died between its commit and the move)
    # is seen once the kept page is older than kept_pages.KEEP_SECONDS (shortened here).
    await CatalogItem.update({CatalogItem.name: "Uber $25 (lost move)"}).where(CatalogItem.id == uber["id"]).run()
    monkeypatch.setattr(kept_pages._kept, "max_age", 0.2)
    await asyncio.sleep(0.25)
    aged = await client.get("/v1/catalog/items", headers=me)
    assert [i["name"] for i in aged.json()["items"]] == ["Uber $25 (lost move)"]
    # An admin's page with disabled items is its own page, not a participant's kept one.
    await client.patch(f"/v1/catalog/items/{uber['id']}", json={"status": "disabled"}, headers=program.headers)
    assert (await client.get("/v1/catalog/items", headers=me)).json()["items"] == []
    every = await client.get("/v1/catalog/items", params={"include_disabled": True}, headers=program.headers)
    assert [i["status"] for i in every.json()["items"]] == ["disabled"]
    # Another program asking the same query reads its own catalog.
    other = await new_program(client)
    _, them = await shopper(client, other, 0)
    assert (await client.get("/v1/catalog/items", headers=them)).json()["items"] == []


async def test_a_supplier_feed_upserts_by_sku_and_reports_bad_rows(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    csv_feed = ("sku,brand,name,value_type,face_value,min_value,max_value,countries,categories\n"
                "AMZ-25,Amazon,Amazon $25,fixed,2500,,,US;CA,shopping\n"
                "VISA-V,Visa,Visa prepaid,variable,,1000,20000,US,\n"
                "BAD-1,Amazon,Broken,fixed,,,,US,\n"
                ",Amazon,No sku,fixed,100,,,,\n")
    report = (await client.post("/v1/catalog/import", json={"format": "csv", "content": csv_feed},
                                headers=program.headers)).json()
    assert (report["created"], report["updated"]) == (2, 0)
    assert [e["row"] for e in report["errors"]] == [4, 5]
    json_feed = json.dumps([{"sku": "AMZ-25", "brand": "Amazon", "name": "Amazon $25 (new art)",
                             "face_value": 2500, "countries": ["US"]},
                            {"sku": "X", "brand": "B", "name": "N", "face_value": "lots"}])
    report = (await client.post("/v1/catalog/import", json={"format": "json", "content": json_feed},
                                headers=program.headers)).json()
    assert (report["updated"], len(report["errors"])) == (1, 1)
    items = (await client.get("/v1/catalog/items", params={"q": "amazon"}, headers=program.headers)).json()["items"]
    assert [(i["name"], i["countries"], i["brand"]["categories"]) for i in items] == [
        ("Amazon $25 (new art)", ["US"], ["shopping"])]
    bad = await client.post("/v1/catalog/import", json={"format": "json", "content": "{nope"}, headers=program.headers)
    assert bad.status_code == 422


FEED_HEADER = "sku,brand,name,value_type,face_value,min_value,max_value,countries,categories"


@pytest.mark.parametrize("line_end", ["\r\n", "\r", "\n"], ids=["excel-crlf", "bare-cr", "lf"])
async def test_a_feed_as_spreadsheets_write_it_is_imported(client, line_end) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    rows = [FEED_HEADER, 'AMZ-25,Amazon,"Amazon $25, digital",fixed,2500,,,us;ca,shopping',
            f'VISA-V,Visa,"Visa{line_end}prepaid",variable,,1000,20000,US,', ",,,,,,,,"]
    # Excel's "CSV UTF-8" starts with a byte-order mark; a last line may end or not.
    content = "\ufeff" + line_end.join(rows) + line_end
    response = await client.post("/v1/catalog/import", json={"format": "csv", "content": content},
                                 headers=program.headers)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["created"], report["updated"], report["errors"]) == (2, 0, [])
    items = (await client.get("/v1/catalog/items", headers=program.headers)).json()["items"]
    # The report names each item it made, by row and sku.
    assert sorted((r["sku"], r["id"], r["status"]) for r in report["items"]) == sorted(
        (i["sku"], i["id"], "created") for i in items)
    assert sorted((i["name"], i["countries"]) for i in items) == [
        ("Amazon $25, digital", ["US", "CA"]), (f"Visa{line_end}prepaid", ["US"])]


async def test_bad_feed_rows_are_reported_in_words_and_the_rest_imported(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    content = "\r\n".join([
        "sku,brand,name,face_value,countries,status,value_type",
        "OK-1,Amazon,Amazon $10,1000,US,,",
        "HALF,Amazon,Half cent,12.5,US,,",
        "HUGE,Amazon,Overflow," + "9" * 5000 + ",US,,",
        "BIG,Amazon,Past 2^53,9007199254740992,US,,",
        "NEG,Amazon,Negative,-3,US,,",
        "USA,Amazon,Country,100,USA,,",
        "GONE,Amazon,Status,100,US,gone,",
        "VAR,Amazon,Type,100,US,,varible",
        "LONG,Amazon," + "n" * 201 + ",100,US,,",
        "NUL,Amazon,Nul\x00name,100,US,,",
        "OK-2,Amazon,Amazon $20,2000,US,,",
    ])
    response = await client.post("/v1/catalog/import", json={"format": "csv", "content": content},
                                 headers=program.headers)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["created"], report["updated"]) == (2, 0)
    assert [(e["row"], e["sku"], e["error"]) for e in report["errors"]] == [
        (3, "HALF", 'face_value must be a whole number of cents, got "12.5"'),
        (4, "HUGE", 'face_value is too large (at most 9,007,199,254,740,991 cents), got "' + "9" * 40 + '…"'),
        (5, "BIG", 'face_value is too large (at most 9,007,199,254,740,991 cents), got "9007199254740992"'),
        (6, "NEG", 'face_value must not be negative, got "-3"'),
        (7, "USA", 'countries must be two-letter ISO codes separated by ";", got "USA"'),
        (8, "GONE", 'status must be active or disabled, got "gone"'),
        (9, "VAR", 'value_type must be fixed or variable, got "varible"'),
        (10, "LONG", "name must be at most 200 characters"),
        (11, "NUL", "name contains a NUL character"),
    ]


async def test_a_json_feed_reports_each_bad_item_in_words(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    feed = json.dumps([{"sku": "OK", "brand": "B", "name": "N", "face_value": 100}, 7,
                       {"sku": ["X"], "brand": "B", "name": "N"},
                       {"sku": "F", "brand": "B", "name": "N", "face_value": 25.0},
                       {"sku": "S", "brand": "B", "name": "N", "face_value": "1e3"},
                       {"sku": "T", "brand": "B", "name": "N", "face_value": True}])
    report = (await client.post("/v1/catalog/import", json={"format": "json", "content": feed},
                                headers=program.headers)).json()
    assert report["created"] == 1
    assert [(e["row"], e["error"]) for e in report["errors"]] == [
        (2, "each item of a JSON feed must be an object"),
        (3, "sku must be text"),
        (4, 'face_value must be a whole number of cents, got "25.0"'),
        (5, 'face_value must be a whole number of cents, got "1e3"'),
        (6, 'face_value must be a whole number of cents, got "true"'),
    ]


@pytest.mark.parametrize("content", [
    "sku,brand,name\rAMZ\r,x,\"open quote",  # bare CR inside the header's line: once a csv.Error, a 500
    "sku,brand\x00,name\nA,B,C\n",            # NUL in the header
    "\x00",
    "\r",
    "\"",
    "sku,brand,name\n" + "x" * 200_000 + ",B,C\nOK,B,Name\n",  # a cell past the reader's limit
], ids=["cr-in-header-line", "nul-header", "nul", "cr", "quote", "huge-cell"])
async def test_a_csv_feed_the_schema_fuzz_found_never_answers_500(client, content) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    response = await client.post("/v1/catalog/import", json={"format": "csv", "content": content},
                                 headers=program.headers)
    assert response.status_code in (200, 422), response.text
    if response.status_code == 422:
        assert response.json()["code"] == "validation_error" and "header" in response.json()["detail"]


async def test_a_json_feed_nested_too_deep_is_refused_in_words(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    response = await client.post("/v1/catalog/import", json={"format": "json", "content": "[" * 5000},
                                 headers=program.headers)
    assert response.status_code == 422 and "nested too deep" in response.json()["detail"]


async def test_pool_codes_from_a_spreadsheet_are_uploaded_and_bad_rows_reported(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    gift = await item(client, program, brand="Amazon", name="Amazon $5", face_value={"amount": 500, "currency": "USD"})
    # Excel's CSV UTF-8 on a Mac: a byte-order mark, bare CR line ends, a quoted code with a comma.
    codes = "\ufeffCode,PIN\rGC-1,1111\r\"GC,2\",2222\r,3333\rGC-1,4444\rGC-\x003,5555\r\r"
    response = await client.post(f"/v1/catalog/items/{gift['id']}/codes", json={"csv": codes},
                                 headers=program.headers)
    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["added"], report["available"]) == (2, 2)
    assert report["errors"] == [{"row": 4, "error": "code is empty or longer than 500 characters"},
                                {"row": 5, "error": "the same code twice in this file"},
                                {"row": 6, "error": "code contains a NUL character"}]
    for content in ("\r", "\x00", "pin\rGC-9"):
        refused = await client.post(f"/v1/catalog/items/{gift['id']}/codes", json={"csv": content},
                                    headers=program.headers)
        assert refused.status_code == 422 and "code" in refused.json()["detail"]


async def test_a_feeds_categories_and_logo_leave_the_brands_other_fields_as_they_are(client) -> None:  # type: ignore[no-untyped-def]
    program = await new_program(client)
    partner = (await client.post("/v1/fulfillment/partners", json={"name": "Acme"}, headers=program.headers)).json()
    await client.post("/v1/catalog/brands", headers=program.headers, json={
        "name": "Amazon", "categories": ["shopping"], "terms": "No cash value.", "description": "Online store",
        "redemption_instructions": "Apply at checkout.", "partner_id": partner["id"]})
    feed = ("sku,brand,name,value_type,face_value,countries,categories,logo_url\n"
            "AMZ-25,Amazon,Amazon $25,fixed,2500,US,shopping;books,https://cdn.example/amazon.png\n")
    report = (await client.post("/v1/catalog/import", json={"format": "csv", "content": feed},
                                headers=program.headers)).json()
    assert report["created"] == 1 and report["errors"] == [], report
    [brand] = [b for b in (await client.get("/v1/catalog/brands", headers=program.headers)).json()["items"]
               if b["name"] == "Amazon"]
    assert (brand["categories"], brand["logo_url"]) == (["shopping", "books"], "https://cdn.example/amazon.png")
    assert (brand["terms"], brand["description"], brand["redemption_instructions"], brand["partner_id"]) == (
        "No cash value.", "Online store", "Apply at checkout.", partner["id"]), brand
