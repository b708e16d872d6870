"""The calls we make to Stripe. The stripe library blocks, so each call runs in a thread."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import msgspec
import stripe

from kernel.errors import Unavailable


class StripeSettings(msgspec.Struct, frozen=True):
    api_key: str
    webhook_secret: str
    api_base: str | None = None


class StripeGateway:
    def __init__(self, settings: StripeSettings) -> None:
        self.settings = settings
        bases = {"api": settings.api_base} if settings.api_base else {}
        self.client = stripe.StripeClient(settings.api_key, base_addresses=bases)  # type: ignore[arg-type]

    async def create_payment_intent(self, amount: int, currency: str, metadata: dict[str, str],
                                    idempotency_key: str) -> tuple[str, str]:
        """Answers (PaymentIntent id, client secret)."""
        def call() -> Any:
            return self.client.v1.payment_intents.create(
                params={"amount": amount, "currency": currency.lower(), "metadata": metadata,
                        "payment_method_types": ["card", "us_bank_account"] if currency == "USD" else ["card"]},
                options={"idempotency_key": idempotency_key})

        intent = await _stripe(call)
        return intent.id, intent.client_secret

    async def payment_intent(self, intent_id: str) -> tuple[str, str]:
        """Answers (the PaymentIntent's status, its client secret)."""
        intent = await _stripe(lambda: self.client.v1.payment_intents.retrieve(intent_id))
        return str(intent.status), str(intent.client_secret)

    async def client_secret(self, payment_intent_id: str) -> str:
        """The client secret of a PaymentIntent created earlier (to pay it later)."""
        return (await self.payment_intent(payment_intent_id))[1]

    def verify(self, payload: bytes, signature: str | None) -> dict[str, Any]:
        """The event if the `Stripe-Signature` header is valid and fresh; raises ValueError otherwise."""
        try:
            stripe.WebhookSignature.verify_header(payload.decode("utf-8"), signature, self.settings.webhook_secret,
                                                  tolerance=300)
            event = msgspec.json.decode(payload)
        except (stripe.SignatureVerificationError, UnicodeDecodeError, msgspec.DecodeError) as exc:
            raise ValueError(str(exc).split("\n")[0]) from None
        if not isinstance(event, dict):
            raise ValueError("the event is not a JSON object")
        return event


async def _stripe(call: Callable[[], Any]) -> Any:
    """A call to Stripe in a thread; Stripe down or refusing answers `unavailable` (retry later),
    never a crash, and nothing of ours changed."""
    try:
        return await asyncio.to_thread(call)
    except stripe.StripeError as exc:
        raise Unavailable(f"Stripe did not do it: {exc.user_message or type(exc).__name__}") from None
