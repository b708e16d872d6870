"""The plan SQLite makes for a query the app runs: what a test of a sweep's reads checks, so a
read that would grow with every row a program ever wrote fails here and not in production."""

from __future__ import annotations

from typing import Any

import pytest
from piccolo.engine.postgres import PostgresEngine
from piccolo.table import Table


def sqlite_only(table: type[Table]) -> None:
    if isinstance(table._meta.db, PostgresEngine):
        pytest.skip("reads SQLite's query plan")


async def plan(table: type[Table], sql: str, *args: Any) -> list[str]:
    """SQLite's plan of `sql` (`{}` marks its arguments, as Table.raw takes them)."""
    return [row["detail"] for row in await table.raw("EXPLAIN QUERY PLAN " + sql, *args).run()]


async def plan_of(query: Any) -> list[str]:
    """SQLite's plan of a Piccolo query, its arguments bound as Piccolo binds them."""
    query = getattr(query, "query", query)  # .first() and the like wrap the select
    sql, args = query.querystrings[0].compile_string(engine_type="sqlite")
    return await plan(query.table, sql.replace("?", "{}"), *args)
