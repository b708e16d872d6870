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

from console.assets import StaticAssets
from kernel.errors import NotFound
from programs.programs import ProgramView, get_program

STATIC = Path(__file__).resolve().parent.parent / "static" / "app"
# The shell names its files under their content version (console/assets.py): a year in any
# cache, and a deploy changes every URL. The shell itself and the service worker are
# revalidated every time, so a new version reaches phones on their next load.
ASSETS = StaticAssets(STATIC, "/app/static")

_templates = Environment(loader=PackageLoader("console", "templates"), autoescape=select_autoescape(["html"]))
_templates.globals["static"] = ASSETS.url


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
    # Every module preloaded at once, so the screens do not wait on a waterfall of imports.
    modules = [n for n in ASSETS.names() if n.endswith(".js") and n not in ("main.js", "sw.js")]
    page = _templates.get_template("app/shell.html").render(program=program, modules=modules)
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
        "icons": [{"src": ASSETS.url("icon.svg"), "sizes": "any", "type": "image/svg+xml", "purpose": "any"},
                  {"src": ASSETS.url("icon-192.png"), "sizes": "192x192", "type": "image/png"},
                  {"src": ASSETS.url("icon-512.png"), "sizes": "512x512", "type": "image/png"}],
    }
    return Response(body, media_type="application/manifest+json")


@get("/app/sw.js", include_in_schema=False, opt={"exclude_from_auth": True})
async def service_worker() -> Response[bytes]:
    """At /app/ so its scope covers every program's app. Its bytes carry the version (its
    cache name), so the browser's update check installs a new worker on every deploy."""
    return Response(ASSETS.body("sw.js") or b"", media_type="text/javascript",
                    headers={"Cache-Control": "no-cache"})


@get("/app/static/{version:str}/{name:str}", include_in_schema=False, opt={"exclude_from_auth": True})
async def versioned_file(version: str, name: str) -> Response[bytes]:
    return ASSETS.response(name, version)


@get("/app/static/{name:str}", include_in_schema=False, opt={"exclude_from_auth": True})
async def unversioned_file(name: str) -> Response[bytes]:
    """Links from before versions (and tests) still work, revalidated each time."""
    return ASSETS.response(name, None)


ROUTES = [app_shell, sign_in_page, manifest, service_worker, versioned_file, unversioned_file]
