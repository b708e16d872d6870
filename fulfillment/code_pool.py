"""The built-in code-pool partner: an admin uploads an item's codes; orders for that item
are fulfilled at once from the pool, and a code is never handed out twice (the code row
takes the order's id, which is unique)."""

from __future__ import annotations

import hashlib
import logging
import sqlite3
from datetime import datetime, timezone
from typing import Any

import msgspec
from piccolo.engine.postgres import PostgresEngine

from catalog.tables import CatalogItem
from fulfillment.partners import pool_partner
from fulfillment.sealing import Sealer
from fulfillment.tables import PoolCode
from programs.spreadsheet import read_sheet
from kernel.errors import NotFound
from kernel.ids import new_id
from kernel.pages import decode_cursor, next_cursor

log = logging.getLogger("rw.code_pool")

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


async def upload_codes(program_id: str, item_id: str, text: str, sealer: Sealer) -> UploadReport:
    """CSV with a header: code, and optionally pin, url, expires_at. Routes the item to the pool."""
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
    partner_id = await pool_partner(program_id)
    await CatalogItem.update({CatalogItem.partner_id: partner_id}).where(CatalogItem.id == item_id).run()
    return UploadReport(added=added, duplicates=len(rows) - added, errors=errors, available=await stock_of(item_id))


async def stock_of(item_id: str) -> int:
    return await PoolCode.count().where((PoolCode.item_id == item_id) & PoolCode.order_id.is_null()).run()


class StockPage(msgspec.Struct, frozen=True):
    items: list[ItemStock]
    next_cursor: str | None


async def stock(program_id: str, limit: int = 50, cursor: str | None = None) -> StockPage:
    """Codes per item with a pool, newest item first."""
    after = decode_cursor(cursor)
    where = PoolCode.program_id == program_id
    if after is not None:
        where &= PoolCode.item_id < after
    found = await PoolCode.select(PoolCode.item_id).where(where).distinct() \
        .order_by(PoolCode.item_id, ascending=False).limit(limit + 1).run()
    item_ids = [r["item_id"] for r in found]
    page = item_ids[:limit] or ["-"]
    codes = await PoolCode.select(PoolCode.item_id, PoolCode.order_id).where(
        (PoolCode.program_id == program_id) & PoolCode.item_id.is_in(page)).run()
    counts: dict[str, list[int]] = {i: [0, 0] for i in item_ids[:limit]}
    for c in codes:
        counts[c["item_id"]][0 if c["order_id"] is None else 1] += 1
    names = {i["id"]: i["name"] for i in await CatalogItem.select(CatalogItem.id, CatalogItem.name).where(
        CatalogItem.id.is_in(page)).run()}
    return StockPage(items=[ItemStock(item_id=i, item_name=names.get(i, ""), available=a, used=u,
                                      low_stock=a < LOW_STOCK) for i, (a, u) in counts.items()],
                     next_cursor=next_cursor(item_ids, limit))


_TAKE = """
    UPDATE pool_codes SET order_id = {{}}, used_at = {{}}
    WHERE id = (SELECT id FROM pool_codes{indexed} WHERE item_id = {{}} AND order_id IS NULL
                ORDER BY created_at, id LIMIT 1{lock})
      AND order_id IS NULL
    RETURNING secret
"""


class _Hint:
    named = True  # False once this process found the index missing


def take_statement(postgres: bool) -> str:
    """Binds the item's next unused code (oldest first) to an order: args order id, moment,
    item id. On SQLite the unused codes' index is named: its planner would otherwise pick
    the unique index on order_id (`IS NULL` looks like one row to it) and sort every unused
    code of the item, at each redemption. On Postgres a code another transaction is taking
    is skipped, not waited for."""
    if postgres:
        return _TAKE.format(indexed="", lock=" FOR UPDATE SKIP LOCKED")
    return _TAKE.format(indexed=" INDEXED BY pool_codes_free" if _Hint.named else "", lock="")


def index_missing(error: Exception) -> bool:
    """Whether `error` is SQLite's missing `pool_codes_free` (a database its migration has not
    reached, or a table rebuilt without it). The index is then no longer named in this
    process: taking a code is slow, with a warning, instead of refused."""
    if "no such index: pool_codes_free" not in str(error):
        return False
    if _Hint.named:
        log.warning("pool_codes_free is missing: taking a code sorts the pool; run `reward-wallet migrate`")
    _Hint.named = False
    return True


async def take_code(order_id: str, item_id: str, sealer: Sealer) -> dict[str, Any] | None:
    """The next unused code for the item, now bound to the order; None when the pool is empty.
    Taking again for the same order answers the code it already has."""
    existing = await PoolCode.select(PoolCode.secret).where(PoolCode.order_id == order_id).first().run()
    if existing is not None:
        return sealer.open(existing["secret"])
    postgres = isinstance(PoolCode._meta.db, PostgresEngine)
    for _ in range(5):  # on Postgres a skipped row may leave the subquery empty while others remain
        try:
            taken = await PoolCode.raw(take_statement(postgres), order_id, datetime.now(timezone.utc), item_id).run()
        except sqlite3.OperationalError as error:
            if not index_missing(error):
                raise
            continue
        if taken:
            return sealer.open(taken[0]["secret"])
        if await stock_of(item_id) == 0:
            return None
    return None
