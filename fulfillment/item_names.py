"""What an order shows of its item: its name, SKU, brand and the brand's redemption
instructions, for the participant's feed lines and order views and the partner's.

Read from SQL (two reads: the items, then their brands), or for a partner's claim and fulfil
kept per catalog version (issue #13: under the load mix a claim waited behind the catalog and
history pages' reads for these two, four pool reads in all, and was the first operation past
its p99 target). Every change to an item or a brand moves the catalog's version after its SQL
commit (catalog/changes.py); the version is read before the names, so names kept under a
version are never older than it.
"""

from __future__ import annotations

from catalog.tables import Brand, CatalogItem
from kernel.bounded_map import BoundedMap

# (item name, sku, brand name, redemption instructions)
Names = tuple[str, str, str, str]
NO_NAMES: Names = ("", "", "", "")

# (program, item) -> (the catalog version they were read at, the names). A change whose
# version never moved (its process died between the commit and the move, or Redis lost the
# counter and counts the same versions again) is seen once the names are KEEP_SECONDS old,
# as the routes a redemption keeps (fulfillment/item_routes.py). A brand's instructions may
# be 5,000 characters: 2,000 items bound a process's share to about 10 MB.
KEEP_SECONDS = 60.0
_kept: BoundedMap[tuple[str, str], tuple[int, Names]] = BoundedMap(2_000, max_age=KEEP_SECONDS)


async def read(item_ids: set[str]) -> dict[str, Names]:
    """item id -> its names, as SQL has them now; an item not found is absent."""
    if not item_ids:
        return {}
    items = await CatalogItem.select(CatalogItem.id, CatalogItem.name, CatalogItem.sku, CatalogItem.brand_id) \
        .where(CatalogItem.id.is_in(sorted(item_ids))).run()
    brands = {b["id"]: b for b in await Brand.select(Brand.id, Brand.name, Brand.redemption_instructions).where(
        Brand.id.is_in(sorted({i["brand_id"] for i in items}) or ["-"])).run()}
    return {i["id"]: (i["name"], i["sku"], brands[i["brand_id"]]["name"],
                      brands[i["brand_id"]]["redemption_instructions"]) for i in items}


async def at_version(program_id: str, item_ids: set[str], version: int) -> dict[str, Names]:
    """The program's items' names as of catalog `version`: those kept at it, the rest read."""
    found: dict[str, Names] = {}
    missing: set[str] = set()
    for item_id in item_ids:
        kept = _kept.get((program_id, item_id))
        if kept is not None and kept[0] == version:
            found[item_id] = kept[1]
        else:
            missing.add(item_id)
    for item_id, names in (await read(missing)).items():
        _kept.put((program_id, item_id), (version, names))
        found[item_id] = names
    return found
