"""The manager console in Chromium, as a program manager uses it: accept an invite, sign in
(a wrong password first), visit every page of the navigation (no console error, no serious
or critical axe violation at 1280x800), launch, pause and resume a wheel by its buttons,
find a participant and grant them points, sign out; then a viewer, who sees no button that
changes anything and whose forged POST the server refuses."""

from __future__ import annotations

import re
import secrets
from typing import Any

import httpx
from playwright.async_api import expect

from tests.console.conftest import DESKTOP, TABLET, PageErrors, axe_violations, screenshot
from tests.factories import OPERATOR, bearer

PASSWORD = "a long enough password"
NAV = ["Overview", "Participants", "Earning rules", "Claims", "Approvals", "Catalog", "Orders", "Spin campaigns",
       "Sweepstakes", "Leaderboards", "Announcements", "Funding", "Partners", "Audit log", "Users"]


def seed(base: str) -> dict[str, Any]:
    """A program with a participant, a draft wheel and two invited people, through the API."""
    with httpx.Client(base_url=base, timeout=30) as http:
        created = http.post("/v1/programs", json={"name": f"Console flow {secrets.token_hex(3)}"}, headers=OPERATOR)
        assert created.status_code == 201, created.text
        program = created.json()
        admin = bearer(program["admin_key"])
        name = f"Marta Quill {secrets.token_hex(3)}"
        person = http.post("/v1/participants", json={"external_id": secrets.token_hex(6), "display_name": name},
                           headers=admin).json()
        wheel = http.post("/v1/campaigns/spin", headers=admin, json={
            "name": "Spring wheel", "cost_points": 0,
            "segments": [{"label": "Try again", "weight": 1, "prize": {"type": "nothing"}}]}).json()
        invites = {}
        for role in ("owner", "viewer"):
            email = f"{role}-{secrets.token_hex(4)}@console.example"
            answer = http.post("/v1/console-users", json={"email": email, "display_name": f"Pat {role.title()}",
                                                          "role": role}, headers=admin)
            assert answer.status_code == 201, answer.text
            invites[role] = (email, answer.json()["invite_url"])
    return {"program": program, "admin": admin, "person": person, "wheel": wheel, "invites": invites}


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
    viewer_context = await browser.new_context(base_url=live_server.url, viewport={"width": 1280, "height": 800})
    try:
        viewer = await viewer_context.new_page()
        page_errors.watch(viewer)
        viewer_email, viewer_invite = world["invites"]["viewer"]
        await accept_and_sign_in(viewer, viewer_email, viewer_invite)
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
        await expect(viewer.get_by_role("heading", name="Tax form")).to_be_visible()
        await viewer.goto(f"/console/p/{program_id}/funding")
        await expect(viewer.get_by_role("button", name="Download tax report")).to_have_count(0)
        forged = await viewer.request.post(f"/console/p/{program_id}/participants/{world['person']['id']}/grant",
                                           form={"csrf": csrf or "", "points": "1000", "reason": "forged"})
        assert forged.status == 403
    finally:
        await viewer_context.close()
    with httpx.Client(base_url=live_server.url) as http:
        assert http.get(f"/v1/campaigns/{world['wheel']['id']}", headers=world["admin"]).json()["status"] == "active"
        wallet = http.get(f"/v1/participants/{world['person']['id']}/wallet", headers=world["admin"]).json()
        assert wallet["available"] == 25
