"""Applies every package's Piccolo migrations, quietly, and tunes SQLite."""

from __future__ import annotations

import contextlib
import io

from piccolo.apps.migrations.commands.forwards import run_forwards
from piccolo.engine import engine_finder
from piccolo.engine.sqlite import SQLiteEngine


async def migrate() -> None:
    engine = engine_finder()
    if isinstance(engine, SQLiteEngine):
        # WAL lets readers work while the journal projector writes; it persists in the file.
        await engine.run_ddl("PRAGMA journal_mode=WAL")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        result = await run_forwards("all")
    if not result.success:
        raise RuntimeError(f"migrations failed: {result.message}\n{out.getvalue()}")
