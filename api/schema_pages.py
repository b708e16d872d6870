"""The OpenAPI pages at /schema, served whole by this process.

Litestar's render plugins load Swagger UI from a public CDN by default, so the page was blank
on a machine without internet and trusted a third host with the page that holds an admin's
key. The `swagger-ui-py` package ships Swagger UI's built files (Apache-2.0); we serve the
three the page needs from it, so the docs work offline and the page's CSP names no other host.
"""

from __future__ import annotations

from pathlib import Path

import swagger_ui
from litestar.openapi.plugins import OpenAPIRenderPlugin, SwaggerRenderPlugin, YamlRenderPlugin
from litestar.static_files import create_static_files_router
from litestar.types import ControllerRouterHandler

ASSETS_PATH = "/schema/assets"
_FILES = Path(swagger_ui.__file__).parent / "static"
_FAVICON = f"<link rel='icon' type='image/png' href='{ASSETS_PATH}/favicon-32x32.png'>"


def render_plugins() -> list[OpenAPIRenderPlugin]:
    """Swagger UI at /schema (and /schema/swagger), every asset from this server; the
    document at /schema/openapi.json and /schema/openapi.yaml."""
    return [SwaggerRenderPlugin(
        js_url=f"{ASSETS_PATH}/swagger-ui-bundle.js",
        css_url=f"{ASSETS_PATH}/swagger-ui.css",
        standalone_preset_js_url=f"{ASSETS_PATH}/swagger-ui-standalone-preset.js",
        favicon=_FAVICON,
    ), YamlRenderPlugin()]


def assets_router() -> ControllerRouterHandler:
    return create_static_files_router(
        path=ASSETS_PATH, directories=[_FILES], name="schema-assets", include_in_schema=False,
        opt={"exclude_from_auth": True}, cache_control=None)
