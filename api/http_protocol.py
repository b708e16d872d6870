"""uvicorn's httptools protocol, writing each answer to its socket once.

uvicorn writes an answer's status line and headers (ASGI's `http.response.start`) and then
its body as two `transport.write` calls: two `send` syscalls, two TCP segments, and a client
that wakes twice for one answer. On loopback the sender pays for the receiver's TCP work
inside its own syscall, so under bench/games.py the first of those writes was the largest
single item of the API's profile. Here the connection's writes made in one turn of the event
loop are held and sent together at the end of it: the headers and body of an answer leave
in one segment, and nothing waits longer than the loop turn it was written in. A turn that
writes more than HOLD_AT bytes (a large or streamed answer) sends them at once, so the real
transport's flow control (uvicorn pausing the app while the socket's buffer is full) holds.

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
