"""An order as Redis carries it before SQL has it: in the metadata of the journal entry that
paid for it (a pool order's `redemption`, a partner order's `hold`) and in its request's
idempotency record. From either, the journal projector, the order sweep or a replay writes
the order as it was charged, not as today's catalog, route or tax total would make it."""

from __future__ import annotations

from datetime import datetime, timezone

import msgspec

from catalog.tables import Brand, CatalogItem
from catalog.titles import item_title
from fulfillment.order_writes import NewOrder
from fulfillment.tables import Order
from kernel.errors import DomainError
from kernel.sqlite_pool import Statement, placeholders, run_statement
from programs.feed import FeedEntry
from wallet.journal import JournalEntry


class Carried(msgspec.Struct, frozen=True):
    """The order as an entry's `order` metadata carries it."""

    item: str
    partner: str
    source: str
    face_value: int
    currency: str
    created_ms: int
    tax_flagged: bool = False


class Meta(msgspec.Struct, frozen=True):
    order: Carried | None = None
    code: str | None = None  # a pool order's code (rw_pool_redeem adds it)


decode_meta = msgspec.json.Decoder(Meta).decode


def carried_meta(order: NewOrder, reason: str, actor: dict[str, str] | None = None) -> str:
    """The paying entry's metadata: why (and who, when someone redeemed for the participant),
    and the order."""
    carried = Carried(item=order.item_id, partner=order.partner_id, source=order.source, face_value=order.face_value,
                      currency=order.currency, created_ms=int(order.created_at.timestamp() * 1000),
                      tax_flagged=order.tax_flagged)
    return msgspec.json.encode({"reason": reason, **(actor or {}), "order": carried}).decode()


def order_from(program_id: str, order_id: str, participant_id: str, o: Carried, points: int) -> NewOrder:
    return NewOrder(id=order_id, program_id=program_id, participant_id=participant_id, item_id=o.item,
                    partner_id=o.partner, source=o.source, face_value=o.face_value, currency=o.currency, points=points,
                    created_at=datetime.fromtimestamp(o.created_ms / 1000, tz=timezone.utc), tax_flagged=o.tax_flagged)


def entry_order(program_id: str, entry: JournalEntry, o: Carried) -> NewOrder:
    """The order a paying journal entry carries; its points are the entry's."""
    return order_from(program_id, entry.reference or "", entry.participant_id or "", o,
                      sum(leg[2] for leg in entry.legs))


def recorded_order(program_id: str, participant_id: str, order_id: str, points: int, meta: str) -> NewOrder:
    """The order as its paying call recorded it (that entry's metadata and points)."""
    carried = decode_meta(meta).order
    if carried is None:
        raise DomainError(f"order {order_id}: its record carries no order")
    return order_from(program_id, order_id, participant_id, carried, points)


def placed_line(order: NewOrder, title: str, point_name: str) -> list[FeedEntry]:
    """A redemption's points line in the participant's feed (a prize has none)."""
    if order.source != "redemption":
        return []
    return [FeedEntry(key=f"order:{order.id}:placed", participant_id=order.participant_id, kind="redemption",
                      points=-order.points, reference=order.id,
                      text=f"Redeemed {order.points:,} {point_name} for {title}")]


async def titles(item_ids: list[str]) -> dict[str, str]:
    """Each item's title as feed lines show it (brand and name): one plain SQL read (the
    journal projector's pool orders ask it each batch)."""
    if not item_ids:
        return {}
    statement = Statement(
        f"SELECT i.id, i.name, b.name AS brand FROM {CatalogItem._meta.tablename} i "
        f"LEFT JOIN {Brand._meta.tablename} b ON b.id = i.brand_id WHERE i.id IN ({placeholders(len(item_ids))})",
        tuple(item_ids))
    return {i["id"]: item_title(i["brand"] or "", i["name"]) for i in await run_statement(CatalogItem._meta.db,
                                                                                         statement)}


async def written(order_ids: list[str]) -> dict[str, tuple[str, str]]:
    """Of these orders, those SQL has a row of: their status and partner, by id. The journal
    projector's followers do not write those again: whoever wrote an order's row (its request,
    most often) wrote everything that follows from it in the same transaction."""
    if not order_ids:
        return {}
    # Plain SQL: the projector asks this for every batch with a pool or partner order, and
    # Piccolo's select cost it more than SQLite's answer.
    statement = Statement(f"SELECT id, status, partner_id FROM {Order._meta.tablename} "
                          f"WHERE id IN ({placeholders(len(order_ids))})", tuple(order_ids))
    return {r["id"]: (r["status"], r["partner_id"]) for r in await run_statement(Order._meta.db, statement)}
