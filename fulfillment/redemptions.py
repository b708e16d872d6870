"""Placing an order, end to end: hold and order, then the built-in pool fulfils at once or
an external partner is told by webhook (and can always pull)."""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from catalog.items import Pricing
from catalog.titles import item_title
from fulfillment import orders, webhooks
from fulfillment.code_pool import take_code
from fulfillment.orders import Credentials, OrderView, OutOfStock
from fulfillment.sealing import Sealer
from programs.feed import FeedEntry, publish
from programs.programs import Money, ProgramView
from wallet.store import WalletStore


async def dispatch(store: WalletStore, sealer: Sealer, program: ProgramView, row: dict[str, Any],
                   partner: dict[str, Any]) -> bool:
    """Starts a pending order with its partner: the built-in pool fulfils it at once (or fails
    it, returning the points, when out of stock: answers False); an external partner is told
    by webhook and can always pull."""
    if partner["kind"] == "code_pool":
        code = await take_code(row["id"], row["item_id"], sealer)
        if code is None:
            await orders.fail(store, program, row["id"], None, "out of stock", allowed=("pending",))
            return False
        await orders.fulfill(store, sealer, program, row["id"], None, msgspec.convert(code, Credentials),
                             allowed=("pending",))
    else:
        await webhooks.enqueue(program.id, partner, row["id"])
    return True


async def place_order(store: WalletStore, sealer: Sealer, program: ProgramView, pricing: Pricing,
                      participant_id: str, item_id: str, face_value: Money | None,
                      source: Literal["redemption", "prize"] = "redemption", order_id: str | None = None) -> OrderView:
    """`order_id` lets a caller that must not create two orders (a prize paid on a retry) choose the id."""
    row, partner = await orders.redeem(store, program, pricing, participant_id, item_id, face_value, source,
                                       order_id)
    if row["status"] != "pending":
        pass  # an earlier attempt with this order id got further: nothing more to start
    elif not await dispatch(store, sealer, program, row, partner):
        raise OutOfStock("this gift card is out of stock; your points were returned")
    view = await orders.participant_view(program.id, participant_id, row["id"], sealer)
    if source == "redemption":
        await publish(program.id, [FeedEntry(
            key=f"order:{row['id']}:placed", participant_id=participant_id, kind="redemption",
            text=f"Redeemed {view.points:,} {program.point_name} for {item_title(view.brand, view.item_name)}",
            points=-view.points, reference=row["id"])])
    return view
