"""The OpenAPI document, generated from the app (no stores are touched)."""

from __future__ import annotations

import yaml

from api.app import create_app
from api.settings import Settings


def openapi_yaml() -> str:
    settings = Settings(redis_url="redis://127.0.0.1:1/0", jwt_secret="x" * 32, encryption_key="k" * 44)
    app = create_app(settings)
    schema = app.openapi_schema.to_schema()
    return yaml.safe_dump(schema, sort_keys=True, allow_unicode=True, width=120)
