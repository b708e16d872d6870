"""The salesperson's phone app in a real browser at 390x844: sign in from a link (a preview
of the link spends nothing), see the points, redeem a code-pool card with Confirm (a double
tap makes one order) and reveal its code, spin a wheel and check its proof after rotating
the seed, the other screens, the offline screen; axe on every screen."""

from __future__ import annotations

import email
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from playwright.async_api import expect

from tests.console.conftest import axe_violations, screenshot
from tests.factories import bearer, buy_entries, catalog_item, grant, launched_wheel, new_participant, new_sweepstakes, \
    new_program, random_ref, tokens_for, wait_until
from tests.programs.test_earning import event, rule, send


async def a_seller(api: httpx.AsyncClient) -> dict[str, Any]:
    program = await new_program(api, point_name="stars")
    person = await new_participant(api, program, display_name="Dana Seller", email=f"{random_ref('dana')}@example.com")
    # 4,910 + the past sweepstakes' prize (100) - its ticket (10) = 5,000 on Home.
    assert (await grant(api, program, person["id"], 4910)).status_code == 201
    # The first partner is the program's default route: it delivers the second card.
    partner = (await api.post("/v1/fulfillment/partners", json={"name": random_ref("partner")},
                              headers=program.headers)).json()
    item = await catalog_item(api, program, face_value=2500)
    routed = (await api.post("/v1/catalog/items", headers=program.headers, json={
        "brand": "Home Depot", "name": "Home Depot $10 card", "face_value": {"amount": 1000, "currency": "USD"},
        "sku": random_ref("sku")})).json()
    upload = await api.post(f"/v1/catalog/items/{item['id']}/codes", json={"csv": "code,pin\nGIFT-7777-AB,4321\n"},
                            headers=program.headers)
    assert upload.status_code in (200, 201), upload.text
    wheel = await launched_wheel(api, program, cost_points=1)
    # A sale whose points wait 14 days: Home shows them as Pending with their release date.
    waits = await rule(api, program, activity_type="sale", award={"type": "fixed", "points": 150}, pending_days=14)
    sold = await send(api, program, event("sale", person["external_id"], datetime.now(timezone.utc), amount=10_000))
    assert sold["items"][0].get("awards"), sold
    # A past sweepstakes the seller entered alone, drawn: My entries shows it won.
    past = await new_sweepstakes(api, program, name="Summer sweepstakes", winners=1, alternates=0,
                                 prizes=[{"type": "points", "points": 100}])
    mine = bearer((await tokens_for(api, program, person["id"]))["access_token"])
    assert (await buy_entries(api, past["id"], mine, 1)).status_code == 201
    assert (await api.post(f"/v1/sweepstakes/{past['id']}/close", headers=program.headers)).status_code == 200
    drawn = await api.post(f"/v1/sweepstakes/{past['id']}/draw", headers=program.headers,
                           json={"beacon": {"source": "test", "round": 1, "value": "beacon-1"}})
    assert drawn.status_code == 200, drawn.text
    await new_sweepstakes(api, program, name="Q4 dealer sweepstakes")
    link = await api.post(f"/v1/participants/{person['id']}/sign-in-links", headers=program.headers)
    assert link.status_code == 201, link.text
    return {"program": program, "person": person, "item": item, "wheel": wheel, "link": link.json()["url"],
            "partner": partner, "routed": routed, "past": past, "waits": waits}


async def no_serious_violations(page: Any, screen: str) -> None:
    found = await axe_violations(page)
    assert not found, f"{screen}: " + "\n".join(found)


async def test_a_seller_signs_in_from_a_link_redeems_spins_and_checks(phone_page: Any, live_server: Any) -> None:
    page = phone_page
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as api:
        seller = await a_seller(api)
        program = seller["program"]
        assert seller["link"].startswith(f"{live_server.url}/app/{program.id}/sign-in#")
        # A link preview fetches the URL (never its fragment): the link still works after.
        preview = await api.get(seller["link"].split("#")[0])
        assert preview.status_code == 200 and "text/html" in preview.headers["content-type"]

        # Home
        await page.goto(seller["link"])
        await expect(page.get_by_role("heading", name="Your points")).to_be_visible()
        await expect(page.get_by_test_id("balance")).to_have_text("5000")
        await expect(page.locator(".balance")).to_contain_text("stars")
        pending = page.get_by_role("region", name="Pending")
        await expect(pending.get_by_test_id("pending")).to_have_text("150")
        await expect(pending).to_contain_text(f"150 stars · {seller['waits']['name']} · released ")
        assert urlsplit(page.url).fragment == "/home", "the token leaves the address bar"
        assert "null" not in await page.locator("main").inner_text()
        nav = page.get_by_role("navigation")
        for name in ("Home", "Rewards", "Play", "Activity", "Leaderboard"):
            await expect(nav.get_by_role("link", name=name, exact=True)).to_be_visible()
        assert await page.evaluate("() => Object.keys(localStorage).length + document.cookie.length") == 0
        await no_serious_violations(page, "home")
        await screenshot(page, "app-home")

        # Rewards: Redeem, then Confirm tapped twice, makes one order; Show code reveals it.
        await nav.get_by_role("link", name="Rewards").click()
        await expect(page.get_by_role("heading", name="Rewards", exact=True)).to_be_visible()
        await page.get_by_label("Brand").select_option(label="Home Depot")
        await page.get_by_role("button", name="Search").click()
        await expect(page.locator("li.item")).to_have_count(1)
        await expect(page.locator("li.item")).to_contain_text("Home Depot $10 card")
        await page.get_by_label("Brand").select_option(label="All brands")
        await page.get_by_role("button", name="Search").click()
        await expect(page.locator("li.item")).to_have_count(2)
        # The points range, alone and with "Only what I can afford" (the lower ceiling wins).
        cheap, dear = sorted([seller["routed"]["points_price"], seller["item"]["points_price"]])
        await page.get_by_label("Max stars").fill(str(cheap))
        await page.get_by_role("button", name="Search").click()
        await expect(page.locator("li.item")).to_have_count(1)
        await expect(page.locator("li.item")).to_contain_text("Home Depot $10 card")
        await page.get_by_label("Max stars").fill("")
        await page.get_by_label("Min stars").fill(str(cheap + 1))
        await page.get_by_label("Only what I can afford").check()
        await page.get_by_role("button", name="Search").click()
        await expect(page.locator("li.item")).to_have_count(1)
        await expect(page.locator("li.item")).to_contain_text(seller["item"]["name"])
        await expect(page.get_by_label("Min stars")).to_have_value(str(cheap + 1))
        await page.get_by_label("Min stars").fill("")
        await page.get_by_label("Only what I can afford").uncheck()
        await page.get_by_role("button", name="Search").click()
        await expect(page.locator("li.item")).to_have_count(2)
        card = page.locator("li.item", has_text=seller["item"]["name"])
        await card.get_by_role("button", name="Redeem").click()
        confirm = card.get_by_role("button", name="Confirm")
        await confirm.dblclick()
        await expect(card.get_by_role("status")).to_contain_text("Ordered")
        show = page.get_by_role("button", name="Show code")
        await expect(show).to_have_count(1)
        await no_serious_violations(page, "rewards")
        await show.click()
        await expect(page.locator(".secret")).to_contain_text("GIFT-7777-AB")
        await expect(page.locator(".secret")).to_contain_text("4321")
        await screenshot(page, "app-rewards")
        tokens = (await api.post(f"/v1/participants/{seller['person']['id']}/tokens",
                                 headers=program.headers)).json()
        mine = bearer(tokens["access_token"])
        orders = (await api.get("/v1/me/redemptions", headers=mine)).json()["items"]
        assert len(orders) == 1, orders
        wallet = (await api.get("/v1/me/wallet", headers=mine)).json()
        assert wallet["available"] == 5000 - orders[0]["points"]

        # A card a partner delivers: on its way, then its Show code appears without a reload.
        routed = page.locator("li.item", has_text="Home Depot $10 card")
        await routed.get_by_role("button", name="Redeem").click()
        await routed.get_by_role("button", name="Confirm").click()
        await expect(routed.get_by_role("status")).to_contain_text("Ordered")
        await expect(page.locator("li.card", has_text="Home Depot")).to_contain_text("On its way")
        partner = bearer(seller["partner"]["api_key"])
        claimed = (await api.post("/v1/fulfillment/orders/claim", json={"limit": 5, "lease_seconds": 60},
                                  headers=partner)).json()["items"]
        assert len(claimed) == 1
        # Delivered as a supplier's labelled lines: a barcode to scan at the till and an expiry.
        done = await api.post(f"/v1/fulfillment/orders/{claimed[0]['id']}/fulfill", headers=partner, json={
            "credential_list": [{"label": "Card number", "type": "code", "value": "HD-55-PARTNER"},
                                {"label": "PIN", "type": "pin", "value": "0420"},
                                {"label": "Scan at the till", "type": "barcode", "value": "9780201379624"},
                                {"label": "Valid until", "type": "expiry", "value": "2028-12-31"}]})
        assert done.status_code == 200, done.text
        delivered = page.locator("li.card", has_text="Home Depot")
        await expect(delivered.get_by_role("button", name="Show code")).to_be_visible(timeout=20_000)
        await delivered.get_by_role("button", name="Show code").click()
        await expect(delivered.locator(".secret")).to_contain_text("HD-55-PARTNER")
        barcode = delivered.get_by_role("img", name="Barcode of Scan at the till: 9780201379624")
        await expect(barcode).to_be_visible()
        assert await barcode.evaluate("(el) => el.tagName") == "svg"
        await expect(delivered.locator(".secret")).to_contain_text("Valid until: Dec 31, 2028")
        await page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        await delivered.get_by_role("button", name="Copy PIN").click()
        await expect(delivered.get_by_role("button", name="Copy PIN")).to_have_text("Copied")
        assert await page.evaluate("() => navigator.clipboard.readText()") == "0420"
        await delivered.get_by_role("button", name="Copy Card number").click()
        assert await page.evaluate("() => navigator.clipboard.readText()") == "HD-55-PARTNER"
        await barcode.scroll_into_view_if_needed()
        await no_serious_violations(page, "card")
        await screenshot(page, "app-card")

        # Play: spin, see the proof, rotate, and the browser verifies it.
        await nav.get_by_role("link", name="Play").click()
        await expect(page.get_by_role("heading", name="Play", exact=True)).to_be_visible()
        assert "null" not in await page.locator("main").inner_text()
        sweep = page.locator("li.item", has_text="Q4 dealer sweepstakes")
        await sweep.locator("summary").click()
        await expect(sweep.locator(".rules")).to_contain_text("NO PURCHASE OR PAYMENT OF ANY KIND IS NECESSARY")
        await sweep.get_by_label("Tickets").fill("2")
        await sweep.get_by_role("button", name="Enter").click()
        await expect(sweep.get_by_role("status")).to_contain_text("Entered: 2")
        await expect(sweep).to_contain_text("My tickets: 2")
        # My entries: the past one with its outcome and proof (the open one shows after a reload).
        entries = page.get_by_test_id("my-entries")
        past = entries.locator("li", has_text="Summer sweepstakes")
        await expect(past).to_contain_text("You won: 100 stars")
        proof_link = past.get_by_role("link", name="Proof of the draw: Summer sweepstakes")
        assert await proof_link.get_attribute("href") == f"/v1/public/sweepstakes/{seller['past']['id']}/proof"
        assert (await api.get(f"/v1/public/sweepstakes/{seller['past']['id']}/proof")).status_code == 200
        await page.reload()
        await expect(entries.locator("li", has_text="Q4 dealer sweepstakes")).to_contain_text("Open")
        await no_serious_violations(page, "play")
        await screenshot(page, "app-play")
        await page.locator(f"a[href='#/play/{seller['wheel']}']").click()
        await page.get_by_role("button", name="Spin").click()
        await expect(page.get_by_role("heading", name=re.compile("^You won"))).to_be_visible()
        await expect(page.locator("tr.won")).to_have_count(1)
        await no_serious_violations(page, "wheel")
        await screenshot(page, "app-wheel")
        await page.get_by_role("link", name="How this was decided").click()
        await expect(page.get_by_role("heading", name="How this was decided")).to_be_visible()
        await expect(page.locator(".proof")).to_contain_text("rw-fair-1")
        await page.get_by_role("button", name="Rotate seed").click()
        await expect(page.get_by_role("status")).to_contain_text("Verified")
        await no_serious_violations(page, "proof")
        await screenshot(page, "app-proof")

        # Activity and Leaderboard
        await nav.get_by_role("link", name="Activity").click()
        await expect(page.get_by_role("heading", name="Activity")).to_be_visible()
        await expect(page.get_by_text("Spin: ").first).to_be_visible()
        await no_serious_violations(page, "activity")
        await nav.get_by_role("link", name="Leaderboard").click()
        await expect(page.get_by_role("heading", name="Leaderboard")).to_be_visible()
        await page.get_by_label("Hide my name from others").check()
        # Drawn again once the server has it: enabled and still checked.
        await expect(page.get_by_label("Hide my name from others")).to_be_enabled()
        await expect(page.get_by_label("Hide my name from others")).to_be_checked()
        assert (await api.get("/v1/me", headers=mine)).json()["show_name"] is False
        await no_serious_violations(page, "leaderboard")

        # The smallest phone: nothing wider than the screen.
        await page.set_viewport_size({"width": 360, "height": 640})
        for screen, heading in (("Play", "Play"), ("Rewards", "Rewards"), ("Activity", "Activity"),
                                ("Leaderboard", "Leaderboard"), ("Home", "Your points")):
            await nav.get_by_role("link", name=screen).click()
            await expect(page.get_by_role("heading", name=heading, exact=True)).to_be_visible()
            assert await page.evaluate("() => document.documentElement.scrollWidth") <= 360, screen
            small = await page.evaluate("""() => [...document.querySelectorAll('button, nav a, input, select')]
                .filter((el) => el.offsetParent !== null && el.type !== 'checkbox')
                .map((el) => el.getBoundingClientRect()).filter((r) => r.height < 44 || r.width < 44).length""")
            assert small == 0, f"{screen}: every button, field and navigation link is at least 44 px"

        # Offline: the service worker answers with the offline screen, not a browser error.
        await page.wait_for_function("() => navigator.serviceWorker && navigator.serviceWorker.controller !== null")
        await page.context.set_offline(True)
        await page.reload()
        await expect(page.get_by_role("heading", name="You are offline")).to_be_visible()
        await no_serious_violations(page, "offline")
        await page.context.set_offline(False)


def code_in_outbox(outbox: Path, to: str) -> str | None:
    for path in sorted(outbox.glob("*.eml")) if outbox.exists() else []:
        message = email.message_from_bytes(path.read_bytes())
        if message["To"] == to:
            found = re.search(r"\b(\d{6})\b", message.get_payload())
            return found.group(1) if found else None
    return None


async def test_signed_out_the_app_signs_in_with_an_emailed_code(phone_page: Any, live_server: Any,
                                                                settings: Any) -> None:
    page = phone_page
    to = f"{random_ref('lee')}@example.com"
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as api:
        program = await new_program(api)
        await new_participant(api, program, email=to)
    await page.goto(f"/app/{program.id}")
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await no_serious_violations(page, "sign-in")
    await screenshot(page, "app-sign-in")
    await page.get_by_label("Email").fill(to)
    await page.get_by_role("button", name="Email me a code").click()
    await expect(page.get_by_label("Code")).to_be_visible()

    # Without RW_SMTP_URL the live server writes mail to the session's outbox.
    async def read() -> bool:
        return code_in_outbox(settings.outbox_path, to) is not None

    assert await wait_until(read, True)
    await page.get_by_label("Code").fill(code_in_outbox(settings.outbox_path, to) or "")
    await page.get_by_role("button", name="Sign in").click()
    await expect(page.get_by_role("heading", name="Your points")).to_be_visible()
    # Opened again, the app resumes from its cookie; signed out, it asks again.
    await page.reload()
    await expect(page.get_by_role("heading", name="Your points")).to_be_visible()
    await page.get_by_role("button", name="Sign out").click()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    await page.reload()
    await expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
