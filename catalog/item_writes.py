"""Row writers of the catalog: brands and items. Only catalog/changes.py (and the feed import
it runs) calls them, because a catalog write must move the catalog version, which these do
not; the import contract in pyproject.toml keeps every other package out."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import msgspec

from catalog.items import (
    BrandSpec,
    BrandView,
    ItemChanges,
    NewItem,
    brand_view,
    check_price,
    pricing_of,
)
from catalog.tables import Brand, CatalogItem
from fulfillment.tables import Partner
from programs.programs import ProgramView
from kernel.money import MAX_MOVE
from kernel.errors import Invalid, NotFound
from kernel.ids import new_id


def _search_text(brand: BrandView, name: str) -> str:
    return "|" + "|".join([brand.name.lower(), name.lower(), *(c.lower() for c in brand.categories)]) + "|"


async def check_partner(program_id: str, partner_id: str | None) -> None:
    """A routing partner must be one of this program's: another program's id would be stored
    and its orders routed to the default instead, or worse, to a partner not ours."""
    if not partner_id:
        return
    if not await Partner.exists().where((Partner.id == partner_id) & (Partner.program_id == program_id)).run():
        raise Invalid(f"no fulfillment partner {partner_id!r} in this program", field="partner_id")


async def upsert_brand(program_id: str, spec: BrandSpec, only: frozenset[str] | None = None) -> BrandView:
    """Creates the brand, or sets every field of one that exists; `only`: the fields of an
    existing brand to set (a supplier feed carries its categories and logo, not its terms,
    instructions or routing partner, which stay as they are)."""
    await check_partner(program_id, spec.partner_id)
    now = datetime.now(timezone.utc)
    key = f"{program_id}:{spec.name.lower()}"
    values = {"logo_url": spec.logo_url, "description": spec.description, "terms": spec.terms,
              "redemption_instructions": spec.redemption_instructions,
              "categories": msgspec.json.encode(spec.categories).decode(), "partner_id": spec.partner_id}
    existing = await Brand.select(Brand.id).where(Brand.program_name == key).first().run()
    if existing is None:
        await Brand.insert(Brand(id=new_id("brand"), program_id=program_id, name=spec.name, program_name=key,
                                 created_at=now, updated_at=now, **values)).on_conflict(action="DO NOTHING").run()
    else:
        await Brand.update({getattr(Brand, k): v for k, v in values.items() if only is None or k in only}
                           | {Brand.updated_at: now}).where(Brand.id == existing["id"]).run()
    row = await Brand.select().where(Brand.program_name == key).first().run()
    brand = brand_view(row)
    # Items carry their brand's categories in their search text.
    for item in await CatalogItem.select(CatalogItem.id, CatalogItem.name).where(CatalogItem.brand_id == brand.id).run():
        await CatalogItem.update({CatalogItem.search_text: _search_text(brand, item["name"])}).where(
            CatalogItem.id == item["id"]).run()
    return brand


async def _brand_for(program_id: str, reference: str) -> BrandView:
    row = await Brand.select().where((Brand.program_id == program_id) & (Brand.id == reference)).first().run()
    if row is None:
        row = await Brand.select().where(Brand.program_name == f"{program_id}:{reference.lower()}").first().run()
    if row is None:
        return await upsert_brand(program_id, BrandSpec(name=reference))
    return brand_view(row)


def check_values(spec: NewItem, currency: str) -> tuple[int | None, int | None, int | None]:
    if spec.value_type == "fixed":
        if spec.face_value is None or spec.face_value.amount <= 0:
            raise Invalid("a fixed item needs a positive face_value", field="face_value")
        values = [spec.face_value]
    else:
        if spec.min_value is None or spec.max_value is None or spec.min_value.amount <= 0:
            raise Invalid("a variable item needs positive min_value and max_value", field="min_value")
        if spec.min_value.amount > spec.max_value.amount:
            raise Invalid("min_value must not exceed max_value", field="max_value")
        values = [spec.min_value, spec.max_value]
    for value in values:
        if value.currency != currency:
            raise Invalid(f"the item's currency must be the program's ({currency})", field="face_value")
        if value.amount > MAX_MOVE:
            raise Invalid(f"a face value is at most {MAX_MOVE:,} minor units",
                          field="face_value" if spec.value_type == "fixed" else "max_value")
    if spec.value_type == "fixed":
        return values[0].amount, None, None
    return None, values[0].amount, values[1].amount


async def create_item(program: ProgramView, spec: NewItem) -> str:
    face, low, high = check_values(spec, program.point_value.currency)
    await check_partner(program.id, spec.partner_id)
    check_price(face if face is not None else high or 0, pricing_of(program),
                "face_value" if face is not None else "max_value")
    brand = await _brand_for(program.id, spec.brand)
    now = datetime.now(timezone.utc)
    item_id = new_id("item")
    sku = spec.sku or item_id
    inserted = await CatalogItem.insert(CatalogItem(
        id=item_id, program_id=program.id, brand_id=brand.id, name=spec.name, program_sku=f"{program.id}:{sku}",
        sku=sku, currency=program.point_value.currency, countries=msgspec.json.encode(spec.countries).decode(),
        value_type=spec.value_type, face_value=face, min_value=low, max_value=high, status=spec.status,
        partner_id=spec.partner_id, search_text=_search_text(brand, spec.name), created_at=now, updated_at=now,
    )).on_conflict(action="DO NOTHING").returning(CatalogItem.id).run()
    if not inserted:
        raise Invalid(f"sku {sku!r} is already in the catalog", field="sku")
    return item_id


async def update_item(program_id: str, item_id: str, changes: ItemChanges) -> None:
    row = await CatalogItem.select(CatalogItem.id, CatalogItem.brand_id).where(
        (CatalogItem.id == item_id) & (CatalogItem.program_id == program_id)).first().run()
    if row is None:
        raise NotFound("no such catalog item")
    await check_partner(program_id, changes.partner_id)
    values: dict[Any, Any] = {CatalogItem.updated_at: datetime.now(timezone.utc)}
    if changes.name is not None:
        brand = brand_view(await Brand.select().where(Brand.id == row["brand_id"]).first().run())
        values[CatalogItem.name] = changes.name
        values[CatalogItem.search_text] = _search_text(brand, changes.name)
    if changes.countries is not None:
        values[CatalogItem.countries] = msgspec.json.encode(changes.countries).decode()
    if changes.status is not None:
        values[CatalogItem.status] = changes.status
    if changes.partner_id is not None:
        values[CatalogItem.partner_id] = changes.partner_id or None
    await CatalogItem.update(values).where(CatalogItem.id == item_id).run()


async def set_supplier_availability(program_id: str, item_id: str, available: bool) -> str:
    """A supplier's word on stock: `unavailable` hides an active item until the supplier says it
    is back; an item an admin disabled stays disabled whatever the supplier says. Answers the
    item's status now."""
    row = await CatalogItem.select(CatalogItem.status).where(
        (CatalogItem.id == item_id) & (CatalogItem.program_id == program_id)).first().run()
    if row is None:
        raise NotFound("no such catalog item")
    moves = {("active", False): "unavailable", ("unavailable", True): "active"}
    status = moves.get((row["status"], available), row["status"])
    if status != row["status"]:
        await CatalogItem.update({CatalogItem.status: status, CatalogItem.updated_at: datetime.now(timezone.utc)}).where(
            (CatalogItem.id == item_id) & (CatalogItem.status == row["status"])).run()
    return status
