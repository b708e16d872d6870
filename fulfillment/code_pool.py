"""The built-in code-pool partner: an admin uploads an item's codes; orders for that item
are fulfilled at once from the pool, and a code is never handed out twice: Redis hands each
free code to one order (fulfillment/pool.lua), and the code row takes the order's id, which
is unique."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any

import msgspec

from catalog.tables import CatalogItem
from fulfillment import keys, order_writes, pool_store, unwritten
from fulfillment.partners import pool_partner
from fulfillment.sealing import Sealer
from fulfillment.tables import PoolCode
from programs.spreadsheet import read_sheet
from kernel.errors import Conflict, NotFound
from kernel.redis_functions import FunctionStore
from kernel.sqlite_pool import run_statement
from kernel.ids import new_id
from kernel.pages import decode_cursor, next_cursor

LOW_STOCK = 10
CODE_COLUMNS = ("code", "pin", "url", "expires_at")


class UploadError(msgspec.Struct, frozen=True):
    row: int
    error: str


class UploadReport(msgspec.Struct, frozen=True):
    added: int
    duplicates: int
    errors: list[UploadError]
    available: int


class ItemStock(msgspec.Struct, frozen=True):
    item_id: str
    item_name: str
    available: int
    used: int
    low_stock: bool


async def upload_codes(store: FunctionStore, program_id: str, item_id: str, text: str,
                       sealer: Sealer) -> UploadReport:
    """CSV with a header: code, and optionally pin, url, expires_at. Routes the item to the pool
    and loads its free codes into the Redis pool (fulfillment/pool_store.py), this upload's
    and any an interrupted upload left out."""
    item = await CatalogItem.select(CatalogItem.id).where(
        (CatalogItem.id == item_id) & (CatalogItem.program_id == program_id)).first().run()
    if item is None:
        raise NotFound("no such catalog item")
    sheet = read_sheet(text, required=("code",), known=CODE_COLUMNS)
    now = datetime.now(timezone.utc)
    rows, errors, seen = [], [], set()
    for row in sheet.rows:
        code = row.get("code") or ""
        if row.problem is not None:
            errors.append(UploadError(row=row.number, error=row.problem))
            continue
        if not code or len(code) > 500:
            errors.append(UploadError(row=row.number, error="code is empty or longer than 500 characters"))
            continue
        digest = hashlib.sha256(code.encode()).hexdigest()
        if digest in seen:
            errors.append(UploadError(row=row.number, error="the same code twice in this file"))
            continue
        seen.add(digest)
        secret = {k: row.get(k) for k in CODE_COLUMNS}
        rows.append(PoolCode(id=new_id("code"), program_id=program_id, item_id=item_id, code_hash=digest,
                             item_code=f"{item_id}:{digest}",
                             secret=sealer.seal({k: v for k, v in secret.items() if v}), created_at=now))
    added = 0
    for start in range(0, len(rows), 500):
        inserted = await PoolCode.insert(*rows[start:start + 500]).on_conflict(action="DO NOTHING") \
            .returning(PoolCode.id).run()
        added += len(inserted)
    await pool_store.load(store, program_id, item_id)
    partner_id = await pool_partner(program_id)
    await CatalogItem.update({CatalogItem.partner_id: partner_id}).where(CatalogItem.id == item_id).run()
    # What the pool hands out now, as loaded: SQL's free codes may still count some an order
    # took whose row the journal projector has not written yet.
    available = int(await store.client.zcard(keys.pool_free(program_id, item_id)))
    return UploadReport(added=added, duplicates=len(rows) - added, errors=errors, available=available)


class StockPage(msgspec.Struct, frozen=True):
    items: list[ItemStock]
    next_cursor: str | None


async def stock(program_id: str, limit: int = 50, cursor: str | None = None, journal: Any = None) -> StockPage:
    """Codes per item with a pool, newest item first. `journal`: a Redis client, to count as
    used the codes of orders whose rows are not written yet (fulfillment/unwritten.py)."""
    after = decode_cursor(cursor)
    taken = await unwritten.unwritten_codes(journal, program_id) if journal is not None else set()
    where = PoolCode.program_id == program_id
    if after is not None:
        where &= PoolCode.item_id < after
    found = await PoolCode.select(PoolCode.item_id).where(where).distinct() \
        .order_by(PoolCode.item_id, ascending=False).limit(limit + 1).run()
    item_ids = [r["item_id"] for r in found]
    page = item_ids[:limit] or ["-"]
    codes = await PoolCode.select(PoolCode.id, PoolCode.item_id, PoolCode.order_id).where(
        (PoolCode.program_id == program_id) & PoolCode.item_id.is_in(page)).run()
    counts: dict[str, list[int]] = {i: [0, 0] for i in item_ids[:limit]}
    for c in codes:
        counts[c["item_id"]][0 if c["order_id"] is None and c["id"] not in taken else 1] += 1
    names = {i["id"]: i["name"] for i in await CatalogItem.select(CatalogItem.id, CatalogItem.name).where(
        CatalogItem.id.is_in(page)).run()}
    return StockPage(items=[ItemStock(item_id=i, item_name=names.get(i, ""), available=a, used=u,
                                      low_stock=a < LOW_STOCK) for i, (a, u) in counts.items()],
                     next_cursor=next_cursor(item_ids, limit))


async def take_code_id(store: FunctionStore, program_id: str, order_id: str, item_id: str) -> str | None:
    """The sealed secret of the code the pool hands to an order already made (the same code
    for the same order, always), now bound to it in SQL; None when the pool is empty."""
    bound = await PoolCode.select(PoolCode.secret).where(PoolCode.order_id == order_id).first().run()
    if bound is not None:  # an earlier attempt bound one (or an earlier build took it in SQL)
        return str(bound["secret"])
    code_id = await pool_store.take(store, program_id, item_id, order_id)
    if code_id is None:
        return None
    bound = await run_statement(PoolCode._meta.db, order_writes.bind_code(order_id, code_id, datetime.now(timezone.utc)))
    if not bound:
        raise Conflict(f"the pool's code {code_id} is bound to another order")
    return str(bound[0]["secret"])


async def take_code(store: FunctionStore, program_id: str, order_id: str, item_id: str,
                    sealer: Sealer) -> dict[str, Any] | None:
    """`take_code_id`, opened: the code's credentials."""
    secret = await take_code_id(store, program_id, order_id, item_id)
    return None if secret is None else sealer.open(secret)
