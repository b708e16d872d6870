"""The manager console in Chromium, as a program manager uses it: accept an invite, sign in
(a wrong password first), visit every page of the navigation (no console error, no serious
or critical axe violation at 1280x800), launch, pause and resume a wheel by its buttons,
design a new wheel (its odds change as a weight is typed) and launch it, find a participant
and grant them points, create a sweepstakes, close it and draw its winner, sign out; then a
viewer, who sees no button that changes anything and whose forged POST the server refuses.
And the rest of a week: four eyes on a big grant across two browsers, a claim approved, the
orders exported, a colleague invited."""

from __future__ import annotations

import re
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import msgspec
from playwright.async_api import expect

from console.manager.wheel_picture import percent, points, rtp, slices
from games.wheel import WheelSpec, economics
from tests.console.conftest import DESKTOP, TABLET, PageErrors, axe_violations, screenshot
from tests.factories import OPERATOR, bearer, random_ref, redeem, shop, shopper

PASSWORD = "a long enough password"
NAV = ["Overview", "Participants", "Earning rules", "Claims", "Approvals", "Catalog", "Orders", "Spin campaigns",
       "Sweepstakes", "Leaderboards", "Announcements", "Funding", "Partners", "Audit log", "Users"]


def seed(base: str, roles: tuple[str, ...] = ("owner", "viewer")) -> dict[str, Any]:
    """A program with a participant, a draft wheel and invited people, through the API."""
    with httpx.Client(base_url=base, timeout=30) as http:
        created = http.post("/v1/programs", json={"name": f"Console flow {secrets.token_hex(3)}"}, headers=OPERATOR)
        assert created.status_code == 201, created.text
        program = created.json()
        admin = bearer(program["admin_key"])
        name = f"Marta Quill {secrets.token_hex(3)}"
        person = http.post("/v1/participants", json={"external_id": secrets.token_hex(6), "display_name": name},
                           headers=admin).json()
        assert http.post("/v1/fulfillment/partners", json={"name": "Card desk"}, headers=admin).status_code == 201
        item = http.post("/v1/catalog/items", headers=admin, json={
            "brand": "Cafe", "name": "Cafe $0.10 treat", "face_value": {"amount": 10, "currency": "USD"},
            "sku": secrets.token_hex(4)})
        assert item.status_code == 201, item.text
        wheel = http.post("/v1/campaigns/spin", headers=admin, json={
            "name": "Spring wheel", "cost_points": 0,
            "segments": [{"label": "Try again", "weight": 1, "prize": {"type": "nothing"}}]}).json()
        invites = {}
        for role in roles:
            email = f"{role}-{secrets.token_hex(4)}@console.example"
            answer = http.post("/v1/console-users", json={"email": email, "display_name": f"Pat {role.title()}",
                                                          "role": role}, headers=admin)
            assert answer.status_code == 201, answer.text
            invites[role] = (email, answer.json()["invite_url"])
    return {"program": program, "admin": admin, "person": person, "wheel": wheel, "invites": invites}


@asynccontextmanager
async def signed_in_elsewhere(browser: Any, live_server: Any, page_errors: PageErrors, email: str,
                              invite_url: str) -> AsyncIterator[Any]:
    """Another person, in a desktop browser context of their own, signed in from their invite."""
    context = await browser.new_context(base_url=live_server.url, viewport=DESKTOP)
    try:
        other = await context.new_page()
        page_errors.watch(other)
        await accept_and_sign_in(other, email, invite_url)
        yield other
    finally:
        await context.close()


async def accept_and_sign_in(page: Any, email: str, invite_url: str) -> None:
    await page.goto(invite_url)
    await page.get_by_label("New password").fill(PASSWORD)
    await page.get_by_label("Repeat the password").fill(PASSWORD)
    await page.get_by_role("button", name="Set password").click()
    await expect(page).to_have_url(re.compile(r"/console/sign-in$"))
    await page.get_by_label("Email").fill(email)
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await expect(page).to_have_url(re.compile(r"/console/p/[^/]+/overview$"))


async def test_a_manager_runs_the_console_and_a_viewer_changes_nothing(
        page: Any, browser: Any, live_server: Any, page_errors: PageErrors) -> None:
    world = seed(live_server.url)
    program_id = world["program"]["program_id"]
    owner_email, owner_invite = world["invites"]["owner"]
    assert owner_invite.startswith(live_server.url + "/console/invite/")

    # A forgotten password: the page answers the same for any email.
    await page.goto("/console/sign-in")
    await page.get_by_role("link", name="Forgot your password?").click()
    assert await axe_violations(page) == [], "forgot password"
    await page.get_by_label("Email").fill(owner_email)
    await page.get_by_role("button", name="Send reset link").click()
    await expect(page.get_by_role("status")).to_contain_text("is on its way")

    # A wrong password: an alert that does not say which part was wrong.
    await page.goto("/console/sign-in")
    await page.get_by_label("Email").fill(owner_email)
    await page.get_by_label("Password").fill("not the password")
    await page.get_by_role("button", name="Sign in").click()
    alert = page.get_by_role("alert")
    await expect(alert).to_be_visible()
    assert "password do not match" in (await alert.inner_text())
    await screenshot(page, "console-sign-in")

    await accept_and_sign_in(page, owner_email, owner_invite)
    nav = page.get_by_role("navigation", name="Console")
    for name in NAV:
        await expect(nav.get_by_role("link", name=name, exact=True)).to_be_visible()
    await expect(page.get_by_role("button", name="Sign out", exact=True)).to_be_visible()

    # Every page of the navigation: it renders, and axe finds nothing serious.
    for name in NAV:
        await nav.get_by_role("link", name=name, exact=True).click()
        await expect(page.get_by_role("heading", level=1)).to_have_text(name)
        if name == "Funding":  # an owner's: the tax report's year picker and download
            await expect(page.get_by_label("Tax year")).to_be_visible()
            await expect(page.get_by_role("button", name="Download tax report")).to_be_visible()
        assert await axe_violations(page) == [], name
    await nav.get_by_role("link", name="Overview", exact=True).click()
    await screenshot(page, "console-overview")

    # A wheel by its buttons: Launch while draft, Pause while active, Resume while paused.
    await nav.get_by_role("link", name="Spin campaigns", exact=True).click()
    await page.get_by_role("link", name="Spring wheel").click()
    for button, status in (("Launch", "active"), ("Pause", "paused"), ("Resume", "active")):
        await page.get_by_role("button", name=button, exact=True).click()
        await expect(page.locator("#campaign-status")).to_have_text(status)
    await expect(page.get_by_role("button", name="Launch", exact=True)).to_have_count(0)
    await screenshot(page, "console-spin-campaign")
    with httpx.Client(base_url=live_server.url) as http:
        assert http.get(f"/v1/campaigns/{world['wheel']['id']}", headers=world["admin"]).json()["status"] == "active"

    # Design a wheel: the odds, expected cost and RTP follow the typing, as the domain computes them.
    await nav.get_by_role("link", name="Spin campaigns", exact=True).click()
    await page.get_by_role("link", name="New campaign").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("New campaign")
    assert await axe_violations(page) == [], "the wheel designer"
    odds = page.locator("#odds tbody tr")
    await expect(odds.nth(1).locator("td").nth(2)).to_have_text("25.00%")
    await page.get_by_label("Name").fill("Summer wheel")
    second = page.get_by_role("group", name="Segment 2")
    await second.get_by_label("Weight").fill("3")
    await expect(odds.nth(1).locator("td").nth(2)).to_have_text("50.00%")
    await page.get_by_role("button", name="Add a segment").click()
    third = page.get_by_role("group", name="Segment 3")
    await third.get_by_label("Label").fill("Jackpot")
    await third.get_by_label("Prize").select_option("points")
    await third.get_by_label("Points won").fill("400")
    spec = msgspec.convert({"name": "Summer wheel", "cost_points": 20, "segments": [
        {"label": "Try again", "weight": 3, "prize": {"type": "nothing"}},
        {"label": "50 points", "weight": 3, "prize": {"type": "points", "points": 50}},
        {"label": "Jackpot", "weight": 1, "prize": {"type": "points", "points": 400}}]}, WheelSpec)
    figures = economics(spec, {})
    await expect(page.locator("#expected-cost")).to_have_text(f"{points(figures.expected_payout_points)} points")
    await expect(page.locator("#rtp")).to_have_text(rtp(figures))
    for row, segment_odds in enumerate(figures.odds):
        await expect(odds.nth(row).locator("td").nth(2)).to_have_text(percent(segment_odds.probability))
    drawn = await page.locator("#wheel-slices path").evaluate_all("paths => paths.map(p => p.getAttribute('d'))")
    assert drawn == [s.path for s in slices([3, 3, 1], [None, None, None])]
    assert await axe_violations(page) == [], "the wheel designer, filled"
    await page.get_by_role("heading", name="Segments").evaluate("heading => heading.scrollIntoView()")
    await screenshot(page, "console-wheel-designer")
    await page.get_by_role("button", name="Create campaign").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Summer wheel")
    await expect(page.locator("#expected-cost")).to_have_text(f"{points(figures.expected_payout_points)} points")
    # The server draws the very wheel the script drew.
    assert await page.locator("#wheel-slices path").evaluate_all("ps => ps.map(p => p.getAttribute('d'))") == drawn
    await page.get_by_role("button", name="Launch", exact=True).click()
    await expect(page.locator("#campaign-status")).to_have_text("active")
    assert await axe_violations(page) == [], "a campaign's page"

    # Find the participant and grant them points.
    await nav.get_by_role("link", name="Participants", exact=True).click()
    await page.get_by_label("Search participants").fill(world["person"]["display_name"])
    await page.get_by_role("button", name="Search", exact=True).click()
    await page.get_by_role("link", name=world["person"]["display_name"]).click()
    await page.get_by_label("Points to grant").fill("25")
    await page.get_by_label("Reason for the grant").fill("Closed the Northside deal")
    await page.get_by_role("button", name="Grant points").click()
    await expect(page.get_by_role("status")).to_have_text("Points granted.")
    await expect(page.locator("#available")).to_contain_text("25")
    assert await axe_violations(page) == []
    await screenshot(page, "console-participant")
    # Redeem for participant: the item, a confirmation with the points it costs, then the order.
    await page.get_by_label("Item to redeem").select_option(label="Cafe $0.10 treat · 10 points")
    await page.get_by_role("button", name="Redeem for participant").click()
    await expect(page.locator("#redeem-points")).to_have_text("10 points")
    assert await axe_violations(page) == [], "a redemption's confirmation"
    await page.get_by_role("button", name="Confirm redemption").click()
    await expect(page.get_by_role("status")).to_contain_text("Redeemed")
    await expect(page.locator("#available")).to_contain_text("15")

    # A sweepstakes: create it (its rules previewed first), the participant enters, close, draw.
    await nav.get_by_role("link", name="Sweepstakes", exact=True).click()
    await page.get_by_role("link", name="New sweepstakes").click()
    await page.get_by_label("Name").fill("Dealer of the month")
    await page.get_by_label("Ticket cost (points)").fill("0")
    await page.get_by_role("group", name="Prize 1").get_by_label("Points").fill("100")
    await page.get_by_role("button", name="Preview the official rules").click()
    await expect(page.locator("#rules-preview")).to_contain_text("OFFICIAL RULES: Dealer of the month")
    await expect(page.locator("#rules-preview")).to_contain_text("1 x 100 points (approximate retail value 1.00 USD")
    assert await axe_violations(page) == [], "a new sweepstakes"
    await page.get_by_role("button", name="Create sweepstakes").click()
    await expect(page.locator("#sweepstakes-status")).to_have_text("open")
    sweepstakes_id = page.url.split("/sweepstakes/")[1].split("?")[0]
    with httpx.Client(base_url=live_server.url) as http:
        person_id = world["person"]["id"]
        token = http.post(f"/v1/participants/{person_id}/tokens", headers=world["admin"]).json()["access_token"]
        entered = http.post(f"/v1/me/sweepstakes/{sweepstakes_id}/entries", json={"count": 1},
                            headers={**bearer(token), "Idempotency-Key": secrets.token_hex(8)})
        assert entered.status_code == 201, entered.text
    await page.reload()
    await expect(page.locator("#tickets")).to_have_text("1")
    await page.get_by_role("button", name="Close", exact=True).click()
    await expect(page.locator("#sweepstakes-status")).to_have_text("closed")
    await page.get_by_label("Beacon source").fill("drand quicknet")
    await page.get_by_label("Beacon round").fill("1234567")
    await page.get_by_label("Beacon value").fill(secrets.token_hex(32))
    await page.get_by_role("button", name="Draw", exact=True).click()
    await expect(page.locator("#sweepstakes-status")).to_have_text("drawn")
    winners = page.locator("#winners")
    await expect(winners).to_contain_text(world["person"]["display_name"])
    await expect(winners).to_contain_text("paid")
    await expect(page.get_by_role("link", name="Public proof of the draw")).to_have_attribute(
        "href", f"/v1/public/sweepstakes/{sweepstakes_id}/proof")
    assert await axe_violations(page) == [], "a sweepstakes' page"
    await screenshot(page, "console-sweepstakes")

    # An earning rule written, simulated and activated by its buttons.
    await nav.get_by_role("link", name="Earning rules", exact=True).click()
    await page.get_by_role("link", name="New rule").click()
    assert await axe_violations(page) == [], "a new rule"
    await page.get_by_label("Rule name").fill("Training bonus")
    await page.get_by_label("Activity type").select_option("training_completed")
    await page.get_by_label("Points (per activity, or per unit)").fill("40")
    await page.get_by_role("button", name="Simulate").click()
    await expect(page.get_by_role("heading", name="Simulation over the last 90 days")).to_be_visible()
    assert await axe_violations(page) == [], "a rule's simulation"
    await page.get_by_role("button", name="Activate").click()
    await expect(page.get_by_role("link", name="Training bonus")).to_be_visible()

    # Participants from a CSV: the worker imports it while the page shows the progress.
    await nav.get_by_role("link", name="Participants", exact=True).click()
    rows = "".join(f"csv-{i},Dealer Rep {i},rep{i}@dealer.example,,north\n" for i in range(1200))
    await page.get_by_label("CSV file").set_input_files(files=[{
        "name": "dealers.csv", "mimeType": "text/csv",
        "buffer": ("external_id,display_name,email,team_id,segment\n" + rows + "bad,,x,,\n").encode()}])
    await page.get_by_role("button", name="Import participants").click()
    await expect(page.get_by_label("Rows imported")).to_be_visible()
    assert await axe_violations(page) == [], "an import's progress"
    await expect(page.get_by_role("status")).to_have_text(re.compile(r"^Done: 1,201 rows read"), timeout=60_000)
    await expect(page.locator("#import-created")).to_have_text("1,200")
    await expect(page.get_by_role("cell", name="1202", exact=True)).to_be_visible()  # the bad row, by number
    assert await axe_violations(page) == [], "an import's report"

    # A partner added: its key shown once on the answer page.
    await nav.get_by_role("link", name="Partners", exact=True).click()
    await page.get_by_label("Partner name").fill("Acme Fulfil")
    await page.get_by_role("button", name="Add partner").click()
    await expect(page.get_by_label("Partner API key")).to_have_value(re.compile(r"^rw"))
    assert await axe_violations(page) == [], "a partner's page"

    # The main pages at tablet size too.
    await page.set_viewport_size(TABLET)
    for name in ("Overview", "Participants", "Spin campaigns", "Claims", "Orders"):
        await nav.get_by_role("link", name=name, exact=True).click()
        await expect(page.get_by_role("heading", level=1)).to_have_text(name)
        assert await axe_violations(page) == [], f"{name} at 768x1024"
    await page.set_viewport_size(DESKTOP)

    await page.get_by_role("button", name="Sign out", exact=True).click()
    await expect(page).to_have_url(re.compile(r"/console/sign-in$"))
    await page.goto(f"/console/p/{program_id}/overview")
    await expect(page).to_have_url(re.compile(r"/console/sign-in$"))

    # A viewer, in a context of their own: the pages, no button that changes anything.
    async with signed_in_elsewhere(browser, live_server, page_errors, *world["invites"]["viewer"]) as viewer:
        await expect(viewer.get_by_role("navigation", name="Console").get_by_role(
            "link", name="Users", exact=True)).to_have_count(0)
        await viewer.goto(f"/console/p/{program_id}/spin-campaigns/{world['wheel']['id']}")
        for button in ("Launch", "Pause", "Resume"):
            await expect(viewer.get_by_role("button", name=button, exact=True)).to_have_count(0)
        csrf = await viewer.locator("input[name=csrf]").first.get_attribute("value")
        forged = await viewer.request.post(
            f"/console/p/{program_id}/spin-campaigns/{world['wheel']['id']}/pause", form={"csrf": csrf or ""})
        assert forged.status == 403
        await viewer.goto(f"/console/p/{program_id}/participants/{world['person']['id']}")
        await expect(viewer.get_by_role("button", name="Grant points")).to_have_count(0)
        await expect(viewer.get_by_role("button", name="Redeem for participant")).to_have_count(0)
        await expect(viewer.get_by_role("heading", name="Tax form")).to_be_visible()
        await viewer.goto(f"/console/p/{program_id}/funding")
        await expect(viewer.get_by_role("button", name="Download tax report")).to_have_count(0)
        forged = await viewer.request.post(f"/console/p/{program_id}/participants/{world['person']['id']}/grant",
                                           form={"csrf": csrf or "", "points": "1000", "reason": "forged"})
        assert forged.status == 403
    with httpx.Client(base_url=live_server.url) as http:
        assert http.get(f"/v1/campaigns/{world['wheel']['id']}", headers=world["admin"]).json()["status"] == "active"
        wallet = http.get(f"/v1/participants/{world['person']['id']}/wallet", headers=world["admin"]).json()
        assert wallet["available"] == 25 - 10 + 100  # the grant, the redemption, and the sweepstakes prize


async def test_a_big_grant_waits_for_a_second_person_and_claims_orders_and_people_are_run_from_the_console(
        page: Any, browser: Any, live_server: Any, page_errors: PageErrors) -> None:
    """The rest of a manager's week: a grant over the approval threshold that only another
    person can approve, a claim approved from the queue, the orders exported as CSV, a new
    colleague invited."""
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as http:
        program, _, item = await shop(http, face_value=500)
        person, phone = await shopper(http, program, 2_000)
        patched = await http.patch("/v1/program", json={"approval_threshold_points": 1_000}, headers=program.headers)
        assert patched.status_code == 200, patched.text
        ordered = await redeem(http, phone, item["id"])
        assert ordered.status_code == 201, ordered.text
        invoice = random_ref("INV")
        filed = await http.post("/v1/me/claims", headers={**phone, "Idempotency-Key": random_ref()}, json={
            "invoice_number": invoice, "invoice_date": datetime.now(timezone.utc).date().isoformat(),
            "amount": {"amount": 10_000, "currency": "USD"}, "product": "ThermoPro 200"})
        assert filed.status_code == 201, filed.text
        invites = {}
        for role in ("owner", "manager"):
            email = f"{role}-{secrets.token_hex(4)}@console.example"
            answer = await http.post("/v1/console-users", headers=program.headers, json={
                "email": email, "display_name": f"Sam {role.title()}", "role": role})
            invites[role] = (email, answer.json()["invite_url"])
        available_before = (await http.get(f"/v1/participants/{person['id']}/wallet",
                                           headers=program.headers)).json()["available"]

    await accept_and_sign_in(page, *invites["owner"])
    nav = page.get_by_role("navigation", name="Console")
    # Over the threshold: a request, and nothing moves until someone else approves it.
    await page.goto(f"/console/p/{program.id}/participants/{person['id']}")
    await page.get_by_label("Points to grant").fill("5000")
    await page.get_by_label("Reason for the grant").fill("Top seller of the quarter")
    await page.get_by_role("button", name="Grant points").click()
    await expect(page.get_by_role("status")).to_contain_text("sent to Approvals")
    await expect(page.locator("#available")).to_contain_text(f"{available_before:,}")
    await nav.get_by_role("link", name="Approvals", exact=True).click()
    await expect(page.get_by_text("yours: another person decides")).to_be_visible()
    await expect(page.get_by_role("button", name="Approve", exact=True)).to_have_count(0)
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as http:
        request_id = (await http.get("/v1/approvals", headers=program.headers)).json()["items"][0]["id"]
    csrf = await page.locator("input[name=csrf]").first.get_attribute("value")
    own = await page.request.post(f"/console/p/{program.id}/approvals/{request_id}/decide",
                                  form={"csrf": csrf or "", "verdict": "approved", "reason": "my own"})
    assert own.status == 403  # the server refuses it too, whatever the browser sends

    # A claim from the queue.
    await nav.get_by_role("link", name="Claims", exact=True).click()
    await page.get_by_role("button", name="Approve", exact=True).first.click()
    await expect(page.get_by_role("status")).to_have_text("Claim approved.")

    # The orders as a spreadsheet.
    await nav.get_by_role("link", name="Orders", exact=True).click()
    async with page.expect_download() as download_info:
        await page.get_by_role("link", name="Export CSV").click()
    exported = Path(await (await download_info.value).path()).read_text()
    assert ordered.json()["id"] in exported

    # A colleague invited from Users.
    await nav.get_by_role("link", name="Users", exact=True).click()
    colleague = f"new-{secrets.token_hex(4)}@console.example"
    await page.get_by_label("Email of the person").fill(colleague)
    await page.get_by_label("Name", exact=True).fill("Robin Newhire")
    await page.get_by_label("Role", exact=True).select_option("viewer")
    await page.get_by_role("button", name="Send invite").click()
    await expect(page.get_by_role("status")).to_have_text("Invitation sent.")
    await expect(page.get_by_text(colleague)).to_be_visible()

    # The second person approves the grant: the points move once.
    async with signed_in_elsewhere(browser, live_server, page_errors, *invites["manager"]) as other:
        await other.goto(f"/console/p/{program.id}/approvals")
        assert await axe_violations(other) == [], "approvals waiting"
        await other.get_by_label(re.compile(r"^Reason for the")).first.fill("Confirmed with the sales director")
        await other.get_by_role("button", name="Approve", exact=True).first.click()
        await expect(other.get_by_role("status")).to_contain_text("Approved")
        await other.goto(f"/console/p/{program.id}/participants/{person['id']}")
        await expect(other.locator("#available")).to_contain_text(f"{available_before + 5_000:,}")
    async with httpx.AsyncClient(base_url=live_server.url, timeout=30) as http:
        claim = (await http.get(f"/v1/claims/{filed.json()['id']}", headers=program.headers)).json()
        assert claim["status"] == "approved", claim
