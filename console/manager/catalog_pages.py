"""The catalog's uploads in the console: a supplier feed (CSV or JSON, items upserted by
sku) and gift-card codes for the built-in pool. Each answers a report on the Catalog page:
what was added, and every bad row with its number and the reason. A code is never shown back."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post

from api.problems import status_for
from catalog import changes
from catalog.items import brand_page, pricing_of, search
from console.manager.uploads import UPLOAD_LIMIT, uploaded_text
from console.manager.web import InProgram, checked_form, in_program, page, refused
from fulfillment import code_pool
from kernel.errors import DomainError
from programs import audit
from programs.console_users import MANAGES
from programs.programs import get_program

P = "/console/p/{program_id:str}"


async def _catalog(request: Request[Any, Any, Any], ctx: InProgram, **report: Any) -> Response[Any]:
    program = await get_program(ctx.program_id)
    found = await search(ctx.program_id, pricing_of(program), limit=200, include_disabled=True)
    brands = await brand_page(ctx.program_id, 200)
    pool = await code_pool.stock(ctx.program_id, 200, journal=request.app.state.redis)
    return page(ctx, "console/catalog.html", "Catalog", "catalog", request, items=found.items, brands=brands.items,
                stock=pool.items, **report)


@get(f"{P}/catalog", include_in_schema=False)
async def catalog_page(request: Request[Any, Any, Any], program_id: str) -> Response[Any]:
    ctx = await in_program(request, program_id)
    if not isinstance(ctx, InProgram):
        return ctx
    return await _catalog(request, ctx)


@post(f"{P}/catalog/feed", include_in_schema=False, status_code=200, request_max_body_size=UPLOAD_LIMIT)
async def upload_feed(request: Request[Any, Any, Any], program_id: str) -> Response[Any]:
    checked = await checked_form(request, program_id, MANAGES)
    if not isinstance(checked, tuple):
        return checked
    ctx, _ = checked
    try:
        name, text = await uploaded_text(request)
        fmt = "json" if name.lower().endswith(".json") or text.lstrip().startswith("[") else "csv"
        report = await changes.import_feed(request.app.state.redis, await get_program(program_id), text, fmt)
    except DomainError as exc:
        return refused(ctx, exc.detail, status_for(exc.code))
    await audit.record(program_id, f"user:{ctx.signed.person.id}", "catalog.feed_imported", name,
                       created=report.created, updated=report.updated, errors=len(report.errors))
    return await _catalog(request, ctx, feed_report=report, feed_name=name)


@post(f"{P}/catalog/{{item_id:str}}/codes", include_in_schema=False, status_code=200,
      request_max_body_size=UPLOAD_LIMIT)
async def upload_codes(request: Request[Any, Any, Any], program_id: str, item_id: str) -> Response[Any]:
    checked = await checked_form(request, program_id, MANAGES)
    if not isinstance(checked, tuple):
        return checked
    ctx, _ = checked
    try:
        _, text = await uploaded_text(request)
        report = await changes.upload_codes(request.app.state.redis, program_id, item_id, text,
                                            request.app.state.sealer)
    except DomainError as exc:
        return refused(ctx, exc.detail, status_for(exc.code))
    await audit.record(program_id, f"user:{ctx.signed.person.id}", "catalog.codes_uploaded", item_id,
                       added=report.added, duplicates=report.duplicates, errors=len(report.errors))
    return await _catalog(request, ctx, codes_report=report, codes_item=item_id)


ROUTES = [catalog_page, upload_feed, upload_codes]
