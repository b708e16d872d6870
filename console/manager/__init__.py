"""The program manager's console at /console: server-rendered pages behind a session cookie."""

from __future__ import annotations

from litestar import Response, get
from litestar.types import ControllerRouterHandler

from console.manager import (actions, auth_pages, campaign_pages, catalog_pages, funding_pages, import_pages,
                             order_pages, participant_links, partner_pages, pending_pages, program_pages, redeem_pages,
                             rule_pages, sweepstakes_pages)
from console.manager.web import ASSETS


# The pages name their files under the content version (console/assets.py): immutable for a
# year; an unversioned or older URL still answers, revalidated each time.
@get("/console/static/{version:str}/{name:str}", include_in_schema=False)
async def versioned_file(version: str, name: str) -> Response[bytes]:
    return ASSETS.response(name, version)


@get("/console/static/{name:str}", include_in_schema=False)
async def unversioned_file(name: str) -> Response[bytes]:
    return ASSETS.response(name, None)


ROUTES: list[ControllerRouterHandler] = [
    *auth_pages.ROUTES, *program_pages.ROUTES, *actions.ROUTES, *participant_links.ROUTES, *redeem_pages.ROUTES,
    *rule_pages.ROUTES,
    *import_pages.ROUTES, *partner_pages.ROUTES, *order_pages.ROUTES, *catalog_pages.ROUTES, *campaign_pages.ROUTES,
    *sweepstakes_pages.ROUTES, *pending_pages.ROUTES, *funding_pages.ROUTES, versioned_file, unversioned_file]

__all__ = ["ROUTES"]
