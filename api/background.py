"""Background work each API process (and `reward-wallet worker`) runs beside requests:
webhook deliveries that are due, and the sweeps that finish what a crash interrupted (orders
stuck half-made, spins whose SQL record and prize order were never written)."""

from __future__ import annotations

import asyncio
import logging

import httpx

from catalog.items import pricing_of
from fulfillment import orders, webhooks
from fulfillment.rerouting import reroute_orphans
from fulfillment.sealing import Sealer
from games import spins
from programs.programs import get_program, list_program_ids
from wallet.store import WalletStore

log = logging.getLogger("rw.background")


async def run(stop: asyncio.Event, wallets: WalletStore, sealer: Sealer, webhook_every: float = 0.5,
              sweep_every: float = 30.0, webhook_allow_private: bool = False) -> None:
    loop = asyncio.get_running_loop()
    swept = loop.time()
    async with httpx.AsyncClient(follow_redirects=False) as client:
        while not stop.is_set():
            try:
                await webhooks.deliver_due(sealer, client, allow_private=webhook_allow_private)
                if loop.time() - swept >= sweep_every:
                    swept = loop.time()
                    for program_id in await list_program_ids():
                        await orders.sweep(wallets, program_id)
                        program = await get_program(program_id)
                        await reroute_orphans(wallets, sealer, program)
                        await spins.complete_unrecorded(wallets, sealer, program, pricing_of(program))
            except Exception:  # a store hiccup: log it and try again on the next round
                log.exception("background round failed")
            try:
                await asyncio.wait_for(stop.wait(), timeout=webhook_every)
            except asyncio.TimeoutError:
                pass
