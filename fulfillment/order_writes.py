"""The SQL writes of placing an order: one transaction each (issue #13, the hot path).

Every order is one Redis call and then one transaction: a built-in pool item's
`record_pooled` after rw_pool_redeem (fulfillment/pooled_orders.py), an external partner's
`record_pending` after rw_partner_hold (fulfillment/partner_orders.py). The Redis call
journals the order with the entry that pays for it, so a crash between the two loses
nothing: the journal projector writes the same rows (ON CONFLICT DO NOTHING), whichever of
the request and the projector gets there first.

Orders an earlier build placed in steps may still sit `new` (written before their hold):
`resume` (fulfillment/redemptions.py) carries them on with `announce_pending` and
`fulfil_pooled`, each conditional on `status = 'new'`, so the request, a retry and the sweep
can race to finish one and it happens once; `drop_order` takes one back when its hold is
refused. Each write is one `write_chain` (kernel/sqlite_pool.py): on SQLite the whole
transaction in one hop on the writer's thread, so the write lock is not held across turns of
a busy event loop.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import msgspec

from fulfillment.tables import Order, PoolCode, WebhookDelivery
from kernel.errors import Conflict, DomainError
from programs.feed import FeedEntry, publishing
from kernel.ids import new_id
from kernel.sqlite_pool import Statement, placeholders, run_statement, write_chain, writing


class NewOrder(msgspec.Struct, frozen=True):
    """What the order row is made of, known before anything is written."""

    id: str
    program_id: str
    participant_id: str
    item_id: str
    partner_id: str
    source: str
    face_value: int
    currency: str
    points: int
    created_at: datetime
    # The order reaches the year's tax reporting threshold without the participant's form.
    tax_flagged: bool = False


def _transaction() -> Any:
    return writing(Order._meta.db)


# The code bound to its order only while it is free: a code is never on two orders. The
# statement is the journal projector's (its rows: order id, moment, code id, order id), which
# never binds a code to an order written failed (its points went back); `bind_code` the
# request's.
BIND_CODE = ("UPDATE pool_codes SET order_id = ?, used_at = ? WHERE id = ? AND order_id IS NULL "
             "AND NOT EXISTS (SELECT 1 FROM orders WHERE id = ? AND status <> 'fulfilled')")


_BIND = ("UPDATE pool_codes SET order_id = {}, used_at = {} WHERE id = {} AND (order_id IS NULL OR order_id = {}) "
         "RETURNING id, secret")


def bind_code(order_id: str, code_id: str, at: datetime) -> Statement:
    """The code bound to the order when it is free or already the order's (the journal
    projector may have bound it first), answering the code's id and sealed secret then
    (RETURNING); nothing when it is another order's."""
    return Statement(_BIND, (order_id, at, code_id, order_id))


# The order row's columns, in the order `fulfilled_values` answers them (the journal
# projector's follower writes its rows in this order too).
ORDER_COLUMNS = ("id", "program_id", "participant_id", "item_id", "partner_id", "source", "face_value", "currency",
                 "points", "status", "attempts", "credentials", "settled_at", "tax_flagged", "created_at",
                 "updated_at", "fulfilled_at")


def _fields(order: NewOrder, status: str, **more: Any) -> dict[str, Any]:
    """The order's row with `status` (and the fields `more` names; updated when the order was
    made, unless `more` says otherwise), column by column."""
    return {"id": order.id, "program_id": order.program_id, "participant_id": order.participant_id,
            "item_id": order.item_id, "partner_id": order.partner_id, "source": order.source,
            "face_value": order.face_value, "currency": order.currency, "points": order.points, "status": status,
            "attempts": 0, "credentials": None, "settled_at": None, "tax_flagged": order.tax_flagged,
            "created_at": order.created_at, "updated_at": order.created_at, "fulfilled_at": None, **more}


def _row(order: NewOrder, status: str, **more: Any) -> Order:
    return Order(**_fields(order, status, **more))


def fulfilled_values(order: NewOrder, credentials: str) -> tuple[Any, ...]:
    """A pool order as it is written once its points and code are taken (fulfilled and
    settled), as values of ORDER_COLUMNS."""
    fields = _fields(order, "fulfilled", credentials=credentials, settled_at=order.created_at,
                     fulfilled_at=order.created_at)
    return tuple(fields[column] for column in ORDER_COLUMNS)


# Plain SQL on the hot path: building and compiling the same statements with Piccolo's
# query builder cost about 0.6 ms of CPU per redemption. The credentials are the bound
# code's sealed secret, read inside the insert.
_INSERT_POOLED = "INSERT INTO orders ({}) VALUES ({}) ON CONFLICT DO NOTHING".format(
    ", ".join(ORDER_COLUMNS),
    ", ".join("(SELECT secret FROM pool_codes WHERE id = {})" if column == "credentials" else "{}"
              for column in ORDER_COLUMNS))


async def record_pooled(order: NewOrder, code_id: str, feed: list[FeedEntry], journalled: bool = False) -> str:
    """A pool order whose points and code rw_pool_redeem took (fulfillment/pooled_orders.py):
    its code bound to it, the order fulfilled and its feed lines, in one transaction; answers
    the code's sealed secret. Written already (a retry, or the journal projector first: its
    rows are the same), it writes nothing new. Raises Conflict, writing nothing, when the code
    is bound to another order (a pool Redis lost track of: the code is never handed out
    twice); DomainError when SQL has no such code. `journalled`: these are the rows the
    call's journal entry carries (its code), which the projector writes if they are missing
    (kernel/sqlite_pool.py write_chain)."""
    insert = Statement(_INSERT_POOLED, fulfilled_values(order, code_id))
    bound = await write_chain(Order._meta.db, bind_code(order.id, code_id, order.created_at),
                              [insert, *publishing(order.program_id, feed)], journalled=journalled)
    if not bound:
        if not await PoolCode.exists().where(PoolCode.id == code_id).run():
            # Not a code another order holds: SQL does not know it (a restored or another
            # database beside this Redis). Taking the next code would only lose more.
            raise DomainError(f"the pool's code {code_id} has no row")
        raise Conflict(f"the pool's code {code_id} is not this order's; it is not handed out")
    return str(bound[0]["secret"])


async def pool_codes(code_ids: list[str]) -> dict[str, dict[str, Any]]:
    """Each of these pool codes SQL has, by id: its sealed `secret` and the `order_id` it is
    bound to (None while free). One plain SQL read."""
    if not code_ids:
        return {}
    statement = Statement(f"SELECT id, secret, order_id FROM {PoolCode._meta.tablename} "
                          f"WHERE id IN ({placeholders(len(code_ids))})", tuple(code_ids))
    return {row["id"]: row for row in await run_statement(PoolCode._meta.db, statement)}


async def code_secret(order_id: str, code_id: str) -> str | None:
    """The sealed secret of the pool's code `code_id` when it is free in SQL or already this
    order's: the card a redemption answers while its rows wait for the journal projector
    (fulfillment/pooled_orders.py). None when SQL has no such code or another order holds it:
    the order is written on its request then, which takes the next code."""
    return (await code_secrets([(order_id, code_id)])).get(order_id)


async def code_secrets(orders: list[tuple[str, str]]) -> dict[str, str]:
    """`code_secret` of each (order id, code id), in one read: by order id, the orders whose
    code SQL has free or bound to them."""
    codes = await pool_codes([code_id for _, code_id in orders])
    return {order_id: str(code["secret"]) for order_id, code_id in orders
            if (code := codes.get(code_id)) is not None and code["order_id"] in (None, order_id)}


async def flag_for_tax(order_id: str) -> None:
    """The order marked as reaching the year's tax threshold after it was written: judged again
    from SQL (`taxes.placed_uncounted`) while the journal projector may already have written its
    row as the call judged it, which the order's own insert then leaves as it is."""
    await run_statement(Order._meta.db, Statement(
        "UPDATE orders SET tax_flagged = {} WHERE id = {} AND tax_flagged = {}", (True, order_id, False)))


# The webhook that announces a partner's new order: its id follows from the order's, so the
# request and the journal projector writing it both leave one delivery.
WEBHOOK_COLUMNS = ("id", "program_id", "partner_id", "order_id", "event", "status", "attempts", "next_attempt_at",
                   "created_at")


def announcement_values(order: NewOrder, partner_id: str) -> tuple[Any, ...]:
    """The order's `order.created` delivery to `partner_id`, as values of WEBHOOK_COLUMNS."""
    return (f"whd_{order.id.split('_', 1)[-1]}", order.program_id, partner_id, order.id, "order.created", "pending", 0,
            order.created_at, order.created_at)


def pending_values(order: NewOrder) -> tuple[Any, ...]:
    """An external partner's order as it is written once its points are held (pending:
    claimable), as values of ORDER_COLUMNS."""
    fields = _fields(order, "pending")
    return tuple(fields[column] for column in ORDER_COLUMNS)


_INSERT_PENDING = "INSERT INTO orders ({}) VALUES ({}) ON CONFLICT DO NOTHING RETURNING id".format(
    ", ".join(ORDER_COLUMNS), placeholders(len(ORDER_COLUMNS)))
_INSERT_ANNOUNCEMENT = "INSERT INTO webhook_deliveries ({}) VALUES ({}) ON CONFLICT DO NOTHING".format(
    ", ".join(WEBHOOK_COLUMNS), placeholders(len(WEBHOOK_COLUMNS)))


async def record_pending(order: NewOrder, partner: dict[str, Any], feed: list[FeedEntry],
                         journalled: bool = False) -> bool:
    """An external partner's order whose points rw_partner_hold held: the order pending, its
    webhook queued (when the partner has one) and its feed lines, in one transaction; False,
    writing nothing, when it was written already (a retry, or the journal projector first:
    its rows are the same). `journalled`: the hold's journal entry carries the order, and the
    projector writes these rows if they are missing (kernel/sqlite_pool.py write_chain)."""
    insert = Statement(_INSERT_PENDING, pending_values(order))
    then: list[Any] = []
    if partner.get("webhook_url"):
        then.append(Statement(_INSERT_ANNOUNCEMENT, announcement_values(order, partner["id"])))
    return bool(await write_chain(Order._meta.db, insert, [*then, *publishing(order.program_id, feed)],
                                  journalled=journalled))


async def record_failed(order: NewOrder, reason: str, feed: list[FeedEntry]) -> bool:
    """A pool order that got no code and whose points went back (fulfillment/pooled_orders.py
    `_give_back`): the order failed and settled, with its feed lines, in one transaction;
    False when it was already written."""
    now = datetime.now(timezone.utc)
    insert = Order.insert(_row(order, "failed", failure_reason=reason, settled_at=now, updated_at=now)).on_conflict(
        action="DO NOTHING").returning(Order.id)
    return bool(await write_chain(Order._meta.db, insert, publishing(order.program_id, feed)))


async def bound_code(order_id: str) -> str | None:
    """The sealed secret of the code an earlier attempt took for the order, if any."""
    row = await PoolCode.select(PoolCode.secret).where(PoolCode.order_id == order_id).first().run()
    return None if row is None else str(row["secret"])


async def drop_order(order_id: str) -> None:
    """Takes back an order an earlier build left `new` whose hold was refused: the code back
    in the pool, no order."""
    async with _transaction():
        await PoolCode.update({PoolCode.order_id: None, PoolCode.used_at: None}).where(
            PoolCode.order_id == order_id).run()
        await Order.delete().where((Order.id == order_id) & (Order.status == "new")).run()


async def fulfil_pooled(order_id: str, program_id: str, credentials: str, feed: list[FeedEntry]) -> bool:
    """The pool's order fulfilled and settled (its capture is done) with its feed lines, in one
    transaction; False when another attempt already moved it on (its lines are written)."""
    now = datetime.now(timezone.utc)
    fulfilled = Order.update({Order.status: "fulfilled", Order.credentials: credentials, Order.fulfilled_at: now,
                              Order.settled_at: now, Order.updated_at: now}).where(
        (Order.id == order_id) & (Order.status == "new")).returning(Order.id)
    return bool(await write_chain(Order._meta.db, fulfilled, publishing(program_id, feed)))


async def announce_pending(order_id: str, program_id: str, partner: dict[str, Any], feed: list[FeedEntry]) -> bool:
    """An order an earlier build left `new` made `pending` (claimable), its webhook delivery
    queued and its feed lines written, in one transaction; False when another attempt already
    did."""
    now = datetime.now(timezone.utc)
    pending = Order.update({Order.status: "pending", Order.updated_at: now}).where(
        (Order.id == order_id) & (Order.status == "new")).returning(Order.id)
    then: list[Any] = []
    if partner.get("webhook_url"):
        then.append(WebhookDelivery.insert(WebhookDelivery(
            id=new_id("whd"), program_id=program_id, partner_id=partner["id"], order_id=order_id,
            event="order.created", next_attempt_at=now, created_at=now)))
    return bool(await write_chain(Order._meta.db, pending, [*then, *publishing(program_id, feed)]))
