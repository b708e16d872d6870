"""Piccolo's engine and app registry, chosen from the environment.

`DATABASE_URL` (postgresql://...) selects Postgres; otherwise SQLite lives in
`RW_DATA_DIR` (default ./var). Building an engine object does not connect.
"""

from __future__ import annotations

import os
from pathlib import Path

from piccolo.conf.apps import AppRegistry
from piccolo.engine.base import Engine
from kernel.postgres_pool import LoopPooledPostgresEngine
from kernel.sqlite_pool import PooledSQLiteEngine


def engine_from_env() -> Engine:
    url = os.environ.get("DATABASE_URL", "").strip()
    if url:
        return LoopPooledPostgresEngine(config={"dsn": url}, log_queries=False)
    data_dir = Path(os.environ.get("RW_DATA_DIR", "./var")).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    # A generous busy timeout: writers queue instead of failing with "database is locked".
    # The write chains run in a writer process of their own (kernel/sqlite_writer.py) unless
    # RW_SQLITE_WRITER=thread. Short reads run on the event loop's own thread within a budget
    # (kernel/sqlite_inline.py) unless RW_SQLITE_INLINE_READS=0.
    return PooledSQLiteEngine(path=str(data_dir / "reward-wallet.sqlite3"), timeout=30,
                              writer=os.environ.get("RW_SQLITE_WRITER", "process").strip() or "process",
                              inline_reads=os.environ.get("RW_SQLITE_INLINE_READS", "1").strip() != "0")


DB = engine_from_env()

APP_REGISTRY = AppRegistry(
    apps=[
        "programs.piccolo_app",
        "wallet.piccolo_app",
        "catalog.piccolo_app",
        "fulfillment.piccolo_app",
        "games.piccolo_app",
    ]
)
