"""The worker process: `reward-wallet worker` runs every background task api/background.py
declares (`run_worker`), until SIGINT or SIGTERM, or until the `serve` that started it is
gone; then they stop in order and the journal drains.

`reward-wallet serve` starts one worker process beside its API workers, and `reward-wallet
worker` runs the same process on other machines; the API processes run only what their
settings ask for (api/background.py).

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

from api import background, projection
from api.settings import Settings
from fulfillment.sealing import Sealer
from programs.programs import keep_views_for
from wallet.store import WalletStore
from kernel.redis_functions import connect

log = logging.getLogger("rw.worker")

# How long `serve` waits for its worker to drain the journal before killing it (what is
# left stays in the journal and is projected by the next worker: nothing is lost).
STOP_TIMEOUT = 60.0


async def run_worker(settings: Settings, redis_url: str, stop: asyncio.Event, *, expiry_every: float = 3600.0,
                     pause_before_ack: float = 0.0) -> None:
    """Every background task (api/background.py's TASKS) on its own connections, until `stop`."""
    client = connect(redis_url, cluster=settings.redis_cluster, coalesce=settings.redis_coalesce)
    try:
        projection.wire()  # the spin rows and feed lines that follow from journal entries
        keep_views_for(settings.program_cache_seconds)
        wallets = WalletStore(client, idempotency_ttl=settings.idempotency_ttl_seconds)
        await wallets.load_functions()
        ctx = background.context(settings, redis_url, client, wallets, Sealer(settings.encryption_key or ""),
                                 expiry_every=expiry_every, pause_before_ack=pause_before_ack)
        await background.run_until(stop, ctx, background.TASKS)
    finally:
        await client.aclose()


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


__all__ = ["run_worker", "start_worker_process", "stop_worker_process", "watch_parent", "STOP_TIMEOUT"]
