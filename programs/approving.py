"""Approving a four-eyes request (programs/approvals.py): the move it names, applied exactly
once through its kind's own use case, with the request's id pinning every id it makes.

The request moves pending -> approving before anything is touched, then the move runs, and
only then does the request say approved, with what it made:

- grant, deduction: the wallet's idempotency key is the request's, so a retried or
  concurrent approval replays the one move;
- redemption: the participant's own use case (fulfillment/redemptions.py `place_order`)
  with the order id taken from the request's, which carries an order an earlier attempt
  began on instead of making a second;
- top_up: the PaymentIntent and its funding, with the Stripe idempotency key and the
  funding id taken from the request's (programs/funding.py `open_approved_intent`);
- rule_activation: exactly the rule version asked for (programs/rulebook.py
  `activate_version`), or nothing if the rule changed meanwhile.

The last three take several steps, so they run under `once` keyed by the request: a second
approval while the first runs answers `idempotency_key_in_flight` instead of racing it, and
a request left `approving` by a crash is carried on by approving it again. A move refused at
approval time (the participant spent the points, the card is out of stock, the rule changed)
leaves the request `failed` with the refusal's words.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, NamedTuple

from catalog.items import pricing_of
from fulfillment.redemptions import place_order
from fulfillment.sealing import Sealer
from kernel import keys as kernel_keys
from kernel.errors import Conflict, DomainError, IdempotencyKeyInFlight, NotConfigured, Unavailable
from kernel.idempotency import Idem, once
from programs import approvals, funding, point_moves, rulebook
from programs.approvals import ApprovalView, Details
from programs.programs import ProgramView, get_program
from programs.tables import ApprovalRequest
from wallet.store import WalletStore

if TYPE_CHECKING:
    from programs.stripe_gateway import StripeGateway

# How long a finished several-step approval's result is kept for a concurrent duplicate to
# replay: the request's own status says approved for good after that.
RUN_TTL_SECONDS = 86_400
# Refusals that change nothing and may pass: the request stays as it is, to approve again.
PASSING = (IdempotencyKeyInFlight, Unavailable)


class Approval(NamedTuple):
    """One approval's inputs, for its kind's step."""

    wallets: WalletStore
    sealer: Sealer
    gateway: StripeGateway | None
    program: ProgramView
    request: ApprovalView
    details: Details
    decided_by: str


async def _redeem(a: Approval) -> str:
    actor = point_moves.who(a.request.requested_by, a.decided_by)
    order = await place_order(a.wallets, a.sealer, a.program, pricing_of(a.program), a.request.participant_id or "",
                              a.details.item_id or "", a.details.face_value, order_id=approvals.made_id("ord", a.request.id),
                              actor=actor)
    return order.id


async def _top_up(a: Approval) -> str:
    assert a.gateway is not None and a.details.amount is not None  # checked before the request moved
    return await funding.open_approved_intent(a.gateway, a.program, a.request.id, a.details.amount, a.request.points)


async def _activate(a: Approval) -> str:
    if a.details.rule is None or a.details.rule_id is None or a.details.rule_version is None:
        raise Conflict("the request does not name the rule to activate")
    made = await rulebook.activate_version(a.program.id, a.details.rule_id, a.details.rule_version, a.details.rule)
    return f"{made.id}:{made.version}"


STEPS: dict[str, Callable[[Approval], Awaitable[str]]] = {
    "redemption": _redeem, "top_up": _top_up, "rule_activation": _activate}


async def approve(wallets: WalletStore, sealer: Sealer, program_id: str, request_id: str, decided_by: str,
                  note: str | None = None, gateway: StripeGateway | None = None) -> ApprovalView:
    """Applies the request's move once (approving an approved request again answers it as it
    is). `gateway` is needed for a top-up: without Stripe it is refused and stays pending."""
    request = await approvals.get_request(program_id, request_id)
    approvals.check_decider(request, decided_by)
    if request.status == "approved":
        return request  # the same approval again: answered, nothing moves twice
    if request.status in ("failed", "rejected"):
        raise Conflict(f"the request is already {request.status}")
    if request.kind == "top_up" and gateway is None:
        raise NotConfigured("Stripe is not configured: a top-up is paid by card or bank through Stripe")
    await approvals.start(program_id, request_id, decided_by, note)
    try:
        if request.kind in ("grant", "deduction"):
            values = await _move(wallets, program_id, request, decided_by)
        else:
            details = approvals.details_of(await approvals.request_row(program_id, request_id))
            step = Approval(wallets, sealer, gateway, await get_program(program_id), request, details, decided_by)
            run = Idem(key=kernel_keys.idempotency(program_id, "approval-run", request_id), fingerprint=request.kind)
            made, _ = await once(wallets.client, run, RUN_TTL_SECONDS, lambda: STEPS[request.kind](step), str)
            values = {ApprovalRequest.outcome_id: made}
    except PASSING:
        raise
    except DomainError as exc:
        return await approvals.finish(program_id, request_id, "failed", {ApprovalRequest.decision_reason: exc.detail})
    return await approvals.finish(program_id, request_id, "approved", values)


async def _move(wallets: WalletStore, program_id: str, request: ApprovalView, decided_by: str) -> dict[Any, Any]:
    idem = Idem(key=kernel_keys.idempotency(program_id, "approval", request.id),
                fingerprint=hashlib.sha256(f"{request.kind}|{request.participant_id}|{request.points}".encode())
                .hexdigest())
    move = point_moves.grant_points if request.kind == "grant" else point_moves.deduct_points
    moved = await move(wallets, program_id, request.participant_id or "", request.points, request.reason, idem,
                       reference=f"approval:{request.id}", actor=request.requested_by, approved_by=decided_by)
    return {ApprovalRequest.transaction_id: moved.move.transaction_id}
