"""The console's Funding pages: the fundings and the budget for everyone, and for owners a
top-up by card through Stripe: an amount form, then a pay page where Stripe.js takes the card
(the only page of the console that loads a script from another host: its own CSP says so),
then the top-up's status, credited when Stripe's webhook lands."""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from datetime import datetime, timezone
from typing import Any

from litestar import Request, Response, get, post
from litestar.response import Redirect

from api.limits import stripe_console_csp
from api.problems import status_for
from api.settings import Settings
from console.manager.web import InProgram, back, checked_form, in_program, page, refused, render
from fulfillment import taxes
from kernel import keys as kernel_keys
from kernel.errors import DomainError, IdempotencyKeyInFlight, IdempotencyKeyReused, Invalid, NotFound
from kernel.idempotency import Idem
from programs import approvals, audit, budget, funding
from programs.console_users import OWNS
from programs.programs import Money, ProgramView, get_program
from programs.stripe_gateway import StripeGateway

P = "/console/p/{program_id:str}"
# A funding's status in a person's words: the budget is credited when Stripe's webhook lands.
STATUS_WORDS = {"requires_payment": "pending", "succeeded": "succeeded"}
_AMOUNT = re.compile(r"^(\d{1,13})(?:\.(\d{1,2}))?$")


def card_payments(request: Request[Any, Any, Any]) -> tuple[StripeGateway | None, list[str]]:
    """The Stripe gateway when the console can take cards, and the settings still missing."""
    settings: Settings = request.app.state.settings
    missing = [name for name, value in (("STRIPE_API_KEY", settings.stripe_api_key),
                                        ("STRIPE_WEBHOOK_SECRET", settings.stripe_webhook_secret),
                                        ("STRIPE_PUBLISHABLE_KEY", settings.stripe_publishable_key)) if not value]
    gateway = request.app.state.stripe
    return (gateway if gateway is not None and not missing else None), missing


def amount_of(text: str, program: ProgramView) -> Money:
    """"1,250.50" in the program's currency -> its minor units (the console shows 2 decimals)."""
    found = _AMOUNT.match(text.strip().replace(",", ""))
    if not found:
        raise Invalid("type the amount as a number such as 100 or 100.00", field="amount")
    whole, cents = found.groups()
    return Money(amount=int(whole) * 100 + int((cents or "0").ljust(2, "0")), currency=program.point_value.currency)


def _status_path(program_id: str, funding_id: str) -> str:
    return f"/console/p/{program_id}/funding/{funding_id}"


@get(f"{P}/funding", include_in_schema=False)
async def funding_page(request: Request[Any, Any, Any], program_id: str) -> Response[Any]:
    ctx = await in_program(request, program_id)
    if not isinstance(ctx, InProgram):
        return ctx
    program = await get_program(program_id)
    found = await funding.list_fundings(program_id, 100)
    figures = await budget.budget_view(request.app.state.wallets, program)
    gateway, missing = card_payments(request)
    # Four eyes: top-ups over the threshold wait for a second person, then for their payment.
    top_ups = [r for status in ("pending", "approved")
               for r in (await approvals.list_requests(program_id, status, 100)).items if r.kind == "top_up"]
    # The tax years a report may be asked for: this one (in the program's time zone) and
    # the six before, newest first; last year's is the one filed early in the year.
    this_year = taxes.tax_year(program, datetime.now(timezone.utc))
    return page(ctx, "console/funding.html", "Funding", "funding", request, fundings=found.items, budget=figures,
                program=program, words=STATUS_WORDS, card_payments=gateway is not None, missing=missing,
                to_pay=await funding.awaiting_payment(program_id), asked=[r for r in top_ups if r.status == "pending"],
                approved={r.funding_id: r for r in top_ups if r.funding_id},
                # One key per form shown: a double submit creates one PaymentIntent.
                top_up_key=secrets.token_urlsafe(16),
                tax_years=list(range(this_year, this_year - 7, -1)), tax_year=this_year - 1)


@post(f"{P}/funding/top-ups", include_in_schema=False, status_code=200)
async def top_up(request: Request[Any, Any, Any], program_id: str, settings: Settings) -> Response[Any]:
    """Owners only: creates the PaymentIntent through the domain's `fund_by_payment`, then
    sends the browser to the pay page (the client secret never goes into a URL)."""
    checked = await checked_form(request, program_id, OWNS)
    if not isinstance(checked, tuple):
        return checked
    ctx, form = checked
    gateway, missing = card_payments(request)
    if gateway is None:
        return refused(ctx, f"Card payments are not configured: set {', '.join(missing)}.", 503)
    try:
        program = await get_program(program_id)
        amount = amount_of(form.get("amount", ""), program)
        key = form.get("key", "")[:100] or secrets.token_urlsafe(16)
        idem = Idem(key=kernel_keys.idempotency(program_id, f"console:{ctx.signed.person.id}", f"top-up:{key}"),
                    fingerprint=hashlib.sha256(f"top-up|{amount.amount}|{amount.currency}".encode()).hexdigest())
        spec = funding.FundingRequest(amount=amount)
        for _ in range(50):  # a double submit waits for the first to finish, then replays it
            try:
                created, replayed = await funding.fund_by_payment(
                    gateway, request.app.state.redis, idem, settings.idempotency_ttl_seconds, program_id, spec,
                    requested_by=f"user:{ctx.signed.person.id}")
                break
            except IdempotencyKeyInFlight:
                await asyncio.sleep(0.2)
        else:
            return refused(ctx, "This top-up is still being created: open the Funding page in a moment.", 409)
    except IdempotencyKeyReused:
        return refused(ctx, "This form was already sent with another amount: reload the Funding page for a new one.",
                       409)
    except DomainError as exc:
        return refused(ctx, exc.detail, status_for(exc.code))
    if isinstance(created, approvals.ApprovalView):  # over the threshold: filed (and audited) for a second person
        return back(program_id, "funding", "top-up-requested")
    if not replayed:
        await audit.record(program_id, f"user:{ctx.signed.person.id}", "funding.top_up_created", created.funding_id,
                           amount=amount.amount, currency=amount.currency, points=created.points)
    return Redirect(_status_path(program_id, created.funding_id) + "/pay", status_code=303)


@get(f"{P}/funding/{{funding_id:str}}/pay", include_in_schema=False)
async def pay_page(request: Request[Any, Any, Any], program_id: str, funding_id: str) -> Response[Any]:
    """Stripe.js's card field for a top-up still waiting for its payment; once there is
    nothing left to pay, the top-up's status instead."""
    ctx = await in_program(request, program_id)
    if not isinstance(ctx, InProgram):
        return ctx
    if not ctx.is_owner:
        return refused(ctx, "Only a program owner pays for its budget.")
    gateway, missing = card_payments(request)
    if gateway is None:
        return refused(ctx, f"Card payments are not configured: set {', '.join(missing)}.", 503)
    try:
        due = await funding.payment_due(gateway, program_id, funding_id)
    except NotFound:
        return render("console/error.html", 404, title="Not found", message="No such top-up.", ctx=None)
    except DomainError as exc:
        return refused(ctx, exc.detail, status_for(exc.code))
    if due.client_secret is None:
        return Redirect(_status_path(program_id, funding_id), status_code=303)
    settings: Settings = request.app.state.settings
    answer = page(ctx, "console/funding_pay.html", "Pay by card", "funding", request, funding=due.funding,
                  client_secret=due.client_secret, publishable_key=settings.stripe_publishable_key,
                  stripe_js_url=settings.stripe_js_url, status_path=_status_path(program_id, funding_id))
    answer.set_header("Content-Security-Policy", stripe_console_csp(settings.stripe_js_url).decode())
    return answer


@get(f"{P}/funding/{{funding_id:str}}", include_in_schema=False)
async def funding_status(request: Request[Any, Any, Any], program_id: str, funding_id: str) -> Response[Any]:
    """A funding read again from the records (a Refresh link, no script): pending until
    Stripe's webhook credits the budget, then succeeded."""
    ctx = await in_program(request, program_id)
    if not isinstance(ctx, InProgram):
        return ctx
    try:
        found = await funding.get_funding(program_id, funding_id)
    except NotFound:
        return render("console/error.html", 404, title="Not found", message="No such funding.", ctx=None)
    program = await get_program(program_id)
    figures = await budget.budget_view(request.app.state.wallets, program)
    return page(ctx, "console/funding_status.html", "Top-up", "funding", request, funding=found, budget=figures,
                words=STATUS_WORDS, path=_status_path(program_id, funding_id))


ROUTES = [funding_page, top_up, pay_page, funding_status]
