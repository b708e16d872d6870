"""Catalog pages as sent, kept per ETag (issue #13: under the load mix every page a phone
read without `If-None-Match` read the items and their brands from SQL, about 1.3 ms of
SQLite's time a page, and built and encoded its views again).

A page's ETag is made from the catalog's version, the query and the prices the page is
computed with (catalog/items.py `catalog_etag`), and a phone that sends it back is answered
304 with no SQL: the ETag already promises that the same ETag is the same page. Every
catalog change, price changes included, moves the version after its SQL commit, and the
version is read before the page's SQL, so a page kept under a version is never older than
that version. A change whose version never moved (its process died between the commit and
the move, or Redis lost the counter and counts the same versions again) is seen once the
page is `KEEP_SECONDS` old, as the routes a redemption keeps (fulfillment/item_routes.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import msgspec

from catalog.items import ItemPage
from kernel.bounded_map import BoundedMap

KEEP_SECONDS = 60.0
# A page of 50 items is about 30 kB; one of 200 items whose brands carry long terms can reach
# megabytes (each item shows its brand whole). Those are answered, not kept: 256 pages of at
# most 128 kB bound a process's share to 32 MB.
KEEP_AT_MOST_BYTES = 128 * 1024
_kept: BoundedMap[tuple[str, str], bytes] = BoundedMap(256, max_age=KEEP_SECONDS, by_use=True)


async def page_body(program_id: str, etag: str, search: Callable[[], Awaitable[ItemPage]]) -> bytes:
    """The page's JSON: the one kept under its ETag, else `search()`'s, encoded (and kept
    when it is small enough)."""
    key = (program_id, etag)
    body = _kept.get(key)
    if body is None:
        body = msgspec.json.encode(await search())
        if len(body) <= KEEP_AT_MOST_BYTES:
            _kept.put(key, body)
    return body
