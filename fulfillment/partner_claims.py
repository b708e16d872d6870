"""A partner claims a batch of its orders.

Issue #13: a claim read SQL four times besides its claiming UPDATE (the program's disabled
partners, the items' names and their brands, the recipients), each waiting in the read pool
behind the catalog and history pages; under the load mix it was the first operation past its
p99 target. One Redis read of the catalog's version now stands for the first three while
nothing moved it: the disabled partners (fulfillment/rerouting.py) and the names
(fulfillment/item_names.py) are kept per version. The recipients are read every time: a
partner delivers to the email the participant has now.
"""

from __future__ import annotations

from catalog.items import catalog_version
from fulfillment import item_names, queue
from fulfillment.orders import PartnerOrder, partner_views
from fulfillment.rerouting import reroute_orphans
from fulfillment.sealing import Sealer
from programs.programs import ProgramView
from wallet.store import WalletStore


async def claim(store: WalletStore, sealer: Sealer, program: ProgramView, partner_id: str, limit: int,
                lease_seconds: int) -> list[PartnerOrder]:
    """Up to `limit` of the partner's orders, oldest first, each under a new lease."""
    version = await catalog_version(store.client, program.id)
    # Orders whose disabled partner's lease has ended join their new partner's queue first.
    await reroute_orphans(store, sealer, program, version=version)
    rows = await queue.claim(program.id, partner_id, limit, lease_seconds)
    names = await item_names.at_version(program.id, {r["item_id"] for r in rows}, version)
    return await partner_views(rows, names)
