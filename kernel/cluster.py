"""The Redis Cluster client the product uses: redis-py's, routing a function call by the
keys it declares.

redis-py's cluster client finds an EVAL's slot from its declared keys, but for FCALL it
asks a node first (`COMMAND GETKEYS`): one more round trip before every wallet function,
spin and gate call, doubling each request's round trips on a cluster. Our functions declare
all their keys (one hash tag each), so the slot is known locally, as for EVAL.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis

_FUNCTION_CALLS = ("FCALL", "FCALL_RO")
_STREAM_READS = ("XREADGROUP", "XREAD")


class FunctionRoutingCluster(aioredis.RedisCluster):
    async def _determine_slot(self, command: str, *args: Any) -> int:
        # FCALL name numkeys key...: every declared key in one slot is the slot; anything
        # else (no keys, keys across slots) goes the library's way, which refuses the latter.
        # XREADGROUP/XREAD ... STREAMS key... id...: the same for the keys after STREAMS
        # (asked of a node, the journal projector's pass cost two round trips a journal).
        declared: tuple[Any, ...] = ()
        if command.upper() in _FUNCTION_CALLS and len(args) >= 2:
            declared = args[2:2 + int(args[1])]
        elif command.upper() in _STREAM_READS:
            words = [(a.decode() if isinstance(a, bytes) else str(a)).upper() for a in args]
            if "STREAMS" in words:
                rest = args[words.index("STREAMS") + 1:]
                declared = rest[:len(rest) // 2]
        slots = {self.keyslot(key) for key in declared}
        if len(slots) == 1:
            return slots.pop()
        return int(await super()._determine_slot(command, *args))
