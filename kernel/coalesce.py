"""Commands of concurrent requests sent to Redis together: one pipeline write per loop turn.

redis-py's asyncio client spends about 150 us of CPU on one command (taking a pooled
connection, checking it, packing, writing, awaiting, reading, returning it); a pipeline of
the commands that concurrent requests issued in the same turn of the event loop spends
35-60 us on each (measured: 64 concurrent callers, uvloop; HINCRBY alone, or a function
call and a read). Under load, the
requests a turn of the loop reads each issue their one function call; this module queues
them and, once the turn's callbacks have run, sends them as one non-transactional pipeline
on one connection. Each caller gets its own reply or its own error: a pipeline is not a
transaction, so one command's error does not touch the others. A failed write or read
(the server gone) fails every command of that pipeline with the error the client raised,
as each would have failed alone. Idle, a call waits one loop callback longer.

The commands go out on a connection of this module's own (kernel/redis_pipe.py: RESP
written and read by hiredis, no lock-step, about 10 us of CPU a command against redis-py's
pipeline's 60), one per event loop, opened when first needed and again after it is lost. A
client whose address that module cannot speak for (TLS, RESP3, ...) keeps redis-py's
pipeline, one per turn. Replies are raw (bytes, ints, lists: no response callbacks), and a
command that blocks or changes the connection's state (BLPOP, SELECT, MULTI) would hold up or
change it for every caller: this is for function calls and plain reads.

Only a single server's client: a cluster client sends each command to its key's node.
"""

from __future__ import annotations

import asyncio
from typing import Any

from redis.exceptions import ConnectionError

from kernel.redis_pipe import Address, RedisPipe, Waiter, address_of, answer

MAX_BATCH = 512  # commands per pipeline: bounds one write and one reply buffer


class _OnLoop:
    """What a coalescer keeps for one event loop: a transport serves the loop that made it."""

    __slots__ = ("loop", "queue", "flushing", "pipe", "opening")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.queue: list[Waiter] = []
        self.flushing = False
        self.pipe: RedisPipe | None = None
        self.opening: list[Waiter] | None = None  # commands waiting for the connection


def _fail(waiting: list[Waiter], error: Exception) -> None:
    for _, future in waiting:
        if not future.done():
            future.set_exception(type(error)(*error.args))  # one instance each: no shared traceback


class Coalescer:
    def __init__(self, client: Any, own_connection: bool = True) -> None:
        """`own_connection=False` keeps redis-py's pipeline (bench/redis_pipe.py's baseline)."""
        self.client = client
        self._sending: set[asyncio.Task[None]] = set()  # referenced, so the loop cannot drop one
        self._address: Address | None = address_of(client) if own_connection else None
        self._loops: dict[asyncio.AbstractEventLoop, _OnLoop] = {}
        self._last: _OnLoop | None = None

    def execute(self, *command: Any) -> asyncio.Future[Any]:
        """The command's reply (a future), sent with the others queued in this loop turn."""
        loop = asyncio.get_running_loop()
        here = self._last
        if here is None or here.loop is not loop:
            here = self._last = self._on(loop)
        future = loop.create_future()
        here.queue.append((command, future))
        if not here.flushing:
            here.flushing = True
            loop.call_soon(self._flush, here)
        return future

    def _on(self, loop: asyncio.AbstractEventLoop) -> _OnLoop:
        here = self._loops.get(loop)
        if here is None:
            for gone in [old for old in self._loops if old.is_closed()]:  # loops tests left behind
                del self._loops[gone]
            here = self._loops[loop] = _OnLoop(loop)
        return here

    def _flush(self, here: _OnLoop) -> None:
        here.flushing = False
        queued, here.queue = here.queue, []
        if self._loops.get(here.loop) is not here:  # the client was closed since: failed there
            return
        if self._address is None:
            for start in range(0, len(queued), MAX_BATCH):
                self._task(self._send(queued[start:start + MAX_BATCH]))
        elif here.opening is not None:
            here.opening.extend(queued)
        elif here.pipe is not None and here.pipe.usable:
            here.pipe.send(queued)
        else:
            here.opening = queued
            self._task(self._open(here))

    def _task(self, work: Any) -> None:
        task = asyncio.ensure_future(work)
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _open(self, here: _OnLoop) -> None:
        assert self._address is not None
        if here.pipe is not None:
            here.pipe.close()
            here.pipe = None
        try:
            pipe = await RedisPipe.open(self._address)
        except BaseException as exc:
            waiting, here.opening = here.opening or [], None
            _fail(waiting, exc if isinstance(exc, Exception) else ConnectionError("connecting cancelled"))
            if not isinstance(exc, Exception):
                raise
            return
        if self._loops.get(here.loop) is not here:  # the client was closed meanwhile
            pipe.close()
            return
        waiting, here.opening = here.opening or [], None
        here.pipe = pipe
        pipe.send(waiting)

    def close(self) -> None:
        """Closes this coalescer's own connections (the client's pool is the client's); what
        is still queued or waiting for a connection fails with a ConnectionError. A later
        call opens a connection again, as redis-py's client does after `aclose`."""
        states, self._loops, self._last = list(self._loops.values()), {}, None
        for here in states:
            if here.pipe is not None:
                here.pipe.close()  # its waiting commands fail as the connection ends
            waiting = here.queue + (here.opening or [])
            here.queue, here.opening = [], None
            if here.loop.is_closed():
                continue
            try:
                same_loop = asyncio.get_running_loop() is here.loop
            except RuntimeError:
                same_loop = False
            if same_loop:
                _fail(waiting, ConnectionError("the Redis client was closed"))
            else:
                here.loop.call_soon_threadsafe(_fail, waiting, ConnectionError("the Redis client was closed"))

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
            answer(future, reply)
