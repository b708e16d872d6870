"""The request gate: one Redis function call (programs/gate.lua, `rw_gate`) that says whether
a caller is still let in and counts its rate-limit windows, before the request's handler.

What must hold on the very next request on every worker lives in Redis and is read here:
an API key's `revoked` and `disabled` marks (under the key's program's hash tag), a
participant wallet's `open`/`inactive`/`gen`, the program's `suspended` flag. What never
changes (a key's hash, program, kind and partner; a token's verified claims) is answered
from memory by the caller (api/auth.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import msgspec

from kernel.gated import gate_reply
from kernel.redis_functions import command
from programs import keys as program_keys

Check = Literal["p", "k", "-"]

# Verdicts of rw_gate (see gate.lua).
LET_IN = 0
UNKNOWN = 1
REVOKED = 2
DISABLED = 3
GENERATION_MOVED = 4
OVER_BUDGET = 5  # rw_gated only: a counter went past its limit, the operation did not run


class Passage(msgspec.Struct, frozen=True):
    """The gate's answer: the verdict, the program's suspension (when asked), and each
    counter's count after this request (empty when refused)."""

    verdict: int
    suspended: bool
    counts: list[int]


def gate_call(counters: Sequence[str], ttls: Sequence[int], check: Check = "-", liveness: str = "",
              generation: int = 0, config: str = "", limits: Sequence[int] = ()) -> tuple[list[str], list[Any]]:
    """rw_gate's keys and arguments: `check` "p" reads the participant wallet `liveness`
    against the token's `generation`, "k" the API key marks `liveness`; `config` (a program's
    config hash) asks for the suspension flag; every counter is counted once the caller is
    let in, and `limits` (one per counter) let rw_gated refuse a spent budget itself."""
    key_list = list(counters)
    if check != "-":
        key_list.append(liveness)
    if config:
        key_list.append(config)
    return key_list, [len(counters), check, generation, "1" if config else "0", *ttls, *limits]


async def pass_gate(client: Any, counters: Sequence[str], ttls: Sequence[int], check: Check = "-",
                    liveness: str = "", generation: int = 0, config: str = "") -> Passage:
    """The gate alone, in one FCALL (see `gate_call`)."""
    key_list, args = gate_call(counters, ttls, check, liveness, generation, config)
    reply = await command(client, "FCALL", "rw_gate", len(key_list), *key_list, *args)
    return Passage(*gate_reply(reply))


async def mark_revoked(client: Any, program_id: str, key_id: str) -> None:
    """Revocation is for good: the mark is never removed."""
    await client.hset(program_keys.key_marks(program_id, key_id), "revoked", "1")


async def mark_disabled(client: Any, program_id: str, key_ids: Sequence[str], disabled: bool) -> None:
    for key_id in key_ids:
        if disabled:
            await client.hset(program_keys.key_marks(program_id, key_id), "disabled", "1")
        else:
            await client.hdel(program_keys.key_marks(program_id, key_id), "disabled")
