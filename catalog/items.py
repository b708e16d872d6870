"""The catalog: brands and the gift cards participants redeem points for."""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import AsyncIterator
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from kernel.money import MAX_MOVE
from catalog.pricing import max_face_value_within, min_face_value_from, points_for
from catalog.tables import Brand, CatalogItem
from programs.programs import Money, ProgramView
from catalog import keys as catalog_keys
from kernel.errors import Invalid, NotFound
from kernel.ids import IdOrEmpty
from kernel.pages import decode_cursor, newest_first, next_cursor
from kernel.redis_functions import command

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


def brand_view(row: dict[str, Any]) -> BrandView:
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
    await client.incr(catalog_keys.catalog_version(program_id))


@contextlib.asynccontextmanager
async def moving_version(client: Any, program_id: str) -> AsyncIterator[None]:
    """Around a catalog write: the version moves after it, even when it failed part way (what
    it committed before the failure stays, and pages and routes are kept per version)."""
    try:
        yield
    finally:
        await bump_version(client, program_id)


async def catalog_version(client: Any, program_id: str) -> int:
    """The catalog's version now: what is read from SQL after it is at least that new."""
    return int(await command(client, "GET", catalog_keys.catalog_version(program_id)) or 0)


async def catalog_etag(client: Any, program_id: str, query: str, pricing: Pricing) -> str:
    """From the catalog's version (a price change bumps it too), the query and the prices the
    page is computed with, so a 304 needs no SQL. The prices too: a process whose view of the
    program has not caught up with a price change yet (a few seconds) answers its page under
    an ETag of its own, which the next page with the new prices does not match."""
    version = await catalog_version(client, program_id)
    digest = hashlib.sha256(f"{version}|{query}|{pricing.point_value}|{pricing.markup_bps}".encode()).hexdigest()
    return f'W/"{digest[:32]}"'


class BrandPage(msgspec.Struct, frozen=True):
    items: list[BrandView]
    next_cursor: str | None


async def brand_page(program_id: str, limit: int = 50, cursor: str | None = None) -> BrandPage:
    """The program's brands, newest first."""
    where = Brand.program_id == program_id
    rows, following = await newest_first(Brand, where, limit, cursor)
    return BrandPage(items=[brand_view(r) for r in rows], next_cursor=following)


def check_price(face_value: int, pricing: Pricing, field: str = "face_value") -> int:
    """The points price of `face_value`, refused when one redemption could not move it."""
    price = points_for(face_value, pricing.point_value, pricing.markup_bps)
    if price > MAX_MOVE:
        raise Invalid(f"the points price would be {price:,}; one operation moves at most {MAX_MOVE:,} points",
                      field=field)
    return price


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
    brand = brand_view(await Brand.select().where(Brand.id == row["brand_id"]).first().run())
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
    brands = {b["id"]: brand_view(b) for b in await Brand.select().where(Brand.id.is_in(brand_ids or ["-"])).run()}
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
