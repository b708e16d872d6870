"""Redeem for participant: an owner or manager redeems a catalog item from a participant's
points for them (the participant page's form, then a confirmation with the server's price),
through the same use case as `POST /v1/participants/{id}/redemptions`
(fulfillment/redeem_for.py): above the approval threshold it goes to Approvals instead."""

from __future__ import annotations

import hashlib
from typing import Any

from litestar import Request, Response, post

from api.problems import status_for
from catalog.items import get_item, pricing_of
from console.manager.web import back, checked_form, page, refused
from fulfillment.redeem_for import quote, redeem_for
from kernel import keys as kernel_keys
from kernel.errors import DomainError, Invalid
from kernel.idempotency import Idem
from programs.approvals import ApprovalView
from programs.console_users import MANAGES
from programs.participants import get_participant
from programs.programs import Money, get_program
from wallet import accounts

P = "/console/p/{program_id:str}"


def _face_value(text: str, currency: str) -> Money | None:
    text = text.strip()
    if not text:
        return None
    if not text.isdigit() or not 0 < int(text) <= 10**12:
        raise Invalid("the face value is a whole number of minor units (2500 for 25.00)", field="face_value")
    return Money(amount=int(text), currency=currency)  # type: ignore[arg-type]


@post(f"{P}/participants/{{participant_id:str}}/redeem", include_in_schema=False, status_code=200)
async def redeem(request: Request[Any, Any, Any], program_id: str, participant_id: str) -> Response[Any]:
    """Without `confirmed`, the confirmation page (nothing moves); with it, the redemption."""
    checked = await checked_form(request, program_id, MANAGES)
    if not isinstance(checked, tuple):
        return checked
    ctx, form = checked
    state = request.app.state
    try:
        program = await get_program(program_id)
        person = await get_participant(program_id, participant_id)
        item_id = form.get("item_id", "").strip()[:40]
        item = await get_item(program_id, item_id, pricing_of(program), active_only=True)
        face_value = _face_value(form.get("face_value", ""), item.currency)
        cost = await quote(program, item_id, face_value)
        if form.get("confirmed") != "yes":
            wallet = await accounts.wallet_view(state.wallets, program_id, participant_id)
            return page(ctx, "console/redeem_confirm.html", "Confirm the redemption", "participants", request,
                        program=program, person=person, item_id=item_id, quote=cost, wallet=wallet,
                        face_value=form.get("face_value", "").strip(), key=form.get("key", "")[:100])
        # The form's own key: confirming twice redeems once.
        asked = hashlib.sha256(f"{participant_id}|{item_id}|{face_value}".encode()).hexdigest()
        key = form.get("key", "")[:100] or asked
        idem = Idem(key=kernel_keys.idempotency(program_id, f"console:{ctx.signed.person.id}", f"redeem:{key}"),
                    fingerprint=asked)
        answer, _ = await redeem_for(state.wallets, state.sealer, idem, state.settings.idempotency_ttl_seconds,
                                     program, participant_id, item_id, face_value, f"user:{ctx.signed.person.id}")
    except DomainError as exc:
        return refused(ctx, exc.detail, status_for(exc.code))
    done = "requested" if isinstance(answer, ApprovalView) else "redeemed"
    return back(program_id, f"participants/{participant_id}", done)


ROUTES = [redeem]
