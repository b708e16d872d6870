"""What an owner changes about a partner, each whole: a new key with the old ones refused on
every API machine from the next request, and a partner disabled with its keys refused and its
waiting orders moved where new redemptions of their items go. The API's routes and the
console both call these."""

from __future__ import annotations

from catalog.items import moving_version
from fulfillment.partners import PartnerStatus, PartnerView, partner_key_ids, rotate_key, set_status
from fulfillment.rerouting import reroute_orphans
from fulfillment.sealing import Sealer
from programs import gate
from programs.programs import ProgramView
from wallet.store import WalletStore


async def new_partner_key(store: WalletStore, program_id: str, partner_id: str) -> str:
    """Answers the new key (shown once); every earlier key of the partner is refused from now."""
    api_key, revoked = await rotate_key(program_id, partner_id)
    for key_id in revoked:
        await gate.mark_revoked(store.client, program_id, key_id)
    return api_key


async def change_partner_status(store: WalletStore, sealer: Sealer, program: ProgramView, partner_id: str,
                                status: PartnerStatus) -> PartnerView:
    # Where items' orders go moved (fulfillment/item_routes.py keeps routes per catalog
    # version, and a claim the disabled partners), even when the change failed part way.
    async with moving_version(store.client, program.id):
        view = await set_status(program.id, partner_id, status)
    await gate.mark_disabled(store.client, program.id, await partner_key_ids(partner_id), status == "disabled")
    await reroute_orphans(store, sealer, program)
    return view
