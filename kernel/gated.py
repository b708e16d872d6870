"""A request's gate carried into its operation's own function call (`rw_gated`,
programs/gate.lua): one round trip where the gate and the operation took two.

The API's gate layer opens a `CarriedGate` for a route whose first Redis call is a gateable
operation (one a part registers with `register_gateable`, kernel/prelude.lua: a wallet
read, a grant, a deduction, a spin, a redemption's order). `FunctionStore.fcall` (kernel/redis_functions.py) sends that
call through `rw_gated` with the gate's keys and arguments in front, then hands the gate's
verdict and counts to `judge`, which raises when the caller is refused or over budget: the
operation did not run. Later calls of the same request go out alone. A gate that no call
carried (the handler failed first, or answered without a gateable call) is passed by the
gate layer itself before the response starts.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from typing import Any

Judge = Callable[[int, bool, list[int]], Awaitable[None]]


def gate_reply(reply: list[Any], counts_at: int = 2) -> tuple[int, bool, list[int]]:
    """The verdict, the program's suspension and the counters' counts in a reply of `rw_gate`
    (counts from 2), or of `rw_gated` (counts from 3, after the operation's own reply)."""
    return int(reply[0]), reply[1] == 1, [int(c) for c in reply[counts_at:]]


class CarriedGate:
    """The gate's keys and arguments (as `rw_gate` takes them), waiting for the first call."""

    __slots__ = ("keys", "args", "judge", "open")

    def __init__(self, keys: list[str], args: list[Any], judge: Judge) -> None:
        self.keys = keys
        self.args = args
        self.judge = judge  # told (verdict, suspended, counts); raises on a refusal
        self.open = True

    async def call(self, execute: Callable[..., Awaitable[Any]], name: str, key_list: list[str],
                   args: list[Any]) -> Any:
        """The operation `name` behind the gate, in one FCALL (`execute` sends a command);
        answers the operation's reply."""
        self.open = False
        reply = await execute("FCALL", "rw_gated", len(self.keys) + len(key_list), *self.keys, *key_list,
                              len(self.keys), len(self.args), *self.args, name, *args)
        await self.judge(*gate_reply(reply, counts_at=3))
        return reply[2]

    async def settle(self, execute: Callable[..., Awaitable[Any]]) -> None:
        """The gate alone (rw_gate), for a write no gateable call carries; raises the refusal."""
        self.open = False
        reply = await execute("FCALL", "rw_gate", len(self.keys), *self.keys, *self.args)
        await self.judge(*gate_reply(reply))


CARRIED: ContextVar[CarriedGate | None] = ContextVar("rw_carried_gate", default=None)


async def judge_open_gate(execute: Callable[..., Awaitable[Any]]) -> None:
    """Judges the request's carried gate now when no call has carried it yet: a handler about
    to write outside its gateable call (a fallback path) calls this first. Raises the refusal."""
    carried = CARRIED.get()
    if carried is not None and carried.open:
        await carried.settle(execute)
