"""One connection to a single Redis server that carries the commands of concurrent callers
back to back: each command's reply settles its own future as it arrives, in order.

redis-py's asyncio pipeline spends about 60 us of CPU on each command it carries (taking a
pooled connection, its retry wrapper, the encoder's per-argument pass, the stack of
commands and the reply loop); this spends about 10 us (`bench/redis_pipe.py`: 64 callers,
a function call and a read each, one process). The wire is plain RESP2 written by
`hiredis.pack_command` and read by a `hiredis.Reader`, the two C halves redis-py itself
uses, so a reply is the same bytes, ints, lists and `ResponseError`s a redis-py client
without `decode_responses` answers before its response callbacks. There is no lock-step:
the commands a turn of the event loop queued go out in one write even while earlier ones
wait for their replies (Redis answers in order).

Only what a plain `redis://` or `unix://` address describes (host or socket, user,
password, database number): `address_of` answers None for anything else (TLS, RESP3, a
client name, decoded replies, timeouts) and the caller keeps redis-py's pipeline. A lost
connection fails every command still waiting with redis-py's `ConnectionError` (whether
each ran is unknown, as with any client); the next command opens a new connection.
"""

from __future__ import annotations

import asyncio
import collections
import socket
from typing import Any

import hiredis
from redis._parsers.base import BaseParser
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import ConnectionError, DataError

CONNECT_TIMEOUT = 5.0  # seconds, as redis-py's default socket connect timeout

Waiter = tuple[tuple[Any, ...], asyncio.Future[Any]]

# Connection settings of redis-py's pool that do not change what goes on the wire.
_HARMLESS = {"health_check_interval", "himport_registry", "maint_notifications_pool_handler",
             "maint_notifications_config", "orig_host_address", "orig_socket_timeout",
             "orig_socket_connect_timeout", "host", "port", "path", "db", "username", "password"}


class Address:
    __slots__ = ("host", "port", "path", "username", "password", "db")

    def __init__(self, host: str | None, port: int, path: str | None, username: str | None,
                 password: str | None, db: int) -> None:
        self.host, self.port, self.path = host, port, path
        self.username, self.password, self.db = username, password, db


def address_of(client: Any) -> Address | None:
    """Where a redis-py asyncio client connects, when this module can speak for it."""
    pool = getattr(client, "connection_pool", None)
    if pool is None or pool.connection_class not in (Connection, UnixDomainSocketConnection):
        return None
    settings = pool.connection_kwargs
    protocol = settings.get("protocol")
    if set(settings) - _HARMLESS - {"protocol"} or protocol not in (None, 2, "2"):
        return None
    return Address(host=settings.get("host", "localhost"), port=int(settings.get("port", 6379)),
                   path=settings.get("path"), username=settings.get("username"),
                   password=settings.get("password"), db=int(settings.get("db") or 0))


def answer(future: asyncio.Future[Any], reply: Any) -> None:
    """Gives a caller its reply, or its error (an error reply is an exception); nothing when
    the caller gave up waiting."""
    if future.done():
        return
    if isinstance(reply, Exception):
        future.set_exception(reply)
    else:
        future.set_result(reply)


class _Replies(asyncio.Protocol):
    def __init__(self) -> None:
        self.reader = hiredis.Reader(replyError=BaseParser.parse_error)
        self.waiting: collections.deque[asyncio.Future[Any]] = collections.deque()
        self.transport: asyncio.Transport | None = None
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family != socket.AF_UNIX:
            _notice_a_vanished_peer(sock)

    def data_received(self, data: bytes) -> None:
        reader, waiting = self.reader, self.waiting
        reader.feed(data)
        while (reply := reader.gets()) is not False:
            if not waiting:  # a reply nobody asked for: the stream is not what we think it is
                assert self.transport is not None
                self.transport.abort()
                return
            answer(waiting.popleft(), reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        why = f"Connection to Redis lost: {exc}" if exc else "Connection to Redis closed."
        while self.waiting:
            future = self.waiting.popleft()
            if not future.done():
                future.set_exception(ConnectionError(why))


def _notice_a_vanished_peer(sock: socket.socket) -> None:
    """A peer that vanished without a FIN (a host gone, a NAT or balancer dropping the flow)
    ends the connection, and fails the commands waiting on it, within about half a minute:
    data unacknowledged for 20 s (TCP_USER_TIMEOUT), or an idle connection unanswered for
    15 s + 3 x 5 s of keepalive probes. redis-py's pool would open new connections meanwhile;
    every caller here shares this one."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in (("TCP_KEEPIDLE", 15), ("TCP_KEEPINTVL", 5), ("TCP_KEEPCNT", 3), ("TCP_USER_TIMEOUT", 20_000)):
        option = getattr(socket, name, None)  # Linux names; elsewhere the system's defaults
        if option is not None:
            sock.setsockopt(socket.IPPROTO_TCP, option, value)


class RedisPipe:
    """An open connection; `send` writes commands and hands each its reply."""

    def __init__(self, loop: asyncio.AbstractEventLoop, replies: _Replies) -> None:
        self.loop = loop
        self._replies = replies

    @classmethod
    async def open(cls, address: Address) -> RedisPipe:
        """Connects and signs in (AUTH, SELECT); raises redis-py's ConnectionError (its
        AuthenticationError when the password is refused)."""
        loop = asyncio.get_running_loop()
        pipe: RedisPipe | None = None
        try:
            async with asyncio.timeout(CONNECT_TIMEOUT):
                if address.path is not None:
                    _, replies = await loop.create_unix_connection(_Replies, address.path)
                else:
                    _, replies = await loop.create_connection(_Replies, address.host, address.port)
                pipe = cls(loop, replies)
                handshake: list[tuple[Any, ...]] = []
                if address.password is not None:
                    handshake.append(("AUTH", address.username, address.password) if address.username
                                     else ("AUTH", address.password))
                if address.db:
                    handshake.append(("SELECT", address.db))
                if handshake:
                    await asyncio.gather(*[pipe.execute(*command) for command in handshake])
        except BaseException as exc:  # refused, unreachable, timed out, AUTH / SELECT refused, cancelled
            if pipe is not None:
                pipe.close()
            if isinstance(exc, ConnectionError) or not isinstance(exc, Exception):
                raise
            where = address.path or f"{address.host}:{address.port}"
            raise ConnectionError(f"Error connecting to Redis at {where}: {exc or type(exc).__name__}") from exc
        return pipe

    @property
    def usable(self) -> bool:
        transport = self._replies.transport
        return not self._replies.lost and transport is not None and not transport.is_closing()

    def send(self, batch: list[Waiter]) -> None:
        """Writes the commands in one write. A command that cannot be encoded fails alone
        (DataError for a type RESP cannot carry, UnicodeEncodeError for a lone surrogate),
        before anything is written; one whose caller gave up is not sent."""
        packed: list[bytes] = []
        futures: list[asyncio.Future[Any]] = []
        for command, future in batch:
            if future.done():
                continue
            try:
                packed.append(hiredis.pack_command(command))
            except TypeError as exc:  # None, a bool, a nested list: redis-py refuses these too
                future.set_exception(DataError(f"{exc} ({command[0]!r})"))
                continue
            except Exception as exc:
                future.set_exception(exc)
                continue
            futures.append(future)
        if not futures:
            return
        replies = self._replies
        replies.waiting.extend(futures)
        if replies.lost or replies.transport is None or replies.transport.is_closing():
            replies.connection_lost(None)  # fails what was just queued: nothing will answer
            return
        replies.transport.write(b"".join(packed))

    def execute(self, *command: Any) -> asyncio.Future[Any]:
        future = self.loop.create_future()
        self.send([(command, future)])
        return future

    def close(self) -> None:
        transport = self._replies.transport
        if transport is None or transport.is_closing():
            return
        try:
            here = asyncio.get_running_loop()
        except RuntimeError:
            here = None
        if self.loop is here:
            transport.close()
        elif not self.loop.is_closed():  # a loop a test left behind
            self.loop.call_soon_threadsafe(transport.close)
