"""Background work each API process (and `reward-wallet worker`) runs beside requests:
webhook deliveries that are due, and the order sweep that finishes what a crash interrupted."""

from __future__ import annotations

import asyncio
import logging

import httpx

from fulfillment import orders, webhooks
from fulfillment.sealing import Sealer
from programs.programs import list_program_ids
from wallet.store import WalletStore

log = logging.getLogger("rw.background")


async def run(stop: asyncio.Event, wallets: WalletStore, sealer: Sealer, webhook_every: float = 0.5,
              sweep_every: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    swept = loop.time()
    async with httpx.AsyncClient(follow_redirects=False) as client:
        while not stop.is_set():
            try:
                await webhooks.deliver_due(sealer, client)
                if loop.time() - swept >= sweep_every:
                    swept = loop.time()
                    for program_id in await list_program_ids():
                        await orders.sweep(wallets, program_id)
            except Exception:  # a store hiccup: log it and try again on the next round
                log.exception("background round failed")
            try:
                await asyncio.wait_for(stop.wait(), timeout=webhook_every)
            except asyncio.TimeoutError:
                pass
