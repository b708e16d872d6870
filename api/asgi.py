"""Entry point for uvicorn workers: `uvicorn api.asgi:app_factory --factory`."""

from __future__ import annotations

from litestar import Litestar

from api.app import create_app
from api.embedded import secure_data_dir
from api.logs import configure_logging
from api.settings import load_settings, resolve_secrets


def app_factory() -> Litestar:
    settings, _ = resolve_secrets(load_settings())
    secure_data_dir(settings.data_path)  # the SQLite file and its -wal/-shm are born 0600
    configure_logging(settings.log_level)
    return create_app(settings, owns_process=True)
