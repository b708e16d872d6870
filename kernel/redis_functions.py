"""The Redis plumbing every package calls the function library through: the client, the one
load of the library at start, and the function call that metrics, the coalescer and a
request's carried gate all see. The ledger's operations over it: wallet/store.py."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any

import redis.asyncio as aioredis

from kernel.cluster import FunctionRoutingCluster
from kernel.coalesce import Coalescer
from kernel.gated import CARRIED
from kernel.lua_library import library
from kernel.replies import reply_text

Client = Any  # PipedRedis or redis.asyncio.RedisCluster


class PipedRedis(aioredis.Redis):
    """redis-py's client and the one coalescer (kernel/coalesce.py) that the function calls
    of every store made on it share: one connection of its own, closed with the client."""

    # Whether `command` sends plain commands on the coalescer's connection (RW_REDIS_COALESCE).
    coalesce_commands = True

    @functools.cached_property
    def coalescer(self) -> Coalescer:
        return Coalescer(self)

    async def aclose(self, close_connection_pool: bool | None = None) -> None:
        if "coalescer" in self.__dict__:
            self.coalescer.close()
        await super().aclose(close_connection_pool)


class FunctionStore:
    def __init__(self, client: Client, observe: Callable[[str, bytes], None] | None = None,
                 coalesce: bool = True) -> None:
        self.client = client
        # Function calls of concurrent requests go out as one pipeline (kernel/coalesce.py),
        # on a single server; a cluster client routes each call to its key's node.
        self.execute: Callable[..., Any] = (
            client.coalescer.execute if coalesce and isinstance(client, PipedRedis)
            # Another client (a test's, a benchmark's) keeps redis-py's pipeline: nothing would
            # close a connection of the coalescer's own.
            else Coalescer(client, own_connection=False).execute
            if coalesce and not isinstance(client, FunctionRoutingCluster)
            else client.execute_command)
        # Told each call's function name and raw reply (the API counts outcomes for metrics).
        self.observe = observe

    async def load_functions(self) -> None:
        """Registers the library (REPLACE: a newer build's functions win on restart). Raises
        LuaLibraryError when a package's part does not keep to its declaration."""
        await self.client.function_load(library().text, replace=True)

    async def fcall(self, name: str, key_list: list[str], args: list[Any]) -> bytes:
        """Calls one function of the library; every call passes here, so metrics see them all.
        The first gateable call of a request carries its gate (kernel/gated.py)."""
        carried = CARRIED.get()
        if carried is not None and carried.open and name in library().gateable:
            reply: bytes = await carried.call(self.execute, name, key_list, args)
        else:
            reply = await self.execute("FCALL", name, len(key_list), *key_list, *args)
        if self.observe is not None:
            self.observe(name, reply)
        return reply


def command(client: Client, *args: Any) -> Awaitable[Any]:
    """One plain command whose raw reply is what its callers read (a GET, an XRANGE, an
    FCALL): on a single server, sent with the commands of this turn of the event loop on the
    coalescer's connection, as the function calls are (redis-py spent about 150 us of CPU on
    one command alone; the gate's own call, the catalog's version and a history page's `as_of`
    went that way on every request of the routes that read them); else through redis-py."""
    if isinstance(client, PipedRedis) and client.coalesce_commands:
        return client.coalescer.execute(*args)
    return client.execute_command(*args)


async def journal_synced(client: Client) -> bool:
    """Whether the server syncs every write to disk before it answers (AOF on, `appendfsync
    always`, as the embedded server runs): then the journal holds every answered entry through a
    power cut. False when it says otherwise, when it will not say (a managed server that refuses
    CONFIG) and on a cluster (each node would have to be asked)."""
    if isinstance(client, FunctionRoutingCluster):
        return False
    try:
        config = await client.config_get("append*")
    except Exception:
        return False
    values = {reply_text(k): reply_text(v) for k, v in config.items()}
    return values.get("appendonly") == "yes" and values.get("appendfsync") == "always"


def connect(url: str, cluster: bool = False, coalesce: bool = True) -> Client:
    """The process's client; `coalesce` (RW_REDIS_COALESCE): whether `command` sends plain
    commands on the coalescer's connection."""
    if cluster:
        return FunctionRoutingCluster.from_url(url)
    client = PipedRedis.from_url(url, max_connections=256, health_check_interval=30)
    client.coalesce_commands = coalesce
    return client
