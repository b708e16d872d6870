"""The catalog: admins manage brands and items; participants browse with ETags."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import MediaType, Request, Response, get, patch, post
from litestar.params import Parameter
from msgspec import Meta

from api.auth import Principal, admin_only, admin_or_participant, principal_of
from api.routes.participants import Cursor, Limit, program_of
from catalog import changes, feed_import, items, kept_pages
from fulfillment.code_pool import StockPage, UploadReport, stock
from fulfillment.sealing import Sealer
from programs.programs import get_program
from kernel.money import MAX_MOVE
from kernel.errors import Invalid

Points = Annotated[int | None, Parameter(ge=0, le=MAX_MOVE)]


class CodeUpload(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    csv: Annotated[str, Meta(min_length=1, max_length=5_000_000)]


class FeedUpload(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    format: feed_import.Format
    content: Annotated[str, Meta(min_length=1, max_length=10_000_000)]


async def _pricing(program_id: str) -> items.Pricing:
    return items.pricing_of(await get_program(program_id))


@post("/v1/catalog/brands", guards=[admin_only], operation_id="upsertBrand", summary="Create or update a brand",
      description="By name: logo, description, terms, redemption instructions, categories, and an optional "
                  "partner that fulfils the brand's orders.", tags=["catalog"], status_code=200)
async def upsert_brand(request: Request[Any, Any, Any], data: items.BrandSpec, redis: Any) -> items.BrandView:
    return await changes.upsert_brand(redis, program_of(request), data)


@get("/v1/catalog/brands", guards=[admin_or_participant], operation_id="listBrands", summary="List brands",
     description="The program's brands, newest first.", tags=["catalog"])
async def list_brands(request: Request[Any, Any, Any], limit: Limit = 50, cursor: Cursor = None) -> items.BrandPage:
    return await items.brand_page(principal_of(request).program_id or "", limit, cursor)


@post("/v1/catalog/items", guards=[admin_only], operation_id="createCatalogItem", summary="Add a catalog item",
      description="`points_price` follows the program's point value and catalog markup (rounded up). Fixed items "
                  "take `face_value`; variable ones `min_value` and `max_value` and a `points_per_unit`.",
      tags=["catalog"])
async def create_item(request: Request[Any, Any, Any], data: items.NewItem, redis: Any) -> Response[items.ItemView]:
    return Response(await changes.add_item(redis, await get_program(program_of(request)), data), status_code=201)


@patch("/v1/catalog/items/{item_id:str}", guards=[admin_only], operation_id="updateCatalogItem",
       summary="Change or disable a catalog item", description="Name, countries, status (`disabled` hides it from "
       "participants), routing partner.", tags=["catalog"])
async def update_item(request: Request[Any, Any, Any], item_id: str, data: items.ItemChanges,
                      redis: Any) -> items.ItemView:
    return await changes.change_item(redis, program_of(request), item_id, data)


@get("/v1/catalog/items", guards=[admin_or_participant], operation_id="listCatalogItems", summary="Browse the catalog",
     description="Search by text (`q`), brand, category, country and points range, newest first. Answers an "
                 "`ETag`; send it back as `If-None-Match` to get 304 while the catalog is unchanged. Participants "
                 "see active items; admins may add `include_disabled`.", tags=["catalog"])
async def browse(
    request: Request[Any, Any, Any], redis: Any, limit: Limit = 50, cursor: Cursor = None,
    q: Annotated[str | None, Parameter(max_length=100)] = None,
    brand: Annotated[str | None, Parameter(max_length=200)] = None,
    category: Annotated[str | None, Parameter(max_length=60)] = None,
    country: Annotated[str | None, Parameter(pattern=items.COUNTRY_CODE)] = None,
    min_points: Points = None, max_points: Points = None, include_disabled: bool = False,
) -> Response[Any]:
    page = await catalog_page(redis, principal_of(request), request.url.query or "",
                              request.headers.get("if-none-match"), Search(
        limit=limit, cursor=cursor, q=q, brand=brand, category=category, country=country, min_points=min_points,
        max_points=max_points, include_disabled=include_disabled))
    if page.body is None:
        return Response(content=b"", status_code=304, headers={"ETag": page.etag})
    return Response(page.body, media_type=MediaType.JSON, headers={"ETag": page.etag, "Cache-Control": NO_CACHE})


NO_CACHE = "private, no-cache"


class Search(msgspec.Struct, frozen=True):
    """A catalog page's query, as GET /v1/catalog/items takes it."""

    limit: int = 50
    cursor: str | None = None
    q: str | None = None
    brand: str | None = None
    category: str | None = None
    country: str | None = None
    min_points: int | None = None
    max_points: int | None = None
    include_disabled: bool = False


class CatalogPage(msgspec.Struct, frozen=True):
    etag: str
    body: bytes | None  # the page's JSON; None: the caller's copy (If-None-Match) is this page


async def catalog_page(redis: Any, principal: Principal, query: str, if_none_match: str | None,
                       search: Search) -> CatalogPage:
    """The page of GET /v1/catalog/items (also served by api/lean.py): `query` is the raw query
    string, which the ETag is made from."""
    program_id = principal.program_id or ""
    if search.include_disabled and principal.kind != "admin":
        raise Invalid("include_disabled is for admins", field="include_disabled")
    pricing = await _pricing(program_id)
    etag = await items.catalog_etag(redis, program_id, query, pricing)
    if if_none_match == etag:
        return CatalogPage(etag, None)
    return CatalogPage(etag, await kept_pages.page_body(program_id, etag, lambda: items.search(
        program_id, pricing, **msgspec.structs.asdict(search))))


@get("/v1/catalog/items/{item_id:str}", guards=[admin_or_participant], operation_id="getCatalogItem", summary="Read a catalog item",
     description="Participants see active items only.", tags=["catalog"])
async def read_item(request: Request[Any, Any, Any], item_id: str) -> items.ItemView:
    principal = principal_of(request)
    program_id = principal.program_id or ""
    return await items.get_item(program_id, item_id, await _pricing(program_id),
                                active_only=principal.kind != "admin")


@post("/v1/catalog/import", guards=[admin_only], operation_id="importCatalogFeed", summary="Import a supplier feed",
      description="A JSON array or a CSV (format in the README); items are upserted by `sku`, each bad row is "
                  "reported with its number.", tags=["catalog"], status_code=200)
async def import_feed(request: Request[Any, Any, Any], data: FeedUpload, redis: Any) -> feed_import.ImportReport:
    return await changes.import_feed(redis, await get_program(program_of(request)), data.content, data.format)


@post("/v1/catalog/items/{item_id:str}/codes", guards=[admin_only], operation_id="uploadPoolCodes",
      summary="Upload gift-card codes for the built-in pool",
      description="CSV with a header: code, and optionally pin, url, expires_at. Codes are stored encrypted; the "
                  "item's orders are then fulfilled at once from the pool, never the same code twice.",
      tags=["catalog"], status_code=200)
async def upload(request: Request[Any, Any, Any], item_id: str, data: CodeUpload, sealer: Sealer,
                 redis: Any) -> UploadReport:
    return await changes.upload_codes(redis, program_of(request), item_id, data.csv, sealer)


@get("/v1/catalog/stock", guards=[admin_only], operation_id="getPoolStock", summary="Code-pool stock per item",
     description="Available and used codes per item (newest item first), with `low_stock` under 10 left.",
     tags=["catalog"])
async def pool_stock(request: Request[Any, Any, Any], limit: Limit = 50, cursor: Cursor = None) -> StockPage:
    return await stock(program_of(request), limit, cursor, journal=request.app.state.redis)


ROUTES = [upsert_brand, list_brands, create_item, update_item, browse, read_item, import_feed, upload, pool_stock]
