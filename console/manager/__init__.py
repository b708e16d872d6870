"""The program manager's console at /console: server-rendered pages behind a session cookie."""

from __future__ import annotations

from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

from console.manager import (actions, auth_pages, catalog_pages, import_pages, order_pages, participant_links,
                             partner_pages, program_pages, rule_pages)
from console.manager.web import STATIC

# The file names do not change between deployments yet: a day, revalidated after.
STATIC_CACHE = CacheControlHeader(max_age=86_400, public=True)


def static_router() -> ControllerRouterHandler:
    return create_static_files_router(path="/console/static", directories=[STATIC], name="console-static",
                                      include_in_schema=False, cache_control=STATIC_CACHE)


ROUTES: list[ControllerRouterHandler] = [
    *auth_pages.ROUTES, *program_pages.ROUTES, *actions.ROUTES, *participant_links.ROUTES, *rule_pages.ROUTES,
    *import_pages.ROUTES, *partner_pages.ROUTES, *order_pages.ROUTES, *catalog_pages.ROUTES,
    static_router(),
]

__all__ = ["ROUTES"]
