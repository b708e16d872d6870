"""Commands of concurrent requests sent to Redis together: one pipeline write per loop turn.

redis-py's asyncio client spends about 150 us of CPU on one command (taking a pooled
connection, checking it, packing, writing, awaiting, reading, returning it); a pipeline of
the commands that concurrent requests issued in the same turn of the event loop spends
about 35 us on each (measured: 64 concurrent callers, HINCRBY, uvloop). Under load, the
requests a turn of the loop reads each issue their one function call; this module queues
them and, once the turn's callbacks have run, sends them as one non-transactional pipeline
on one connection. Each caller gets its own reply or its own error: a pipeline is not a
transaction, so one command's error does not touch the others. A failed write or read
(the server gone) fails every command of that pipeline with the error the client raised,
as each would have failed alone. Idle, a call waits one loop callback longer.

The commands go out on one connection of this module's own (kernel/redis_pipe.py: RESP
written and read by hiredis, no lock-step, about 7 us of CPU a command against redis-py's
pipeline's 50), opened when first needed and again after it is lost. A client whose address
that module cannot speak for (TLS, RESP3, ...) keeps redis-py's pipeline, one per turn.

Only a single server's client: a cluster client sends each command to its key's node.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.exceptions import ConnectionError

from kernel.redis_pipe import Address, RedisPipe, Waiter, address_of

MAX_BATCH = 512  # commands per pipeline: bounds one write and one reply buffer


class Coalescer:
    def __init__(self, client: Any, own_connection: bool = True) -> None:
        """`own_connection=False` keeps redis-py's pipeline (bench/redis_pipe.py's baseline)."""
        self.client = client
        self._queue: list[Waiter] = []
        self._flushing = False
        self._sending: set[asyncio.Task[None]] = set()  # referenced, so the loop cannot drop one
        self._address: Address | None = address_of(client) if own_connection else None
        self._pipe: RedisPipe | None = None
        self._opening: list[Waiter] | None = None  # commands waiting for the connection
        self._loop: asyncio.AbstractEventLoop | None = None

    def execute(self, *command: Any) -> asyncio.Future[Any]:
        """The command's reply (a future), sent with the others queued in this loop turn."""
        loop = asyncio.get_running_loop()
        if loop is not self._loop:  # a first call, or another loop (tests run several in turn)
            self._restart(loop)
        future = loop.create_future()
        self._queue.append((command, future))
        if not self._flushing:
            self._flushing = True
            loop.call_soon(self._flush)
        return future

    def _flush(self) -> None:
        self._flushing = False
        queued, self._queue = self._queue, []
        if self._address is not None:
            self._to_pipe(queued)
            return
        for start in range(0, len(queued), MAX_BATCH):
            task = asyncio.ensure_future(self._send(queued[start:start + MAX_BATCH]))
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    def _to_pipe(self, queued: list[Waiter]) -> None:
        if self._opening is not None:
            self._opening.extend(queued)
        elif self._pipe is not None and self._pipe.usable:
            self._pipe.send(queued)
        else:
            self._opening = queued
            task = asyncio.ensure_future(self._open())
            self._sending.add(task)
            task.add_done_callback(self._sending.discard)

    async def _open(self) -> None:
        assert self._address is not None
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None
        try:
            pipe = await RedisPipe.open(self._address)
        except BaseException as exc:
            waiting, self._opening = self._opening or [], None
            error = exc if isinstance(exc, Exception) else ConnectionError("connecting cancelled")
            for _, future in waiting:
                if not future.done():
                    future.set_exception(error)
            if not isinstance(exc, Exception):
                raise
            return
        if self._loop is not pipe.loop:  # restarted on another loop meanwhile
            pipe.close()
            return
        waiting, self._opening = self._opening or [], None
        self._pipe = pipe
        pipe.send(waiting)

    def _restart(self, loop: asyncio.AbstractEventLoop) -> None:
        """Forgets what belonged to another loop: its queue, a connection being opened, the
        connection itself (a transport serves the loop that made it)."""
        self.close()
        self._queue, self._flushing, self._opening, self._loop = [], False, None, loop

    def close(self) -> None:
        """Closes this coalescer's own connection (the client's pool is the client's)."""
        if self._pipe is not None:
            self._pipe.close()
            self._pipe = None

    async def _send(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        try:
            if len(batch) == 1:
                try:
                    replies: list[Any] = [await self.client.execute_command(*batch[0][0])]
                except Exception as exc:  # the command's own error, or the connection's: its alone
                    replies = [exc]
            else:
                pipe = self.client.pipeline(transaction=False)
                for command, _ in batch:
                    pipe.execute_command(*command)
                replies = await pipe.execute(raise_on_error=False)
        except BaseException as exc:  # the write or the read failed: so did every command
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else ConnectionError("send cancelled"))
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), reply in zip(batch, replies):
            if future.done():  # its caller was cancelled
                continue
            if isinstance(reply, Exception):
                future.set_exception(reply)
            else:
                future.set_result(reply)
