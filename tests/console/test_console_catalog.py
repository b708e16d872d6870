"""The catalog from the console: a supplier feed uploaded (items added by SKU, bad rows
reported by number), gift-card codes uploaded to the built-in pool with the stock shown and
flagged low, and a viewer refused."""

from __future__ import annotations

import html
from typing import Any


from tests.console.sessions import csrf_of, get, person_in
from tests.factories import new_program

# Pages over domain reads and use cases that their own tests run on Postgres too: SQLite
# only, to keep CI under its 20 minutes.

FEED = ("sku,brand,name,value_type,face_value,min_value,max_value,countries,status\n"
        "CAFE-10,Cafe Nero,Cafe Nero $10,fixed,1000,,,US,active\n"
        "BAD-1,Cafe Nero,Broken card,fixed,ten dollars,,,US,active\n")


async def send(client: Any, url: str, session: dict[str, str], csrf: str, name: str, data: bytes) -> Any:
    response = await client.post(url, headers=session, data={"csrf": csrf}, files={"file": (name, data, "text/csv")},
                                 follow_redirects=False)
    client.cookies.clear()
    return response


async def test_a_feed_and_codes_are_uploaded_and_the_stock_shows_low(client: Any) -> None:
    program = await new_program(client)
    _, session = await person_in(client, program, "manager")
    page = await get(client, f"/console/p/{program.id}/catalog", session)
    imported = await send(client, f"/console/p/{program.id}/catalog/feed", session, csrf_of(page.text), "feed.csv",
                          FEED.encode())
    text = html.unescape(imported.text)
    assert imported.status_code == 200 and "1 items added, 0 updated, 1 rows not imported" in text
    assert '<td class="num">3</td><td>BAD-1</td>' in text
    items = (await client.get("/v1/catalog/items?q=Cafe", headers=program.headers)).json()["items"]
    (card,) = [i for i in items if i["sku"] == "CAFE-10"]
    codes = "code,pin\n" + "".join(f"NERO-{n:04d},{n:04d}\n" for n in range(4))
    uploaded = await send(client, f"/console/p/{program.id}/catalog/{card['id']}/codes", session, csrf_of(page.text),
                          "codes.csv", codes.encode())
    text = html.unescape(uploaded.text)
    assert "4 codes added, 0 already there, 0 rows not read; 4 now available" in text
    assert "low: upload more codes" in text and "NERO-0001" not in text, "stock is low and codes are never shown"
    again = await send(client, f"/console/p/{program.id}/catalog/{card['id']}/codes", session, csrf_of(page.text),
                       "codes.csv", codes.encode())
    assert "0 codes added, 4 already there" in html.unescape(again.text)

    _, viewer = await person_in(client, program, "viewer")
    seen = await get(client, f"/console/p/{program.id}/catalog", viewer)
    assert "Import feed" not in seen.text and "Upload codes" not in seen.text and "Code-pool stock" in seen.text
    refused = await send(client, f"/console/p/{program.id}/catalog/feed", viewer, csrf_of(seen.text), "feed.csv",
                         FEED.replace("CAFE-10", "CAFE-20").encode())
    assert refused.status_code == 403
    assert not [i for i in (await client.get("/v1/catalog/items?q=Cafe", headers=program.headers)).json()["items"]
                if i["sku"] == "CAFE-20"]
