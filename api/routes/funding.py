"""Funding a program: Stripe PaymentIntents and webhooks, and offline payments."""

from __future__ import annotations

import logging
from typing import Any

import msgspec
from litestar import Request, Response, get, post
from litestar.di import Provide
from litestar.exceptions import ValidationException

from api.auth import admin_only, operator_only, principal_of
from api.idempotency import provide_idem
from api.routes.approvals import ASKED, done_or_asked
from api.routes.participants import Cursor, Limit, program_of
from api.settings import Settings
from programs import funding
from programs.programs import get_program
from programs.stripe_gateway import StripeGateway
from kernel.errors import NotConfigured
from wallet.store import WalletStore
from kernel.idempotency import Idem

IDEMPOTENT = {"idem": Provide(provide_idem)}
log = logging.getLogger("rw.funding")


class Received(msgspec.Struct, frozen=True):
    received: bool
    outcome: str


def gateway_of(request: Request[Any, Any, Any]) -> StripeGateway:
    gateway = getattr(request.app.state, "stripe", None)
    if gateway is None:
        raise NotConfigured("Stripe is not configured: set STRIPE_API_KEY and STRIPE_WEBHOOK_SECRET "
                            "(and STRIPE_API_BASE for a stand-in)")
    return gateway


@post("/v1/funding/payment-intents", guards=[admin_only], dependencies=IDEMPOTENT,
      operation_id="createFundingPaymentIntent", summary="Fund the program by card or bank payment",
      description="Creates a Stripe PaymentIntent for the amount (in the program's currency) and answers its "
                  "`client_secret` for Stripe.js and a `funding_id`. The budget is credited when Stripe reports "
                  "`payment_intent.succeeded`. Above the program's `approval_threshold_points` (the points the "
                  "amount buys) it answers 202 with an approval request instead; its approval creates the "
                  "PaymentIntent and names its `funding_id`. Requires `Idempotency-Key`; 503 `not_configured` "
                  "without Stripe.", tags=["funding"],
      responses=ASKED)
async def create_intent(request: Request[Any, Any, Any], data: funding.FundingRequest, idem: Idem, redis: Any,
                        settings: Settings) -> Response[funding.IntentCreated]:
    gateway = gateway_of(request)
    body, replayed = await funding.fund_by_payment(gateway, redis, idem, settings.idempotency_ttl_seconds,
                                                   program_of(request), data,
                                                   requested_by=f"key:{principal_of(request).subject_id}")
    return done_or_asked(body, 201, replayed)


@get("/v1/funding", guards=[admin_only], operation_id="listFundings", summary="List the program's fundings",
     description="Newest first, with status, points bought, and what was refunded or disputed.", tags=["funding"])
async def list_all(request: Request[Any, Any, Any], limit: Limit = 50, cursor: Cursor = None) -> funding.FundingPage:
    return await funding.list_fundings(program_of(request), limit, cursor)


@post("/v1/stripe/webhooks", operation_id="stripeWebhook", summary="Stripe webhook",
      description="Verifies `Stripe-Signature` with STRIPE_WEBHOOK_SECRET (a bad or stale signature answers 400 and "
                  "changes nothing), applies each event once: `payment_intent.succeeded` credits the budget, "
                  "`charge.refunded` and `charge.dispute.created` take the points back. Other events are "
                  "acknowledged and ignored.", opt={"exclude_from_auth": True}, security=[], tags=["funding"],
      status_code=200)
async def webhook(request: Request[Any, Any, Any], wallets: WalletStore) -> Received:
    gateway = gateway_of(request)
    try:
        event = gateway.verify(await request.body(), request.headers.get("stripe-signature"))
    except ValueError as exc:
        # A header that fails is a malformed request (400), as Litestar answers a bad parameter.
        raise ValidationException(extra=[{"key": "Stripe-Signature", "source": "header",
                                          "message": f"does not verify: {exc}"}]) from None
    outcome = await funding.apply_event(wallets, get_program, event)
    log.info("stripe event %s (%s): %s", event.get("id"), event.get("type"), outcome)
    return Received(received=True, outcome=outcome)


@post("/v1/programs/{program_id:str}/fundings/offline", guards=[operator_only], dependencies=IDEMPOTENT,
      operation_id="recordOfflineFunding", summary="Record a wire or invoice payment",
      description="Operator only. Credits the program's budget with the points the amount buys, once per "
                  "`Idempotency-Key`: a retry replays the first answer with `Idempotent-Replayed: true`, the same "
                  "key with another body or for another program answers 422 `idempotency_key_reused`.",
      tags=["funding"])
async def offline(program_id: str, data: funding.OfflineFunding, idem: Idem, wallets: WalletStore,
                  settings: Settings) -> Response[funding.FundingView]:
    body, replayed = await funding.fund_offline(wallets, idem, settings.idempotency_ttl_seconds, program_id, data)
    return Response(body, status_code=201, headers={"Idempotent-Replayed": "true"} if replayed else None)


ROUTES = [create_intent, list_all, webhook, offline]
