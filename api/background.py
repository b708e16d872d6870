"""Every background task, declared once (`TASKS`), and the one place that starts and stops
them (`start`, then `Running.stop`).

`reward-wallet worker` runs all of them (api/worker.py): `serve` starts one such process
beside its API workers, other machines run their own. An API process runs the program-news
follower, and the others only when a setting asks for an in-process copy (the in-process
test app, a single-process embedding): RW_JOURNAL_CONSUMER the projector and the copy of
SQLite's WAL into the database, RW_BACKGROUND_TASKS the webhook deliveries and the sweep.
The expiry sweep runs in the worker only.

Stopping is ordered: the tasks that may still journal a change (a settlement, an expiry)
stop first, and only then does the projector drain what is waiting, so nothing answered is
left out of the ledger.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

import httpx
import msgspec

from api.settings import Settings
from catalog.items import pricing_of
from fulfillment import orders, partner_orders, pooled_orders, webhooks
from fulfillment.rerouting import reroute_orphans
from fulfillment.sealing import Sealer
from games import spins
from kernel import sqlite_pool
from kernel.mail import Mailer, mailer
from programs import announcements, participant_imports
from programs.program_news import follow
from programs.programs import forget_every_program, forget_program, get_program, list_program_ids
from wallet import checkpoints
from wallet.journal import JournalProjector
from wallet.tables import LedgerEntry
from wallet.store import WalletStore

log = logging.getLogger("rw.background")


class Context(msgspec.Struct, frozen=True, kw_only=True):
    """What the tasks work with: the stores, the sealer and their tunings."""

    wallets: WalletStore
    sealer: Sealer
    journal: JournalProjector
    redis_url: str
    mailer: Mailer
    public_base: str
    webhook_allow_private: bool = False
    webhook_every: float = 0.5
    mail_every: float = 1.0
    import_every: float = 1.0
    sweep_every: float = 30.0
    expiry_every: float = 3600.0
    # Pending lots release at or after their minute: a pass every few seconds is one sorted-set
    # read per program.
    release_every: float = 10.0
    checkpoint_every: float = 600.0
    wal_every: float = 0.5


def context(settings: Settings, redis_url: str, client: Any, wallets: WalletStore, sealer: Sealer, *,
            expiry_every: float = 3600.0, pause_before_ack: float = 0.0) -> Context:
    # One projector: the expiry sweep projects what it journaled through the same consumer.
    journal = JournalProjector(client, claim_idle_ms=settings.journal_claim_idle_ms, pause_before_ack=pause_before_ack)
    return Context(wallets=wallets, sealer=sealer, journal=journal, redis_url=redis_url,
                   mailer=mailer(settings.smtp_url, settings.mail_from, settings.outbox_path),
                   public_base=settings.public_base,
                   webhook_allow_private=settings.webhook_allow_private, expiry_every=expiry_every)


async def follow_program_news(ctx: Context, stop: asyncio.Event) -> None:
    """Another process's change to a program drops this one's view of it at once."""
    await follow(ctx.redis_url, stop, forget_program, forget_every_program)


async def deliver_webhooks(ctx: Context, stop: asyncio.Event) -> None:
    """Webhook deliveries that are due, on their own: a sweep over many programs takes
    seconds, and deliveries must not wait for it."""
    async with httpx.AsyncClient(follow_redirects=False) as client:
        await _every(stop, ctx.webhook_every, "webhook deliveries",
                     lambda: webhooks.deliver_due(ctx.sealer, client, allow_private=ctx.webhook_allow_private))


async def send_announcements(ctx: Context, stop: asyncio.Event) -> None:
    """Announcement emails that are due (programs/announcements.py queues them)."""
    await _every(stop, ctx.mail_every, "announcement emails",
                 lambda: announcements.send_due(ctx.mailer, ctx.public_base))


async def import_participants(ctx: Context, stop: asyncio.Event) -> None:
    """Participant files uploaded in the console, a chunk at a time with their progress."""
    await _every(stop, ctx.import_every, "participant imports", lambda: participant_imports.run_due(ctx.wallets))


async def sweep(ctx: Context, stop: asyncio.Event) -> None:
    """Finishes what a crash interrupted: orders stuck half-made, orphaned orders, spins whose
    SQL record and prize order were never written."""
    await _every(stop, ctx.sweep_every, "sweep", lambda: _sweep(ctx.wallets, ctx.sealer), first_after=ctx.sweep_every)


async def expire(ctx: Context, stop: asyncio.Event) -> None:
    """The periodic expiry sweep, projecting what it expired."""
    from programs.expiry import sweep_all

    await _every(stop, ctx.expiry_every, "expiry sweep", lambda: sweep_all(ctx.wallets, ctx.journal.project_program))


async def release_pending(ctx: Context, stop: asyncio.Event) -> None:
    """Releases the pending lots that are due (programs/pending.py), every program."""
    from programs.pending import release_all_due

    await _every(stop, ctx.release_every, "pending-lot release", lambda: release_all_due(ctx.wallets))


async def copy_wal(ctx: Context, stop: asyncio.Event) -> None:
    """Copies SQLite's WAL into the database (kernel/sqlite_pool.py `copy_wal`), so the
    projector's commits and the API's seldom do it themselves."""
    await _every(stop, ctx.wal_every, "WAL checkpoint", lambda: sqlite_pool.copy_wal(LedgerEntry._meta.db))


async def checkpoint(ctx: Context, stop: asyncio.Event) -> None:
    """Signs each program's finished days of its ledger chain (wallet/checkpoints.py): a day
    is signed on the first pass after it ended and was fully chained."""
    await _every(stop, ctx.checkpoint_every, "ledger checkpoints",
                 lambda: _checkpoint_all(ctx), first_after=min(ctx.checkpoint_every, 30.0))


async def _checkpoint_all(ctx: Context) -> None:
    for program_id in await list_program_ids():
        try:
            await checkpoints.make_daily(ctx.wallets.client, ctx.sealer, program_id)
        except Exception:  # one program's trouble (logged) must not hold the others back
            log.exception("checkpointing the ledger of program %s failed", program_id)


async def project(ctx: Context, stop: asyncio.Event) -> None:
    """The journal projector (Redis journal -> SQL ledger, spin and feed rows); it drains
    what is waiting before it returns."""
    await ctx.journal.run(stop, list_program_ids)


class Task(msgspec.Struct, frozen=True):
    name: str
    run: Callable[[Context, asyncio.Event], Awaitable[None]]
    # Whether an API process runs it too: always, never, or when this setting is on.
    in_api: Literal["always", "never", "journal_consumer", "background_tasks"]
    stop_within: float = 10.0  # seconds; a task still running then is cancelled
    last: bool = False  # stopped after every other one


TASKS: tuple[Task, ...] = (
    Task("program-news", follow_program_news, in_api="always"),
    Task("webhooks", deliver_webhooks, in_api="background_tasks"),
    Task("announcements", send_announcements, in_api="background_tasks"),
    # A cancelled import resumes from its last recorded chunk once its lease runs out.
    Task("participant-imports", import_participants, in_api="background_tasks"),
    Task("sweep", sweep, in_api="background_tasks"),
    Task("expiry", expire, in_api="never"),
    Task("pending-release", release_pending, in_api="never"),
    Task("checkpoints", checkpoint, in_api="never"),
    Task("wal-checkpoints", copy_wal, in_api="journal_consumer"),
    Task("projector", project, in_api="journal_consumer", stop_within=30.0, last=True),
)


def api_tasks(settings: Settings) -> list[Task]:
    """The tasks an API process runs under these settings."""
    return [t for t in TASKS if t.in_api == "always" or (t.in_api != "never" and getattr(settings, t.in_api))]


class Running:
    """Started tasks, each with its own stop signal; `stop` stops them all, in order."""

    def __init__(self, started: list[tuple[Task, asyncio.Event, asyncio.Task[None]]]) -> None:
        self.started = started

    async def stop(self) -> None:
        for last in (False, True):
            stage = [(task, stop, running) for task, stop, running in self.started if task.last == last]
            for _, stop, _ in stage:
                stop.set()
            for task, _, running in stage:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.wait_for(running, timeout=task.stop_within)


def start(ctx: Context, tasks: list[Task] | tuple[Task, ...] = TASKS) -> Running:
    started = []
    for task in tasks:
        stop = asyncio.Event()
        started.append((task, stop, asyncio.create_task(task.run(ctx, stop), name=f"rw-{task.name}")))
    return Running(started)


async def run_until(stop: asyncio.Event, ctx: Context, tasks: list[Task] | tuple[Task, ...] = TASKS) -> None:
    """Runs the tasks until `stop` is set, then stops them in order."""
    running = start(ctx, tasks)
    try:
        await stop.wait()
    finally:
        await running.stop()


async def _sweep(wallets: WalletStore, sealer: Sealer) -> None:
    for program_id in await list_program_ids():
        try:
            await orders.sweep(wallets, program_id)
            program = await get_program(program_id)
            await pooled_orders.mend(wallets, program)
            await partner_orders.mend(program)
            await reroute_orphans(wallets, sealer, program)
            await spins.complete_unrecorded(wallets, sealer, program, pricing_of(program))
        except Exception:
            # One program's failure (SQL busy, a row this build cannot read) does not hold back
            # the others' sweep; its own is tried again at the next round.
            log.exception("program %s: the order sweep failed; trying again at the next round", program_id)


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
