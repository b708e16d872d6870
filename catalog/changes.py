"""Catalog writes: every change to a program's catalog, each moving the catalog version itself,
after its SQL and even when it failed part way (what it committed before stays).

The catalog's ETag comes from its version (`items.catalog_etag`, with the query and prices),
and each process keeps the pages it sent under their ETag, so a write that left
the version where it was would keep answering phones 304 for a catalog that changed. Routes,
the CLI and any other caller write through these use cases, never through `item_writes` or
`feed_import` directly, so none of them can forget the version.
"""

from __future__ import annotations

from typing import Any

import msgspec

from catalog import feed_import, item_writes, items
from fulfillment.code_pool import UploadReport
from fulfillment.code_pool import upload_codes as _upload_codes
from kernel.redis_functions import FunctionStore
from fulfillment.partners import route
from kernel.errors import NotFound
from fulfillment.sealing import Sealer
from programs.programs import ProgramChanges, ProgramView, get_program, update_program
from wallet.store import WalletStore


async def upsert_brand(client: Any, program_id: str, spec: items.BrandSpec) -> items.BrandView:
    """Creates or updates a brand by name."""
    async with items.moving_version(client, program_id):
        return await item_writes.upsert_brand(program_id, spec)


async def add_item(client: Any, program: ProgramView, spec: items.NewItem) -> items.ItemView:
    """Adds an item, priced by the program's point value and markup."""
    async with items.moving_version(client, program.id):
        item_id = await item_writes.create_item(program, spec)
    return await items.get_item(program.id, item_id, items.pricing_of(program))


async def change_item(client: Any, program_id: str, item_id: str, changes: items.ItemChanges) -> items.ItemView:
    """Changes an item (name, countries, status, routing partner); answers it as it is now."""
    async with items.moving_version(client, program_id):
        await item_writes.update_item(program_id, item_id, changes)
    return await items.get_item(program_id, item_id, items.pricing_of(await get_program(program_id)))


class SupplierAvailability(msgspec.Struct, frozen=True):
    item_id: str
    available: bool
    status: str  # active, unavailable (the supplier's word), or disabled (an admin's, which stands)


async def set_supplier_availability(client: Any, program_id: str, partner_id: str, item_id: str,
                                    available: bool) -> SupplierAvailability:
    """A fulfillment partner marks an item routed to it unavailable, or back. Phones see it at
    once: the catalog version moves. Items routed elsewhere are not the partner's to change."""
    item = await items.item_row(program_id, item_id)
    if (await route(program_id, item))["id"] != partner_id:
        raise NotFound("no such catalog item routed to you")
    async with items.moving_version(client, program_id):
        status = await item_writes.set_supplier_availability(program_id, item_id, available)
    return SupplierAvailability(item_id=item_id, available=status == "active", status=status)


async def import_feed(client: Any, program: ProgramView, content: str,
                      fmt: feed_import.Format) -> feed_import.ImportReport:
    """Upserts a supplier feed's items by sku (each bad row reported with its number). The
    version moves even when the import stops part way: the rows before it are written, and
    redemptions keep items' routes per version (fulfillment/item_routes.py)."""
    async with items.moving_version(client, program.id):
        return await feed_import.import_feed(program, content, fmt)


async def upload_codes(client: Any, program_id: str, item_id: str, text: str, sealer: Sealer) -> UploadReport:
    """Adds gift-card codes to the built-in pool (the item is then routed to it; the version
    moves even when the upload stops part way, as `import_feed`'s does)."""
    async with items.moving_version(client, program_id):
        return await _upload_codes(FunctionStore(client, coalesce=False), program_id, item_id, text, sealer)


async def change_program(wallets: WalletStore, program_id: str, changes: ProgramChanges) -> ProgramView:
    """A program's settings change; a new catalog markup re-prices every item, so the catalog
    version moves with it (phones must not get a 304 for the old prices)."""
    program = await update_program(wallets, program_id, changes)
    if changes.catalog_markup_bps is not None:
        await items.bump_version(wallets.client, program.id)
    return program
