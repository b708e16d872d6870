"""The catalog: brands and the gift cards participants redeem points for."""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from wallet.bounds import MAX_MOVE
from catalog.pricing import max_face_value_within, min_face_value_from, points_for
from catalog.tables import Brand, CatalogItem
from fulfillment.tables import Partner
from programs.programs import Money, ProgramView
from wallet import keys
from wallet.errors import Invalid, NotFound
from wallet.ids import IdOrEmpty, new_id
from wallet.pages import decode_cursor, newest_first, next_cursor

COUNTRY_CODE = r"^[A-Z]{2}$"  # ISO 3166-1 alpha-2
Country = Annotated[str, Meta(pattern=COUNTRY_CODE)]
Url = Annotated[str, Meta(max_length=1000, pattern=r"^https?://\S+$")]
BIGINT_MAX = 2**63 - 1
Category = Annotated[str, Meta(min_length=1, max_length=60, pattern=r"^[^|]+$")]


class BrandSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    logo_url: Url | None = None
    description: Annotated[str, Meta(max_length=5000)] = ""
    terms: Annotated[str, Meta(max_length=20000)] = ""
    redemption_instructions: Annotated[str, Meta(max_length=5000)] = ""
    categories: Annotated[list[Category], Meta(max_length=20)] = []
    partner_id: IdOrEmpty | None = None


class BrandView(msgspec.Struct, frozen=True):
    id: str
    name: str
    logo_url: str | None
    description: str
    terms: str
    redemption_instructions: str
    categories: list[str]
    partner_id: str | None


class NewItem(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    brand: Annotated[str, Meta(min_length=1, max_length=200, description="a brand id, or a brand name "
                                                                          "(created if new)")]
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    face_value: Money | None = None
    value_type: Literal["fixed", "variable"] = "fixed"
    min_value: Money | None = None
    max_value: Money | None = None
    countries: Annotated[list[Country], Meta(max_length=250)] = []
    sku: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    partner_id: IdOrEmpty | None = None
    status: Literal["active", "disabled"] = "active"


class ItemChanges(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)] | None = None
    countries: Annotated[list[Country], Meta(max_length=250)] | None = None
    status: Literal["active", "disabled"] | None = None
    partner_id: IdOrEmpty | None = None


class ItemView(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    brand: BrandView
    name: str
    sku: str
    value_type: str
    currency: str
    countries: list[str]
    status: str
    points_price: int
    face_value: Money | None = None
    min_value: Money | None = None
    max_value: Money | None = None
    points_per_unit: int | None = None  # variable items: points per whole currency unit
    partner_id: str | None = None


class ItemPage(msgspec.Struct, frozen=True):
    items: list[ItemView]
    next_cursor: str | None


class Pricing(msgspec.Struct, frozen=True):
    point_value: int
    markup_bps: int


def pricing_of(program: ProgramView) -> Pricing:
    return Pricing(point_value=program.point_value.amount, markup_bps=program.catalog_markup_bps)


def _brand_view(row: dict[str, Any]) -> BrandView:
    return BrandView(id=row["id"], name=row["name"], logo_url=row["logo_url"], description=row["description"],
                     terms=row["terms"], redemption_instructions=row["redemption_instructions"],
                     categories=msgspec.json.decode(row["categories"]), partner_id=row["partner_id"])


def item_view(row: dict[str, Any], brand: BrandView, pricing: Pricing) -> ItemView:
    currency = row["currency"]
    money = lambda v: None if v is None else Money(amount=v, currency=currency)  # noqa: E731
    if row["value_type"] == "fixed":
        price = points_for(row["face_value"], pricing.point_value, pricing.markup_bps)
        per_unit = None
    else:
        price = points_for(row["min_value"], pricing.point_value, pricing.markup_bps)
        per_unit = points_for(100, pricing.point_value, pricing.markup_bps)
    return ItemView(id=row["id"], brand=brand, name=row["name"], sku=row["sku"], value_type=row["value_type"],
                    currency=currency, countries=msgspec.json.decode(row["countries"]), status=row["status"],
                    points_price=price, face_value=money(row["face_value"]), min_value=money(row["min_value"]),
                    max_value=money(row["max_value"]), points_per_unit=per_unit, partner_id=row["partner_id"])


async def bump_version(client: Any, program_id: str) -> None:
    """Every catalog change moves the version, which the catalog's ETag is made from."""
    await client.incr(keys.catalog_version(program_id))


async def catalog_etag(client: Any, program_id: str, query: str) -> str:
    """From the catalog's version alone (a price change bumps it too), so a 304 needs no SQL."""
    version = int(await client.get(keys.catalog_version(program_id)) or 0)
    digest = hashlib.sha256(f"{version}|{query}".encode()).hexdigest()
    return f'W/"{digest[:32]}"'


def _search_text(brand: BrandView, name: str) -> str:
    return "|" + "|".join([brand.name.lower(), name.lower(), *(c.lower() for c in brand.categories)]) + "|"


async def check_partner(program_id: str, partner_id: str | None) -> None:
    """A routing partner must be one of this program's: another program's id would be stored
    and its orders routed to the default instead, or worse, to a partner not ours."""
    if not partner_id:
        return
    if not await Partner.exists().where((Partner.id == partner_id) & (Partner.program_id == program_id)).run():
        raise Invalid(f"no fulfillment partner {partner_id!r} in this program", field="partner_id")


async def upsert_brand(program_id: str, spec: BrandSpec) -> BrandView:
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
        await Brand.update({getattr(Brand, k): v for k, v in values.items()} | {Brand.updated_at: now}).where(
            Brand.id == existing["id"]).run()
    row = await Brand.select().where(Brand.program_name == key).first().run()
    brand = _brand_view(row)
    # Items carry their brand's categories in their search text.
    for item in await CatalogItem.select(CatalogItem.id, CatalogItem.name).where(CatalogItem.brand_id == brand.id).run():
        await CatalogItem.update({CatalogItem.search_text: _search_text(brand, item["name"])}).where(
            CatalogItem.id == item["id"]).run()
    return brand


class BrandPage(msgspec.Struct, frozen=True):
    items: list[BrandView]
    next_cursor: str | None


async def brand_page(program_id: str, limit: int = 50, cursor: str | None = None) -> BrandPage:
    """The program's brands, newest first."""
    where = Brand.program_id == program_id
    rows, following = await newest_first(Brand, where, limit, cursor)
    return BrandPage(items=[_brand_view(r) for r in rows], next_cursor=following)


async def _brand_for(program_id: str, reference: str) -> BrandView:
    row = await Brand.select().where((Brand.program_id == program_id) & (Brand.id == reference)).first().run()
    if row is None:
        row = await Brand.select().where(Brand.program_name == f"{program_id}:{reference.lower()}").first().run()
    if row is None:
        return await upsert_brand(program_id, BrandSpec(name=reference))
    return _brand_view(row)


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


def check_price(face_value: int, pricing: Pricing, field: str = "face_value") -> int:
    """The points price of `face_value`, refused when one redemption could not move it."""
    price = points_for(face_value, pricing.point_value, pricing.markup_bps)
    if price > MAX_MOVE:
        raise Invalid(f"the points price would be {price:,}; one operation moves at most {MAX_MOVE:,} points",
                      field=field)
    return price


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
        brand = _brand_view(await Brand.select().where(Brand.id == row["brand_id"]).first().run())
        values[CatalogItem.name] = changes.name
        values[CatalogItem.search_text] = _search_text(brand, changes.name)
    if changes.countries is not None:
        values[CatalogItem.countries] = msgspec.json.encode(changes.countries).decode()
    if changes.status is not None:
        values[CatalogItem.status] = changes.status
    if changes.partner_id is not None:
        values[CatalogItem.partner_id] = changes.partner_id or None
    await CatalogItem.update(values).where(CatalogItem.id == item_id).run()


async def item_row(program_id: str, item_id: str) -> dict[str, Any]:
    row = await CatalogItem.select().where(
        (CatalogItem.id == item_id) & (CatalogItem.program_id == program_id)).first().run()
    if row is None:
        raise NotFound("no such catalog item")
    return row


async def get_item(program_id: str, item_id: str, pricing: Pricing, active_only: bool = False) -> ItemView:
    row = await item_row(program_id, item_id)
    if active_only and row["status"] != "active":
        raise NotFound("no such catalog item")
    brand = _brand_view(await Brand.select().where(Brand.id == row["brand_id"]).first().run())
    return item_view(row, brand, pricing)


async def search(
    program_id: str, pricing: Pricing, *, limit: int = 50, cursor: str | None = None, q: str | None = None,
    brand: str | None = None, category: str | None = None, country: str | None = None,
    min_points: int | None = None, max_points: int | None = None, include_disabled: bool = False,
) -> ItemPage:
    after = decode_cursor(cursor)
    where = CatalogItem.program_id == program_id
    if not include_disabled:
        where &= CatalogItem.status == "active"
    if after is not None:
        where &= CatalogItem.id < after
    if q:
        where &= CatalogItem.search_text.like(f"%{_escape(q.lower())}%")
    if category:
        where &= CatalogItem.search_text.like(f"%|{_escape(category.lower())}|%")
    if brand:
        brand_row = await Brand.select(Brand.id).where(
            (Brand.program_id == program_id) & ((Brand.id == brand) | (Brand.program_name == f"{program_id}:{brand.lower()}"))
        ).first().run()
        where &= CatalogItem.brand_id == (brand_row["id"] if brand_row else "-")
    if country:
        where &= (CatalogItem.countries == "[]") | CatalogItem.countries.like(f'%"{_escape(country)}"%')
    if max_points is not None:
        ceiling = min(max_face_value_within(max_points, pricing.point_value, pricing.markup_bps), BIGINT_MAX)
        where &= (CatalogItem.face_value <= ceiling) | (CatalogItem.min_value <= ceiling)
    if min_points is not None:
        floor = min(min_face_value_from(min_points, pricing.point_value, pricing.markup_bps), BIGINT_MAX)
        where &= (CatalogItem.face_value >= floor) | (CatalogItem.max_value >= floor)
    rows = await CatalogItem.select().where(where).order_by(CatalogItem.id, ascending=False).limit(limit + 1).run()
    brand_ids = sorted({r["brand_id"] for r in rows})
    brands = {b["id"]: _brand_view(b) for b in await Brand.select().where(Brand.id.is_in(brand_ids or ["-"])).run()}
    return ItemPage(items=[item_view(r, brands[r["brand_id"]], pricing) for r in rows[:limit]],
                    next_cursor=next_cursor([r["id"] for r in rows], limit))


def _escape(text: str) -> str:
    # LIKE wildcards typed by a user match nothing special; NUL cannot be stored text.
    return text.replace("%", "").replace("_", "").replace("\x00", "")


def redemption_points(row: dict[str, Any], pricing: Pricing, face_value: Money | None) -> tuple[int, int]:
    """(face value, points) of redeeming the item, checking a variable item's chosen value."""
    if row["status"] != "active":
        raise NotFound("no such catalog item")
    if row["value_type"] == "fixed":
        if face_value is not None and face_value.amount != row["face_value"]:
            raise Invalid("this item has a fixed face value", field="face_value")
        value = row["face_value"]
    else:
        if face_value is None:
            raise Invalid("choose a face_value for this item", field="face_value")
        if face_value.currency != row["currency"]:
            raise Invalid(f"face_value must be in {row['currency']}", field="face_value")
        if not row["min_value"] <= face_value.amount <= row["max_value"]:
            raise Invalid(f"face_value must be between {row['min_value']} and {row['max_value']}",
                          field="face_value")
        value = face_value.amount
    return value, check_price(value, pricing)
