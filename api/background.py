"""Background work each API process (and `reward-wallet worker`) runs beside requests:
webhook deliveries that are due, and the sweeps that finish what a crash interrupted (orders
stuck half-made, spins whose SQL record and prize order were never written)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

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
    """Deliveries and sweeps run side by side: a sweep over many programs takes seconds, and
    webhooks that are due must not wait for it."""
    async with httpx.AsyncClient(follow_redirects=False) as client:
        await asyncio.gather(
            _every(stop, webhook_every, "webhook deliveries",
                   lambda: webhooks.deliver_due(sealer, client, allow_private=webhook_allow_private)),
            _every(stop, sweep_every, "sweep", lambda: _sweep(wallets, sealer), first_after=sweep_every),
        )


async def _sweep(wallets: WalletStore, sealer: Sealer) -> None:
    for program_id in await list_program_ids():
        await orders.sweep(wallets, program_id)
        program = await get_program(program_id)
        await reroute_orphans(wallets, sealer, program)
        await spins.complete_unrecorded(wallets, sealer, program, pricing_of(program))


async def _every(stop: asyncio.Event, seconds: float, what: str, work: Callable[[], Awaitable[object]],
                 first_after: float = 0.0) -> None:
    if first_after and await _stopped(stop, first_after):
        return
    while not stop.is_set():
        try:
            await work()
        except Exception:  # a store hiccup: log it and try again on the next round
            log.exception("background %s failed", what)
        if await _stopped(stop, seconds):
            return


async def _stopped(stop: asyncio.Event, seconds: float) -> bool:
    try:
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    except asyncio.TimeoutError:
        return False
    return True
