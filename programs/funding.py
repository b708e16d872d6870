"""Program funding: money in, points into the budget; refunds and disputes take them back.

Every change to the budget goes through the wallet as a transfer between the `world`
account and `budget`, keyed so that the same money is never counted twice: a payment by its
PaymentIntent, a refund by its charge and refunded total, a dispute by its id, an offline
payment by the operator's idempotency key. When a refund or dispute leaves the budget
negative the program is blocked (no grant is paid) until new funding brings it back.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from msgspec import Meta

from programs import approvals
from programs.programs import Money, ProgramView, get_program
from programs.tables import Funding, StripeEvent
from kernel import keys as kernel_keys
from wallet.accounts import raise_for
from kernel.errors import Conflict, Invalid, NotFound
from kernel.ids import new_id
from kernel.clock import utc
from kernel.money import MAX_BALANCE, check_move
from kernel.pages import newest_first
from kernel.idempotency import Idem, once, pinned_id
from wallet.store import Leg, WalletStore

if TYPE_CHECKING:
    from programs.stripe_gateway import StripeGateway


class FundingRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    amount: Money


class OfflineFunding(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    amount: Money
    reference: Annotated[str, Meta(min_length=1, max_length=200)]


class FundingView(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    source: str
    status: str
    amount: Money
    points: int
    refunded: Money
    disputed: Money
    created_at: datetime
    updated_at: datetime
    payment_intent_id: str | None = None
    reference: str | None = None


class FundingPage(msgspec.Struct, frozen=True):
    items: list[FundingView]
    next_cursor: str | None


class IntentCreated(msgspec.Struct, frozen=True):
    funding_id: str
    payment_intent_id: str
    client_secret: str
    points: int
    status: str


class PaymentDue(msgspec.Struct, frozen=True):
    """A card funding as its payer sees it: the client secret for Stripe.js while Stripe still
    waits for the payment, None once there is nothing left to pay (paid, processing, cancelled,
    or not a card funding)."""
    funding: FundingView
    client_secret: str | None = None


# PaymentIntent statuses in which the payer still has something to do.
AWAITING_PAYER = frozenset({"requires_payment_method", "requires_confirmation", "requires_action"})


def points_for_money(program: ProgramView, amount: Money) -> int:
    if amount.currency != program.point_value.currency:
        raise Invalid(f"fund in the program's currency ({program.point_value.currency})", field="amount")
    points = amount.amount // program.point_value.amount
    if points <= 0:
        raise Invalid(f"the amount buys no points (one point is {program.point_value.amount} minor units)",
                      field="amount")
    return check_move(points, "the funding", field="amount")


def _view(row: dict[str, Any]) -> FundingView:
    currency = row["currency"]
    return FundingView(
        id=row["id"], source=row["source"], status=row["status"], amount=Money(amount=row["amount"], currency=currency),
        points=row["points"], refunded=Money(amount=row["refunded_amount"], currency=currency),
        disputed=Money(amount=row["disputed_amount"], currency=currency), created_at=utc(row["created_at"]),
        updated_at=utc(row["updated_at"]), payment_intent_id=row["payment_intent_id"], reference=row["reference"])


async def record_intent(program: ProgramView, funding_id: str, amount: Money, points: int,
                        payment_intent_id: str) -> FundingView:
    now = datetime.now(timezone.utc)
    await Funding.insert(Funding(id=funding_id, program_id=program.id, source="stripe", status="requires_payment",
                                 amount=amount.amount, currency=amount.currency, points=points,
                                 payment_intent_id=payment_intent_id, created_at=now, updated_at=now)) \
        .on_conflict(action="DO NOTHING").run()  # a retry after a crash records the same funding again
    return await get_funding(program.id, funding_id)


def intent_ids(request_key: str) -> tuple[str, str]:
    """(funding id, Stripe idempotency key) of a card or bank funding request. Both come from
    the caller's whole record key (program, principal and client key), so a retry after a crash
    finds the same PaymentIntent and funding row, and two programs choosing the same
    Idempotency-Key never share a Stripe idempotency key. Never change how they are derived:
    recorded fundings and Stripe's idempotency records depend on these exact strings."""
    digest = hashlib.sha256(request_key.encode()).hexdigest()
    return "fnd_" + digest[:26], f"rw-funding-{digest}"


async def fund_by_payment(gateway: StripeGateway, client: Any, idem: Idem, ttl: int, program_id: str,
                          spec: FundingRequest, *, requested_by: str
                          ) -> tuple[IntentCreated | approvals.ApprovalView, bool]:
    """Creates a Stripe PaymentIntent for the amount and records the funding it will credit
    (when Stripe reports `payment_intent.succeeded`), once per idempotency record `idem`:
    answers (the result, whether it is a replay of the first one). The amount is checked
    before the record is touched.

    Four eyes: when the points the amount buys pass the program's approval threshold, it
    answers the approval request `requested_by` ("key:<id>" or "user:<id>") files instead, and
    no PaymentIntent exists until another person approves it (`open_approved_intent`); the
    requester then pays it with `client_secret_for`."""
    program = await get_program(program_id)
    points = points_for_money(program, spec.amount)
    if approvals.needs_approval(program, points):
        request_id = await pinned_id(client, idem, "apr", ttl)
        return await approvals.file_request(program, "top_up", points, requested_by, request_id,
                                            details=approvals.Details(amount=spec.amount)), False
    funding_id, stripe_key = intent_ids(idem.key)

    async def action() -> IntentCreated:
        return await _open_intent(gateway, program, funding_id, stripe_key, spec.amount, points)

    return await once(client, idem, ttl, action, IntentCreated)


async def _open_intent(gateway: StripeGateway, program: ProgramView, funding_id: str, stripe_key: str,
                       amount: Money, points: int) -> IntentCreated:
    intent_id, secret = await gateway.create_payment_intent(
        amount.amount, amount.currency, {"program_id": program.id, "funding_id": funding_id},
        idempotency_key=stripe_key)
    await record_intent(program, funding_id, amount, points, intent_id)
    return IntentCreated(funding_id=funding_id, payment_intent_id=intent_id, client_secret=secret,
                         points=points, status="requires_payment")


async def open_approved_intent(gateway: StripeGateway, program: ProgramView, request_id: str, amount: Money,
                               points: int) -> str:
    """An approved top-up's PaymentIntent and funding (programs/approving.py): both named from
    the request's id, so approving again finds the same ones. Answers the funding id."""
    funding_id = approvals.made_id("fnd", request_id)
    await _open_intent(gateway, program, funding_id, f"rw-funding-approval-{request_id}", amount, points)
    return funding_id


async def client_secret_for(gateway: StripeGateway, program_id: str, funding_id: str) -> str:
    """The client secret that pays a card or bank funding still waiting for its payment (an
    approved top-up, or one whose first answer was lost), read from Stripe: never stored here."""
    found = await get_funding(program_id, funding_id)
    if found.source != "stripe" or not found.payment_intent_id:
        raise Conflict("this funding is not paid by card or bank")
    if found.status != "requires_payment":
        raise Conflict(f"this funding is already {found.status}")
    return await gateway.client_secret(found.payment_intent_id)


async def awaiting_payment(program_id: str, limit: int = 50) -> list[FundingView]:
    """Card or bank fundings created but not paid yet (approved top-ups among them), newest first."""
    rows = await Funding.select().where((Funding.program_id == program_id) & (Funding.source == "stripe")
                                        & (Funding.status == "requires_payment")) \
        .order_by(Funding.created_at, ascending=False).limit(limit).run()
    return [_view(r) for r in rows]


async def get_funding(program_id: str, funding_id: str) -> FundingView:
    row = await Funding.select().where((Funding.id == funding_id) & (Funding.program_id == program_id)).first().run()
    if row is None:
        raise NotFound("no such funding")
    return _view(row)


async def payment_due(gateway: StripeGateway, program_id: str, funding_id: str) -> PaymentDue:
    """What is left to pay on a funding of the program, asked of Stripe each time: the page
    that pays may be opened again long after the request that created the intent (whose
    idempotency record expires), and Stripe knows whether the payment has already been made."""
    found = await get_funding(program_id, funding_id)
    if found.source != "stripe" or found.status != "requires_payment" or not found.payment_intent_id:
        return PaymentDue(funding=found)
    status, secret = await gateway.payment_intent(found.payment_intent_id)
    return PaymentDue(funding=found, client_secret=secret if status in AWAITING_PAYER else None)


async def list_fundings(program_id: str, limit: int = 50, cursor: str | None = None) -> FundingPage:
    where = Funding.program_id == program_id
    rows, following = await newest_first(Funding, where, limit, cursor)
    return FundingPage(items=[_view(r) for r in rows], next_cursor=following)


async def _move(store: WalletStore, program_id: str, points: int, key: str, kind: str, reference: str,
                reason: str, into_budget: bool) -> None:
    legs = [Leg("acct:world", "acct:budget", points, "-")] if into_budget else [
        Leg("acct:budget", "acct:world", points, "-")]
    outcome = await store.transfer(program_id, new_id("tx"), kind, legs,
                                   idem=Idem(key=kernel_keys.idempotency(program_id, "funding", key), fingerprint=kind),
                                   reference=reference, metadata=msgspec.json.encode({"reason": reason}).decode())
    raise_for(outcome)
    # Blocked while the budget is negative after money was taken back; funded again, unblocked.
    budget = (await store.program_accounts(program_id)).get("budget", 0)
    if into_budget and budget >= 0:
        await store.set_program_config(program_id, blocked="0")
    elif not into_budget and budget < 0:
        await store.set_program_config(program_id, blocked="1")


def offline_funding_id(program_id: str, request_key: str) -> str:
    """The id of the funding a request key records: from the program and the caller's whole key
    (its principal scope and client key), so no two programs or principals ever share one."""
    return "fnd_" + hashlib.sha256(f"{program_id}\n{request_key}".encode()).hexdigest()[:26]


async def fund_offline(store: WalletStore, idem: Idem, ttl: int, program_id: str,
                       spec: OfflineFunding) -> tuple[FundingView, bool]:
    """The operator records a wire or invoice payment, once per idempotency record `idem`:
    answers (the funding, whether it is a replay of the first answer)."""

    async def action() -> FundingView:
        # The funding id comes from the whole record key (principal scope and client key) and
        # the program, so the same client key never names another program's funding.
        return await _credit_offline(store, await get_program(program_id), spec, idem.key)

    return await once(store.client, idem, ttl, action, FundingView)


async def _credit_offline(store: WalletStore, program: ProgramView, spec: OfflineFunding,
                          request_key: str) -> FundingView:
    points = points_for_money(program, spec.amount)
    funding_id = offline_funding_id(program.id, request_key)
    # Refused before a row is written: the world account may not pass 2^53 - 1 in size (the
    # transfer's Lua checks again; this keeps a refused funding from leaving a record).
    funded = -(await store.program_accounts(program.id)).get("world", 0)
    if funded + points > MAX_BALANCE:
        raise Invalid(f"the program's funding would reach {funded + points:,} points; no account may pass "
                      f"{MAX_BALANCE:,}", field="amount")
    now = datetime.now(timezone.utc)
    await Funding.insert(Funding(id=funding_id, program_id=program.id, source="offline", status="succeeded",
                                 amount=spec.amount.amount, currency=spec.amount.currency, points=points,
                                 reference=spec.reference, created_at=now, updated_at=now)) \
        .on_conflict(action="DO NOTHING").run()
    await _move(store, program.id, points, f"offline:{funding_id}", "funding", funding_id,
                f"offline payment {spec.reference}", into_budget=True)
    return await get_funding(program.id, funding_id)


async def _funding_for_intent(payment_intent_id: str | None) -> dict[str, Any] | None:
    if not payment_intent_id:
        return None
    return await Funding.select().where(Funding.payment_intent_id == payment_intent_id).first().run()


async def apply_event(store: WalletStore, programs: Any, event: dict[str, Any]) -> str:
    """Applies a verified Stripe event once. Answers what happened, for the log.

    `programs` looks up a ProgramView by id. A re-delivered event changes nothing; an event
    whose effect was interrupted is applied again, idempotently."""
    event_id, kind = str(event.get("id") or ""), str(event.get("type") or "")
    if not event_id:
        raise Invalid("the event has no id")
    inserted = await StripeEvent.insert(StripeEvent(event_id=event_id, type=kind,
                                                    received_at=datetime.now(timezone.utc))) \
        .on_conflict(action="DO NOTHING").returning(StripeEvent.event_id).run()
    if not inserted:
        seen = await StripeEvent.select(StripeEvent.processed_at).where(StripeEvent.event_id == event_id).first().run()
        if seen is not None and seen["processed_at"] is not None:
            return "duplicate"
    obj = (event.get("data") or {}).get("object") or {}
    outcome = "ignored"
    if kind == "payment_intent.succeeded":
        outcome = await _succeeded(store, programs, obj)
    elif kind == "charge.refunded":
        outcome = await _refunded(store, programs, obj)
    elif kind == "charge.dispute.created":
        outcome = await _disputed(store, programs, obj)
    await StripeEvent.update({StripeEvent.processed_at: datetime.now(timezone.utc)}).where(
        StripeEvent.event_id == event_id).run()
    return outcome


async def _succeeded(store: WalletStore, programs: Any, intent: dict[str, Any]) -> str:
    row = await _funding_for_intent(intent.get("id"))
    if row is None:
        return "unknown payment intent"
    program = await programs(row["program_id"])
    await _move(store, program.id, row["points"], f"intent:{row['payment_intent_id']}", "funding", row["id"],
                f"card or bank payment {row['payment_intent_id']}", into_budget=True)
    await Funding.update({Funding.status: "succeeded", Funding.updated_at: datetime.now(timezone.utc)}).where(
        Funding.id == row["id"]).run()
    return "credited"


async def _refunded(store: WalletStore, programs: Any, charge: dict[str, Any]) -> str:
    row = await _funding_for_intent(charge.get("payment_intent"))
    if row is None:
        return "unknown charge"
    program = await programs(row["program_id"])
    refunded_total = int(charge.get("amount_refunded") or 0)
    newly = refunded_total - row["refunded_amount"]
    if newly <= 0:
        return "nothing new refunded"
    points = min(newly // program.point_value.amount, row["points"])
    await _move(store, program.id, points, f"refund:{charge.get('id')}:{refunded_total}", "funding_refund", row["id"],
                f"refund of {newly} {row['currency']}", into_budget=False)
    await Funding.update({Funding.refunded_amount: refunded_total, Funding.updated_at: datetime.now(timezone.utc)}) \
        .where(Funding.id == row["id"]).run()
    return "refund taken back"


async def _disputed(store: WalletStore, programs: Any, dispute: dict[str, Any]) -> str:
    row = await _funding_for_intent(dispute.get("payment_intent"))
    if row is None:
        return "unknown dispute"
    program = await programs(row["program_id"])
    amount = int(dispute.get("amount") or 0)
    points = min(amount // program.point_value.amount, row["points"])
    await _move(store, program.id, points, f"dispute:{dispute.get('id')}", "funding_dispute", row["id"],
                f"dispute {dispute.get('id')}", into_budget=False)
    await Funding.update({Funding.disputed_amount: row["disputed_amount"] + amount,
                          Funding.updated_at: datetime.now(timezone.utc)}).where(Funding.id == row["id"]).run()
    return "dispute taken back"
