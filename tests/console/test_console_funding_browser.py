"""A top-up by card in Chromium, through localstripe's own fake Stripe.js (STRIPE_JS_URL
names it, tests/conftest.py): an owner types 100.00, pays on the pay page, localstripe sends
its signed `payment_intent.succeeded` to the live server, and the Funding page shows the
funding succeeded and the budget 10,000 points higher. The pay page's CSP names Stripe's
hosts and the stand-in's origin, the Funding page's does not; a manager's forged top-up gets
403 from the server.

localstripe's fake `confirmCardPayment` does not read the card field: it only passes the
3-D Secure step of a PaymentIntent already confirmed with a card that asks for it. So the test
does, with the secret key, what real Stripe.js does with the typed card (a PaymentMethod
attached and confirmed), and the page's own script then completes the payment through the
fake Stripe.js as it would through Stripe's."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.async_api import expect

from api.limits import CONSOLE_CSP
from tests.conftest import STRIPE_WEBHOOK_SECRET
from tests.console.conftest import PageErrors, axe_violations, screenshot
from tests.console.test_console_browser import accept_and_sign_in, seed, signed_in_elsewhere

# A test card localstripe asks 3-D Secure for (its PaymentMethod._requires_authentication).
CARD = {"number": "4000002760003184", "exp_month": "12", "exp_year": "34", "cvc": "123"}


@pytest.fixture
def stripe_webhooks(localstripe_url: str, live_server: Any) -> Iterator[str]:
    """localstripe delivers its payment_intent.succeeded events to the live server, signed with
    the app's webhook secret, during the test (and to nobody after it)."""
    hook = f"{localstripe_url}/_config/webhooks/rw-console-funding"
    target = {"url": f"{live_server.url}/v1/stripe/webhooks", "secret": STRIPE_WEBHOOK_SECRET}
    httpx.post(hook, json={**target, "events": ["payment_intent.succeeded"]}).raise_for_status()
    yield localstripe_url
    httpx.post(hook, json={**target, "events": []}).raise_for_status()


def card_confirmed_at_stripe(localstripe: str, intent_id: str) -> None:
    """What Stripe.js does with the typed card, which localstripe's fake leaves out."""
    with httpx.Client(base_url=localstripe, headers={"Authorization": "Bearer sk_test_reward_wallet"}) as stripe_api:
        method = stripe_api.post("/v1/payment_methods", json={"type": "card", "card": CARD})
        assert method.status_code == 200, method.text
        stripe_api.post(f"/v1/payment_intents/{intent_id}", json={"payment_method": method.json()["id"]}
                        ).raise_for_status()
        assert stripe_api.post(f"/v1/payment_intents/{intent_id}/confirm").json()["status"] == "requires_action"


async def test_an_owner_tops_up_by_card_and_the_budget_grows_once_stripe_says_so(
        page: Any, browser: Any, live_server: Any, page_errors: PageErrors, stripe_webhooks: str) -> None:
    world = seed(live_server.url, roles=("owner", "manager"))
    program_id, admin, invites = world["program"]["program_id"], world["admin"], world["invites"]
    await accept_and_sign_in(page, *invites["owner"])
    await page.get_by_role("navigation", name="Console").get_by_role("link", name="Funding", exact=True).click()
    await expect(page.locator("#funded-points")).to_have_text("0")
    await page.get_by_label("Amount (USD)").fill("100.00")
    await expect(page.locator("#top-up-buys")).to_have_text("Buys 10,000 points.")
    async with page.expect_response(re.compile(r"/pay$")) as pay_answer:
        await page.get_by_role("button", name="Continue to payment").click()
    await expect(page.get_by_role("heading", level=1)).to_have_text("Pay by card")
    pay_csp = (await pay_answer.value).headers["content-security-policy"]
    assert "script-src 'self' https://js.stripe.com" in pay_csp and "frame-src https://js.stripe.com" in pay_csp
    assert stripe_webhooks in pay_csp.split("connect-src", 1)[1].split(";")[0]
    funding_csp = (await page.request.get(f"/console/p/{program_id}/funding")).headers["content-security-policy"]
    assert funding_csp == CONSOLE_CSP.decode() and "stripe" not in funding_csp
    assert "secret" not in page.url

    # localstripe's card field, mounted by the page's script: the card typed in it.
    for field, value in CARD.items():
        await page.get_by_placeholder(field, exact=True).fill(value)
    await page.get_by_placeholder("postal_code").fill("10001")
    assert await axe_violations(page) == [], "the pay page"
    with httpx.Client(base_url=live_server.url) as http:
        [made] = http.get("/v1/funding", headers=admin).json()["items"]
    card_confirmed_at_stripe(stripe_webhooks, made["payment_intent_id"])
    await page.get_by_role("button", name="Pay 100.00 USD").click()
    await page.get_by_role("button", name="Complete authentication").click()  # the fake 3-D Secure step

    # The top-up's status, read again until localstripe's webhook (a second later) has landed.
    await expect(page).to_have_url(re.compile(rf"/console/p/{program_id}/funding/{made['id']}$"))
    status = page.locator("#funding-status")
    for _ in range(60):
        if await status.inner_text() != "pending":
            break
        await page.wait_for_timeout(250)
        await page.get_by_role("link", name="Refresh").click()
    await expect(status).to_have_text("succeeded")
    await expect(page.locator("#funded-points")).to_have_text("10,000")
    await screenshot(page, "console-funding-top-up")
    await page.get_by_role("link", name="All fundings").click()
    await expect(page.get_by_role("row").nth(1)).to_contain_text("succeeded")
    await expect(page.locator("#funded-points")).to_have_text("10,000")

    # A manager sees the fundings but no form, and the server refuses their forged top-up.
    async with signed_in_elsewhere(browser, live_server, page_errors, *invites["manager"]) as manager:
        await manager.goto(f"/console/p/{program_id}/funding")
        await expect(manager.get_by_role("row").nth(1)).to_contain_text("succeeded")
        await expect(manager.get_by_role("button", name="Continue to payment")).to_have_count(0)
        csrf = await manager.locator("input[name=csrf]").first.get_attribute("value")
        forged = await manager.request.post(f"/console/p/{program_id}/funding/top-ups",
                                            form={"csrf": csrf or "", "key": "forged", "amount": "100.00"})
        assert forged.status == 403
    with httpx.Client(base_url=live_server.url) as http:
        assert [f["status"] for f in http.get("/v1/funding", headers=admin).json()["items"]] == ["succeeded"]
        assert http.get("/v1/program/budget", headers=admin).json()["funded"]["points"] == 10_000
