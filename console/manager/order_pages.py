"""Orders in the console: the list searched by status, partner and participant, and an
order's page with its timeline (console/manager/program_pages.py keeps the CSV export)."""

from __future__ import annotations

from typing import Any, get_args

from litestar import Request, Response, get, post

from api.problems import status_for
from console.manager.web import InProgram, back, checked_form, in_program, page, refused, render
from fulfillment import orders, partners
from fulfillment.order_timeline import order_timeline
from fulfillment.orders import OrderStatus
from kernel.errors import DomainError
from programs import audit, participants
from programs.console_users import MANAGES
from programs.programs import get_program

P = "/console/p/{program_id:str}"
ORDER_STATUSES: tuple[str, ...] = get_args(OrderStatus)


@get(f"{P}/orders", include_in_schema=False)
async def order_list(request: Request[Any, Any, Any], program_id: str, status: str | None = None,
                     partner: str | None = None, participant: str | None = None) -> Response[Any]:
    ctx = await in_program(request, program_id)
    if not isinstance(ctx, InProgram):
        return ctx
    chosen = status if status in ORDER_STATUSES else None
    known = await partners.list_partners(program_id)
    partner_id = partner if partner in {p.id for p in known} else None
    who = (participant or "").strip()[:200]
    person = None
    if who:
        found = await participants.list_participants(program_id, 2, None, who)
        person = found.items[0] if len(found.items) == 1 else None
    if who and person is None:
        listed: list[orders.OrderView] = []
    else:
        listed = (await orders.list_orders(program_id, limit=100, status=chosen, admin=True,  # type: ignore[arg-type]
                                           participant_id=person.id if person else None,
                                           partner_id=partner_id)).items
    return page(ctx, "console/orders.html", "Orders", "orders", request, orders=listed, status=chosen or "",
                statuses=ORDER_STATUSES, partners=known, partner=partner_id or "", participant=who, person=person)


@get(f"{P}/orders/{{order_id:str}}", include_in_schema=False)
async def order_page(request: Request[Any, Any, Any], program_id: str, order_id: str) -> Response[Any]:
    ctx = await in_program(request, program_id)
    if not isinstance(ctx, InProgram):
        return ctx
    try:
        order = await orders.admin_view(program_id, order_id)
        timeline = await order_timeline(program_id, order_id)
    except DomainError:
        return render("console/error.html", 404, title="Not found", message="No such order.", ctx=None)
    return page(ctx, "console/order.html", f"Order {order_id}", "orders", request, order=order, timeline=timeline)


@post(f"{P}/orders/{{order_id:str}}/cancel", include_in_schema=False, status_code=200)
async def cancel(request: Request[Any, Any, Any], program_id: str, order_id: str) -> Response[Any]:
    checked = await checked_form(request, program_id, MANAGES)
    if not isinstance(checked, tuple):
        return checked
    ctx, form = checked
    reason = form.get("reason", "").strip()[:300] or "cancelled by the program"
    try:
        await orders.cancel_for_participant(request.app.state.wallets, await get_program(program_id), order_id,
                                            reason, request.app.state.sealer)
    except DomainError as exc:
        return refused(ctx, exc.detail, status_for(exc.code))
    await audit.record(program_id, f"user:{ctx.signed.person.id}", "order.cancelled", order_id, reason=reason)
    return back(program_id, f"orders/{order_id}", "order-cancelled")


ROUTES = [order_list, order_page, cancel]
