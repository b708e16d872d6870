"""The worker: the one place that starts and stops every background task.

`reward-wallet serve` starts one worker process beside its API workers, and `reward-wallet
worker` runs the same process on other machines; the API processes run none of it unless
RW_JOURNAL_CONSUMER / RW_BACKGROUND_TASKS turn an in-process copy on (the in-process test
app does), and then they run this same function. What it runs:

- the journal projector (Redis journal -> SQL ledger, spin and feed rows);
- webhook deliveries that are due, the order sweep, orphan rerouting and spin completion
  (api/background.py);
- the periodic expiry sweep (off when `expiry_every` is None).

Stopping is ordered: the tasks that may still journal a change (a settlement, an expiry)
stop first, and only then does the projector drain what is waiting, so nothing answered is
left out of the ledger.

A worker that `serve` started also watches its parent: the kernel sends it SIGTERM when the
parent dies (PR_SET_PDEATHSIG, set before exec), and it polls its parent id as well (the
signal is Linux only, and misses a parent that died before the child set it). Either way a
`kill -9` of `serve` leaves no orphan.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import subprocess
import sys
from typing import Any

from api import background
from fulfillment.sealing import Sealer
from programs.programs import list_program_ids
from wallet.journal import JournalProjector
from wallet.store import WalletStore

log = logging.getLogger("rw.worker")

# How long `serve` waits for its worker to drain the journal before killing it (what is
# left stays in the journal and is projected by the next worker: nothing is lost).
STOP_TIMEOUT = 60.0


async def run_background(
    client: Any,
    wallets: WalletStore,
    sealer: Sealer,
    stop: asyncio.Event,
    *,
    projector: bool = True,
    tasks: bool = True,
    expiry_every: float | None = None,
    claim_idle_ms: int = 15_000,
    webhook_allow_private: bool = False,
    pause_before_ack: float = 0.0,
) -> None:
    """Runs the background tasks until `stop` is set, then stops them in order."""
    stop_tasks = asyncio.Event()
    stop_projector = asyncio.Event()
    running: list[asyncio.Task[None]] = []
    projecting: asyncio.Task[None] | None = None
    journal = JournalProjector(client, claim_idle_ms=claim_idle_ms, pause_before_ack=pause_before_ack)
    if tasks:
        running.append(asyncio.create_task(
            background.run(stop_tasks, wallets, sealer, webhook_allow_private=webhook_allow_private),
            name="rw-background"))
    if expiry_every is not None:
        running.append(asyncio.create_task(expiry_loop(journal, wallets, stop_tasks, expiry_every),
                                           name="rw-expiry"))
    if projector:
        projecting = asyncio.create_task(journal.run(stop_projector, list_program_ids), name="rw-projector")
    try:
        await stop.wait()
    finally:
        stop_tasks.set()
        for task in running:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(task, timeout=10)
        stop_projector.set()
        # Graceful: the projector drains what is waiting before it returns.
        if projecting is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(projecting, timeout=30)


async def expiry_loop(journal: JournalProjector, wallets: WalletStore, stop: asyncio.Event, every: float) -> None:
    """The periodic expiry sweep; a failure is logged and retried next time."""
    from programs.expiry import sweep_all

    while not stop.is_set():
        try:
            await sweep_all(wallets, journal.project_program)
        except Exception:
            log.exception("expiry sweep failed")
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)


# --- the process ----------------------------------------------------------------------


async def watch_parent(parent_pid: int, stop: asyncio.Event, every: float = 0.5) -> None:
    """Sets `stop` once the process that started us is gone (we were handed to another)."""
    while not stop.is_set():
        if os.getppid() != parent_pid:
            log.warning("the serve process %s is gone: stopping", parent_pid)
            stop.set()
            return
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=every)


def _die_with_parent(parent_pid: int) -> Any:
    def preexec() -> None:
        from api.embedded import die_with_parent

        die_with_parent()
        if os.getppid() != parent_pid:  # the parent died before the line above took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def start_worker_process(env: dict[str, str] | None = None, stderr: Any = None) -> subprocess.Popen[bytes]:
    """`reward-wallet worker`, as a child of this process that dies with it. In its own
    session, so a Ctrl-C at the terminal reaches the API first and the worker is stopped
    after it (`stop_worker_process`)."""
    parent = os.getpid()
    return subprocess.Popen(
        [sys.executable, "-m", "api", "worker", "--parent-pid", str(parent)],
        env=env,
        stdin=subprocess.DEVNULL,
        stderr=stderr,
        start_new_session=True,
        preexec_fn=_die_with_parent(parent),
    )


def stop_worker_process(process: subprocess.Popen[bytes], timeout: float = STOP_TIMEOUT) -> int | None:
    """SIGTERM, then wait for the drain; a worker that does not end in time is killed."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            log.error("the worker did not drain within %.0fs: killed (its entries stay in the journal)", timeout)
            process.kill()
            process.wait()
    return process.returncode


__all__ = ["run_background", "start_worker_process", "stop_worker_process", "watch_parent", "STOP_TIMEOUT"]
