"""A redemption made for a participant by an admin key or a console user: the participant's
own use case (fulfillment/redemptions.py `place_order`) spending the participant's points,
with who did it in the hold's journal entry (the audit log's `points.redemption` row).

Four eyes: when the order's points pass the program's approval threshold, a request for
another person is filed instead (programs/approvals.py) and nothing is held; its approval
places the order (programs/approving.py)."""

from __future__ import annotations

import msgspec

from catalog.items import item_row, pricing_of, redemption_points
from fulfillment import orders
from fulfillment.redemptions import labels_of, place_order
from fulfillment.sealing import Sealer
from kernel.errors import Conflict
from kernel.idempotency import Idem, once, pinned_id
from programs import approvals
from programs.approvals import ApprovalView
from programs.participants import get_participant
from programs.point_moves import who
from programs.programs import Money, ProgramView
from wallet.store import WalletStore


class Quote(msgspec.Struct, frozen=True):
    """What redeeming an item for someone costs, before anything moves (the confirmation)."""

    item_title: str
    face_value: Money
    points: int
    needs_approval: bool


async def quote(program: ProgramView, item_id: str, face_value: Money | None) -> Quote:
    item = await item_row(program.id, item_id)
    value, points = redemption_points(item, pricing_of(program), face_value)
    return Quote(item_title=(await labels_of(item)).title, face_value=Money(amount=value, currency=item["currency"]),
                 points=points, needs_approval=approvals.needs_approval(program, points))


async def redeem_for(store: WalletStore, sealer: Sealer, idem: Idem, ttl: int, program: ProgramView,
                     participant_id: str, item_id: str, face_value: Money | None,
                     actor: str) -> tuple[orders.OrderView | ApprovalView, bool]:
    """Redeems `item_id` from the participant's points for them, once per idempotency record
    `idem`: answers (the order as admins see it, without the card's code, which is the
    participant's; whether it is a replay), or (the approval request, False) above the
    threshold. `actor` is "key:<id>" or "user:<id>"."""
    person = await get_participant(program.id, participant_id)
    if person.status != "active":
        raise Conflict("the participant is deactivated")
    cost = await quote(program, item_id, face_value)
    if cost.needs_approval:
        request_id = await pinned_id(store.client, idem, "apr", ttl)
        details = approvals.Details(amount=cost.face_value, item_id=item_id, item_title=cost.item_title,
                                    face_value=face_value)
        return await approvals.file_request(program, "redemption", cost.points, actor, request_id,
                                            participant_id=participant_id, details=details), False
    # As the participant's own redemption: the order id is fixed by the first attempt with this key.
    order_id = await pinned_id(store.client, idem, "ord", ttl, suffix="order")

    async def action() -> orders.OrderView:
        placed = await place_order(store, sealer, program, pricing_of(program), participant_id, item_id, face_value,
                                   order_id=order_id, actor=who(actor))
        return await orders.admin_view(program.id, placed.id)

    return await once(store.client, idem, ttl, action, orders.OrderView)
