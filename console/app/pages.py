"""The phone app's pages: one shell per program (the screens are drawn by its scripts from
the participant API), its web app manifest, its service worker and its static files.

Nothing here authenticates: the shell is public (it holds no one's data) and its script
signs in through /v1/auth/. A GET of the sign-in URL serves the same shell and spends
nothing: the token is in the fragment, which only the page's script reads.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from litestar import Response, get
from litestar.datastructures import CacheControlHeader
from litestar.static_files import create_static_files_router

from kernel.errors import NotFound
from programs.programs import ProgramView, get_program

STATIC = Path(__file__).resolve().parent.parent / "static" / "app"
# Static files are cached a day; the service worker (fetched by the browser on its own
# schedule) is revalidated every time so a new shell reaches phones.
STATIC_MAX_AGE = 86_400

_templates = Environment(loader=PackageLoader("console", "templates"), autoescape=select_autoescape(["html"]))


async def program_or_none(program_id: str) -> ProgramView | None:
    if len(program_id) > 40:
        return None
    try:
        return await get_program(program_id)
    except NotFound:
        return None


async def shell(program_id: str) -> Response[str]:
    program = await program_or_none(program_id)
    if program is None:
        page = _templates.get_template("app/missing.html").render()
        return Response(page, status_code=404, media_type="text/html")
    page = _templates.get_template("app/shell.html").render(program=program)
    return Response(page, media_type="text/html")


@get("/app/{program_id:str}", include_in_schema=False, opt={"exclude_from_auth": True})
async def app_shell(program_id: str) -> Response[str]:
    return await shell(program_id)


@get("/app/{program_id:str}/sign-in", include_in_schema=False, opt={"exclude_from_auth": True})
async def sign_in_page(program_id: str) -> Response[str]:
    """The page a sign-in link opens; its script spends the token in the fragment."""
    return await shell(program_id)


@get("/app/{program_id:str}/manifest.webmanifest", include_in_schema=False, opt={"exclude_from_auth": True})
async def manifest(program_id: str) -> Response[dict[str, Any]]:
    program = await program_or_none(program_id)
    if program is None:
        return Response({"detail": "no such program"}, status_code=404)
    body = {
        "name": program.name,
        "short_name": program.name[:12],
        "start_url": f"/app/{program.id}",
        "scope": "/app/",
        "display": "standalone",
        "background_color": "#ffffff",
        "theme_color": "#0b4f8a",
        "icons": [{"src": "/app/static/icon.svg", "sizes": "any", "type": "image/svg+xml", "purpose": "any"},
                  {"src": "/app/static/icon-192.png", "sizes": "192x192", "type": "image/png"},
                  {"src": "/app/static/icon-512.png", "sizes": "512x512", "type": "image/png"}],
    }
    return Response(body, media_type="application/manifest+json")


@get("/app/sw.js", include_in_schema=False, opt={"exclude_from_auth": True})
async def service_worker() -> Response[bytes]:
    """At /app/ so its scope covers every program's app."""
    return Response((STATIC / "sw.js").read_bytes(), media_type="text/javascript",
                    headers={"Cache-Control": "no-cache"})


static_files = create_static_files_router(
    path="/app/static", directories=[STATIC], include_in_schema=False, opt={"exclude_from_auth": True},
    cache_control=CacheControlHeader(max_age=STATIC_MAX_AGE, public=True), name="app-static")

ROUTES = [app_shell, sign_in_page, manifest, service_worker, static_files]
