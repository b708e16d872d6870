"""The SQL writes of placing an order: one transaction each (issue #13, the hot path).

A redemption commits two write transactions on the request path, one on each side of the
Redis hold, and no more:

1. `open_order`: the order row as `new` (no reader shows a `new` order) and, for the
   built-in pool, its code taken and sealed on the row. Written *before* the hold: a Redis
   hold has no index anyone could scan, so a crash right after the hold must find a row
   the sweep sees. An empty pool rolls it back: nothing written, nothing held.
2. `fulfil_pooled` (pool: after the capture) or `announce_pending` (external partner):
   the order made visible with its feed lines (and its webhook). Written *after* the hold,
   so no participant, partner or admin ever sees an order whose points are not held, nor
   a code whose points were not taken.

Folding 2 into 1 would show an order (or hand over a code) before its points are held;
folding 1 into 2 would leave a crash after the hold with points held for an order nobody
knows of. `drop_order` undoes 1 when the hold is refused (the failure path's only write).
Each write is conditional on `status = 'new'`, so the request, a retry and the sweep can
race to finish one order and it happens once. Each is one `write_chain` (kernel/sqlite_pool.py):
on SQLite the whole transaction in one hop on the writer's thread, so the write lock is not
held across turns of a busy event loop.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime, timezone
from typing import Any

import msgspec
from piccolo.engine.postgres import PostgresEngine

from fulfillment.code_pool import index_missing, take_statement
from fulfillment.orders import OutOfStock
from fulfillment.tables import Order, PoolCode, WebhookDelivery
from programs.feed import FeedEntry, publishing
from kernel.ids import new_id
from kernel.sqlite_pool import write_chain, writing


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


async def _take_code(order_id: str, item_id: str, now: datetime) -> str | None:
    """The next unused code's sealed secret, now bound to the order; None when none is left."""
    postgres = isinstance(PoolCode._meta.db, PostgresEngine)
    for _ in range(5):  # on Postgres a skipped row may leave the subquery empty while others remain
        try:
            taken = await PoolCode.raw(take_statement(postgres), order_id, now, item_id).run()
        except sqlite3.OperationalError as error:
            if not index_missing(error):
                raise
            continue
        if taken:
            return str(taken[0]["secret"])
        if not postgres or not await PoolCode.exists().where(
                (PoolCode.item_id == item_id) & PoolCode.order_id.is_null()).run():
            return None
    return None


def _take(order: NewOrder) -> Any:
    return PoolCode.raw(take_statement(False), order.id, order.created_at, order.item_id)


async def open_order(order: NewOrder, pooled: bool) -> str | None:
    """Writes the order as `new`, with a code taken when `pooled`; answers the code's sealed
    secret (None for an external partner's order). Raises OutOfStock, writing nothing,
    when the pool is empty (nothing was held either: the points never left)."""
    insert = Order.insert(Order(
        id=order.id, program_id=order.program_id, participant_id=order.participant_id, item_id=order.item_id,
        partner_id=order.partner_id, source=order.source, face_value=order.face_value, currency=order.currency,
        points=order.points, status="new", created_at=order.created_at, updated_at=order.created_at,
        tax_flagged=order.tax_flagged))
    engine = Order._meta.db
    if not pooled:
        if not await write_chain(engine, insert):  # an insert answers its row (RETURNING)
            raise RuntimeError("the order row was not written")
        return None
    if isinstance(engine, PostgresEngine):
        async with _transaction():  # a code another transaction is taking is skipped: tried again
            secret = await _take_code(order.id, order.item_id, order.created_at)
            if secret is None:
                raise OutOfStock("this gift card is out of stock")
            await insert.run()
        return secret
    try:
        taken = await write_chain(engine, _take(order), [insert])
    except sqlite3.OperationalError as error:
        if not index_missing(error):
            raise
        taken = await write_chain(engine, _take(order), [insert])
    if not taken:
        raise OutOfStock("this gift card is out of stock")
    return str(taken[0]["secret"])


async def bound_code(order_id: str) -> str | None:
    """The sealed secret of the code an earlier attempt took for the order, if any."""
    row = await PoolCode.select(PoolCode.secret).where(PoolCode.order_id == order_id).first().run()
    return None if row is None else str(row["secret"])


async def take_code_for(order_id: str, item_id: str) -> str | None:
    """A code for an order written before codes were taken with it (one transaction)."""
    async with _transaction():
        return await _take_code(order_id, item_id, datetime.now(timezone.utc))


async def drop_order(order_id: str) -> None:
    """Undoes `open_order` after the hold was refused: the code back in the pool, no order."""
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
    """An external partner's order made `pending` (claimable), its webhook delivery queued and
    its feed lines written, in one transaction; False when another attempt already did."""
    now = datetime.now(timezone.utc)
    pending = Order.update({Order.status: "pending", Order.updated_at: now}).where(
        (Order.id == order_id) & (Order.status == "new")).returning(Order.id)
    then: list[Any] = []
    if partner.get("webhook_url"):
        then.append(WebhookDelivery.insert(WebhookDelivery(
            id=new_id("whd"), program_id=program_id, partner_id=partner["id"], order_id=order_id,
            event="order.created", next_attempt_at=now, created_at=now)))
    return bool(await write_chain(Order._meta.db, pending, [*then, *publishing(program_id, feed)]))
