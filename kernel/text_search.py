"""Substring search in SQL where what a person types is matched literally.

`%` and `_` are LIKE wildcards: typed into a search box they must match themselves, not
everything. Both SQLite and Postgres honour an explicit `ESCAPE` clause, which Piccolo's
`like`/`ilike` cannot add, hence a raw clause over named columns.
"""

from __future__ import annotations

from piccolo.columns.combination import WhereRaw


def literal_pattern(text: str) -> str:
    """A case-folded LIKE pattern matching `text` anywhere, its wildcards escaped."""
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def contains_any(columns: tuple[str, ...], text: str) -> WhereRaw:
    """Rows where any of `columns` (trusted column names, never user input) contains `text`,
    ignoring case."""
    pattern = literal_pattern(text.replace("\x00", ""))
    clause = " OR ".join(f"lower({column}) LIKE {{}} ESCAPE '\\'" for column in columns)
    return WhereRaw(f"({clause})", *([pattern] * len(columns)))
