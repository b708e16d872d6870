"""Orders of a disabled partner find another one.

Disabling a partner moves its unclaimed (`pending`) orders at once; an order it holds under
a lease stays leased (the partner can no longer act on it: its key answers 401) until the
lease ends, and is then moved like the others. Each order goes where a new redemption of its
item would: the item's own partner, its brand's, else the program's default (the built-in
pool, for items routed to the pool, fulfils it at once). An order with nowhere to go stays
where it is until a partner is added or enabled. Runs when a partner is disabled or enabled,
before every claim, and in the background sweep, so a lease that ends is re-routed before
anyone could claim it. Before a claim it reads the program's disabled partners from SQL only
when the catalog's version moved since this process last read them.
"""

from __future__ import annotations

from datetime import datetime, timezone

from piccolo.columns.combination import WhereRaw
from piccolo.custom_types import Combinable
from piccolo.query.methods.select import Select

from catalog.items import item_row
from fulfillment import queue
from fulfillment.partners import route
from fulfillment.redemptions import dispatch
from fulfillment.sealing import Sealer
from fulfillment.tables import Order, Partner
from kernel.bounded_map import BoundedMap
from programs.programs import ProgramView
from kernel.errors import Conflict, NotFound
from wallet.store import WalletStore


# program -> (the catalog version read before, its disabled partners then), for a minute at
# most: a status change whose version never moved (its process died between the commit and
# the move) is seen by the next claim after that.
_disabled: BoundedMap[str, tuple[int, tuple[str, ...]]] = BoundedMap(10_000, max_age=60.0)


async def reroute_orphans(store: WalletStore, sealer: Sealer, program: ProgramView,
                          now: datetime | None = None, version: int | None = None) -> int:
    """Moves every order waiting on a disabled partner; answers how many moved. `version`: the
    catalog's version, read just before, when the program's disabled partners may be the ones
    this process read at that version (a partner's claim: a SQL read on every claim, where a
    program nearly always has none disabled)."""
    disabled = await _disabled_partners(program.id, version)
    if not disabled:
        return 0
    now = now or datetime.now(timezone.utc)
    rows = await orphaned(program.id, list(disabled), now).run()
    moved = 0
    for row in rows:
        try:
            partner = await route(program.id, await item_row(program.id, row["item_id"]))
        except (Conflict, NotFound):
            continue  # nowhere to go yet: it waits for a partner to be added or enabled
        # Conditional on what was read: a concurrent re-route or claim moves it once.
        changed = await Order.update({Order.partner_id: partner["id"], Order.status: "pending", Order.lease_id: None,
                                      Order.lease_expires_at: None, Order.updated_at: now}).where(
            (Order.id == row["id"]) & (Order.partner_id == row["partner_id"]) & _waiting(now)).returning(Order.id).run()
        if not changed:
            continue
        moved += 1
        await dispatch(store, sealer, program, {**row, "partner_id": partner["id"], "status": "pending"}, partner)
    return moved


async def _disabled_partners(program_id: str, version: int | None) -> tuple[str, ...]:
    """A partner's status moves the catalog's version after its SQL commit
    (fulfillment/partner_admin.py), so the partners read after reading a version are at least
    as new as it: kept under it, they answer until it moves, on every process alike."""
    kept = _disabled.get(program_id) if version is not None else None
    if kept is not None and kept[0] == version:
        return kept[1]
    disabled = tuple(r["id"] for r in await Partner.select(Partner.id).where(
        (Partner.program_id == program_id) & (Partner.status == "disabled")).run())
    if version is not None:
        _disabled.put(program_id, (version, disabled))
    return disabled


def _waiting(now: datetime) -> Combinable:
    """An order no partner is working on: unclaimed, or claimed under a lease that has ended."""
    return (Order.status == "pending") | ((Order.status == "claimed") & (Order.lease_expires_at < now))


def orphaned(program_id: str, disabled: list[str], now: datetime) -> Select:
    """The orders waiting on the disabled partners, oldest first. Read through the partial
    index orders_open, which holds the pending and claimed orders only (this runs before every
    claim while a partner is disabled, and at every sweep): not every order those partners
    ever had. Its statuses are written into the SQL (`queue.OPEN`) so that SQLite, and
    Postgres's generic plan, can use that index."""
    return Order.select().where((Order.program_id == program_id) & Order.partner_id.is_in(disabled)
                                & WhereRaw(queue.OPEN) & _waiting(now)
                                ).order_by(Order.created_at)
