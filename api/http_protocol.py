"""uvicorn's httptools protocol, writing each answer to its socket once.

uvicorn writes an answer's status line and headers (ASGI's `http.response.start`) and then
its body as two `transport.write` calls: two `send` syscalls, two TCP segments, and a client
that wakes twice for one answer. On loopback the sender pays for the receiver's TCP work
inside its own syscall, so under bench/games.py the first of those writes was the largest
single item of the API's profile. Here a connection's writes made in one turn of the event loop
are held and sent together at the end of it: an answer's headers and body leave in one segment,
and the answers a turn finished leave one after another just before the loop waits for more
requests. The second is what pays (bench/one_write.py): sending each answer the moment it is
whole, one segment too, measured no better than uvicorn's own, while holding them to the end of
the turn took about a third of a bare endpoint's CPU a request off, and its p99 with it; the
replies land while the server is about to wait anyway, not in the middle of its turn, where
waking the client takes the core from it. An answer waits for at most the rest of its turn,
the same wait the coalesced Redis calls of that turn have (kernel/coalesce.py). More than
HOLD_AT bytes held (a large or streamed answer) go at once, so the real transport's flow control
(uvicorn pausing the app while the socket's buffer is full) holds.

    uvicorn api.asgi:app_factory --factory --http api.http_protocol:OneWriteProtocol
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

# What `serve` hands uvicorn (`--http`), and what a test or benchmark starting uvicorn itself passes.
ONE_WRITE = "api.http_protocol:OneWriteProtocol"
HOLD_AT = 64 * 1024


class HeldWrites:
    """A transport whose writes are joined and sent at the end of the loop's turn; every
    other method is the real transport's, and those that end or inspect the stream send
    what is held first."""

    __slots__ = ("_transport", "_loop", "_held", "_size")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: list[bytes] = []
        self._size = 0

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(bytes(data))
        self._size += len(data)
        if self._size > HOLD_AT:
            self.flush()

    def flush(self) -> None:
        held = self._held
        if not held:
            return
        self._held = []
        self._size = 0
        if not self._transport.is_closing():
            self._transport.write(held[0] if len(held) == 1 else b"".join(held))

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + self._size

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):  # a slot not set yet (a copy, a pickle): no endless lookup
            raise AttributeError(name)
        return getattr(self._transport, name)


class OneWriteProtocol(HttpToolsProtocol):
    """HttpToolsProtocol on a transport that sends a loop turn's writes as one."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(HeldWrites(transport, self.loop))  # type: ignore[arg-type]

    def eof_received(self) -> None:
        # A client that half-closes after its request (`shutdown(SHUT_WR)`, `nc -N`): returning
        # None lets the real transport close itself, past HeldWrites.close, so an answer
        # written in this turn goes now or never.
        self.transport.flush()  # type: ignore[attr-defined]
        super().eof_received()
