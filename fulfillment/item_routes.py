"""What a redemption reads of its item before its Redis call (the item, the partner it is
routed to, its brand's labels), kept a few seconds per catalog version (issue #13: four SQL
reads of every redemption; under the load mix at 250 requests/s a partner item's two took
5.8 ms at the median and 59 ms at p99, before its order read them again).

Every catalog change moves the catalog's version in Redis (catalog/changes.py), and so do a
partner's status (fulfillment/partner_admin.py), a new partner and a partner's webhook
(fulfillment/partners.py: the order's webhook delivery is queued from the kept partner); a
participant's redemption routes by the route kept here (`kept`) and its own Redis call
refuses it, before any write, when the version moved since (fulfillment/redemption_guard.py),
so a change is seen by the next redemption on every process. What moves no version is seen within
`KEEP_SECONDS`: a minute, since every change that matters moves it (kept 5 seconds, half of
the load mix's redemptions of 30 items read their route again). A redemption that read the
version just before a change places its order by the route it had: a partner disabled
meanwhile has it moved by the sweep or the next claim (fulfillment/rerouting.py); a webhook
set meanwhile may be told of it by the journal projector, which queues the order's delivery
when the partner has a webhook as it projects the order's entry (the same delivery id as the
request's: once at most); either way the partner pulls it.
"""

from __future__ import annotations

import time
from typing import Any

import msgspec

from catalog.items import item_row
from catalog.tables import Brand
from fulfillment.partners import route
from kernel.bounded_map import BoundedMap

KEEP_SECONDS = 60.0


class ItemRoute(msgspec.Struct, frozen=True):
    item: dict[str, Any]  # the catalog item's row (read only)
    partner: dict[str, Any]  # the partner its orders go to
    brand_name: str  # the brand's labels, for the order's feed lines and answer
    instructions: str


# (program, item) -> (good until, catalog version, the route)
_kept: BoundedMap[tuple[str, str], tuple[float, int, ItemRoute]] = BoundedMap(10_000)


def kept(program_id: str, item_id: str) -> tuple[int, ItemRoute] | None:
    """The item's route this process keeps, with the catalog version it was read at; None when
    none is kept or it is older than KEEP_SECONDS."""
    found = _kept.get((program_id, item_id))
    if found is None or found[0] <= time.monotonic():
        return None
    return found[1], found[2]


async def item_route(program_id: str, item_id: str, version: int) -> ItemRoute:
    """The item (NotFound when the program has none), where its orders go (Conflict when no
    partner is active) and its brand's labels, as of catalog `version`."""
    kept = _kept.get((program_id, item_id))
    if kept is not None and kept[1] == version and kept[0] > time.monotonic():
        return kept[2]
    item = await item_row(program_id, item_id)
    partner = await route(program_id, item)
    brand = await Brand.select(Brand.name, Brand.redemption_instructions).where(
        Brand.id == item["brand_id"]).first().run()
    found = ItemRoute(item=item, partner=partner, brand_name=brand["name"] if brand else "",
                      instructions=brand["redemption_instructions"] if brand else "")
    _kept.put((program_id, item_id), (time.monotonic() + KEEP_SECONDS, version, found))
    return found
