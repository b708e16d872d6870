"""Top-ups by card on the console's Funding page, through HTTP as a browser speaks it: an
owner's form creates one PaymentIntent however often it is sent, its pay page alone lets
Stripe's hosts in through its CSP, managers and viewers see the fundings and are refused the
rest, and a server without Stripe says how to configure it. tests/console/
test_console_funding_browser.py pays through localstripe's Stripe.js in Chromium."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from api.limits import CONSOLE_CSP
from tests.console.sessions import csrf_of, get, person_in, post
from tests.factories import new_program

# Pages over domain calls that tests/programs/test_funding.py runs on Postgres too: SQLite
# only, to keep CI under its 20 minutes.

KEY = re.compile(r'name="key" value="([^"]+)"')


async def fundings(client: Any, program: Any) -> list[dict[str, Any]]:
    return (await client.get("/v1/funding", headers=program.headers)).json()["items"]


@pytest.mark.usefixtures("localstripe_url")
async def test_an_owner_tops_up_once_per_form_and_only_an_owner_may(client: Any, stripe_api_base: str) -> None:
    program = await new_program(client)
    _, owner = await person_in(client, program, "owner")
    funding_page = await get(client, f"/console/p/{program.id}/funding", owner)
    assert funding_page.status_code == 200 and ">Top up by card</h2>" in funding_page.text
    assert funding_page.headers["content-security-policy"] == CONSOLE_CSP.decode()
    form = {"csrf": csrf_of(funding_page.text), "key": KEY.search(funding_page.text).group(1),  # type: ignore[union-attr]
            "amount": "100.00"}
    path = f"/console/p/{program.id}/funding/top-ups"

    # Refused before anything is created: no CSRF token, an amount that is not one or buys nothing.
    assert (await post(client, path, owner, {**form, "csrf": ""})).status_code == 403
    for amount, says in (("ten", "such as 100 or 100.00"), ("0.00", "buys no points")):
        refused = await post(client, path, owner, {**form, "amount": amount})
        assert refused.status_code == 422 and says in refused.text
    assert await fundings(client, program) == []

    # The same form sent twice at once (a double click): one PaymentIntent, both to its pay page.
    first, second = await asyncio.gather(post(client, path, owner, form), post(client, path, owner, form))
    assert first.status_code == second.status_code == 303
    assert first.headers["location"] == second.headers["location"]
    assert re.fullmatch(rf"/console/p/{program.id}/funding/fnd_\w+/pay", first.headers["location"])
    [made] = await fundings(client, program)
    assert (made["status"], made["amount"], made["points"]) == ("requires_payment", {"amount": 10_000, "currency": "USD"},
                                                                10_000)
    assert first.headers["location"] == f"/console/p/{program.id}/funding/{made['id']}/pay"

    # The pay page: the client secret in the page for Stripe.js, Stripe's hosts (and the
    # stand-in's origin) in its CSP; the Funding page's own CSP did not change.
    pay = await get(client, first.headers["location"], owner)
    assert pay.status_code == 200
    assert re.search(r'data-secret="pi_\w+_secret_\w+"', pay.text) and 'data-key="pk_test_' in pay.text
    csp = pay.headers["content-security-policy"]
    for directive in ("script-src", "frame-src", "connect-src"):
        sources = re.search(rf"{directive} ([^;]+)", csp).group(1).split()  # type: ignore[union-attr]
        assert stripe_api_base in sources, directive
    assert "https://js.stripe.com" in csp and "https://api.stripe.com" in csp
    assert f'<script src="{stripe_api_base}/js.stripe.com/v3/"></script>' in pay.text
    pay_button = f'action="/console/p/{program.id}/funding/{made["id"]}/pay" class="inline"><button type="submit">Pay<'
    assert pay_button in (await get(client, f"/console/p/{program.id}/funding", owner)).text
    status = await get(client, f"/console/p/{program.id}/funding/{made['id']}", owner)
    assert 'id="funding-status">pending<' in status.text and "Refresh" in status.text
    assert status.headers["content-security-policy"] == CONSOLE_CSP.decode()

    # Managers and viewers: the fundings, no form, and the server refuses the top-up and the pay page.
    for role in ("manager", "viewer"):
        _, session = await person_in(client, program, role)
        seen = await get(client, f"/console/p/{program.id}/funding", session)
        assert seen.status_code == 200 and "10,000" in seen.text and "top-ups" not in seen.text
        assert pay_button not in seen.text
        forged = await post(client, path, session, {**form, "csrf": csrf_of(seen.text), "key": role})
        assert forged.status_code == 403, role
        assert (await get(client, first.headers["location"], session)).status_code == 403
    assert len(await fundings(client, program)) == 1
    audited = (await client.get("/v1/audit-events", params={"kind": "funding.top_up_created"},
                                headers=program.headers)).json()["items"]
    assert [(e["subject"], e["actor"].split(":")[0]) for e in audited] == [(made["id"], "user")]


async def test_without_stripe_the_funding_page_says_how_to_configure_it(settings: Any, migrated: None) -> None:
    from api.app import create_app

    plain = create_app(msgspec.structs.replace(settings, stripe_api_key=None, stripe_webhook_secret=None,
                                               journal_consumer=False, background_tasks=False))
    async with AsyncTestClient(app=plain) as bare:
        program = await new_program(bare)
        _, owner = await person_in(bare, program, "owner")
        seen = await get(bare, f"/console/p/{program.id}/funding", owner)
        assert seen.status_code == 200 and 'id="card-payments-off"' in seen.text
        assert "missing now: STRIPE_API_KEY, STRIPE_WEBHOOK_SECRET" in seen.text and "top-ups" not in seen.text
        refused = await post(bare, f"/console/p/{program.id}/funding/top-ups", owner,
                             {"csrf": csrf_of(seen.text), "key": "k", "amount": "100.00"})
        assert refused.status_code == 503 and "STRIPE_API_KEY" in refused.text


@pytest.mark.usefixtures("localstripe_url")
async def test_a_top_up_over_the_threshold_is_sent_for_approval_then_waits_with_a_pay_button(client: Any) -> None:
    program = await new_program(client, approval_threshold_points=5_000)
    _, owner = await person_in(client, program, "owner")
    _, manager = await person_in(client, program, "manager")
    seen = await get(client, f"/console/p/{program.id}/funding", owner)
    form = {"csrf": csrf_of(seen.text), "key": KEY.search(seen.text).group(1), "amount": "100.00"}  # type: ignore[union-attr]
    asked = await post(client, f"/console/p/{program.id}/funding/top-ups", owner, form)
    assert (asked.status_code, asked.headers["location"]) == (
        303, f"/console/p/{program.id}/funding?done=top-up-requested")
    seen = await get(client, asked.headers["location"], owner)
    assert "Sent for approval" in seen.text and ">Top-ups waiting for approval</h2>" in seen.text
    assert "100.00 USD (10,000 points)" in seen.text and "Waiting for payment" not in seen.text
    assert await fundings(client, program) == []  # no PaymentIntent before a second person approves

    [request] = (await client.get("/v1/approvals", headers=program.headers)).json()["items"]
    approvals_page = await get(client, f"/console/p/{program.id}/approvals", manager)
    decided = await post(client, f"/console/p/{program.id}/approvals/{request['id']}/decide", manager,
                         {"csrf": csrf_of(approvals_page.text), "verdict": "approved"})
    assert decided.status_code == 303, decided.text
    [made] = await fundings(client, program)
    seen = await get(client, f"/console/p/{program.id}/funding", owner)
    assert ">Waiting for payment</h2>" in seen.text and "Top-ups waiting for approval" not in seen.text
    pay = f'action="/console/p/{program.id}/funding/{made["id"]}/pay" class="inline"><button type="submit">Pay<'
    assert pay in seen.text and "<td>approved</td>" in seen.text
    paying = await get(client, f"/console/p/{program.id}/funding/{made['id']}/pay", owner)
    assert paying.status_code == 200 and 'data-secret="pi_' in paying.text and "Pay 100.00 USD" in paying.text
    # The manager who approved it sees it waiting, with no Pay button (paying is an owner's).
    assert pay not in (await get(client, f"/console/p/{program.id}/funding", manager)).text
