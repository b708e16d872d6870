"""Catalog pages as sent, kept per ETag (issue #13: under the load mix every page a phone
read without `If-None-Match` read the items and their brands from SQL, about 1.3 ms of
SQLite's time a page, and built and encoded its views again).

A page's ETag is made from the catalog's version and the query alone, and a phone that
sends it back is answered 304 with no SQL: the ETag already promises that the same ETag is
the same page. Every catalog change, price changes included, moves the version after its
SQL commit, and the version is read before the page's SQL, so a page kept under a version
is never older than that version. The program's pricing is part of the key too: a process
whose view of the program has not caught up with a price change yet (programs/programs.py
keeps it a few seconds) keeps what it built apart, not under the new version for good.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec

from catalog.items import ItemPage, Pricing
from kernel.bounded_map import BoundedMap

# A page is at most 200 items (about 100 kB encoded): 256 of them bound a process's share.
_kept: BoundedMap[tuple[str, str, Pricing], bytes] = BoundedMap(256, by_use=True)


async def page_body(program_id: str, etag: str, pricing: Pricing,
                    search: Callable[[], Awaitable[ItemPage]]) -> bytes:
    """The page's JSON: the one kept under its ETag, else `search()`'s, encoded and kept."""
    key = (program_id, etag, pricing)
    body = _kept.get(key)
    if body is None:
        body = msgspec.json.encode(await search())
        _kept.put(key, body)
    return body
