"""The two bounds on points (CONTRACT.md, v1 additions), in one place.

One operation moves at most `MAX_MOVE` = 10^12 points, and no balance, lifetime counter or
program account (the negative `world` and `budget` included) exceeds `MAX_BALANCE` =
2^53 - 1 in size: the largest integer a double, and so a Lua number in Redis, holds
exactly. Entries refuse what passes a bound before anything moves; the wallet's Lua
functions check the would-be balances again (wallet/functions.lua).
"""

from __future__ import annotations

from typing import Annotated

from msgspec import Meta

from kernel.errors import Invalid

MAX_MOVE = 10**12
MAX_BALANCE = 2**53 - 1

# Points of one move: a JSON integer from 1 to 10^12 (the API decodes bodies strictly).
Points = Annotated[int, Meta(gt=0, le=MAX_MOVE, description="whole points, 1 to 10^12")]


def check_move(points: int, what: str = "points", field: str | None = "points") -> int:
    """`points` if one operation may move it, else Invalid naming the bound."""
    if points > MAX_MOVE:
        raise Invalid(f"{what} would be {points:,}; one operation moves at most 1,000,000,000,000 points",
                      **({"field": field} if field else {}))
    return points


def in_moves(points: int) -> list[int]:
    """`points` as legs of at most MAX_MOVE each, for a system transaction that may move more
    than one operation's worth at once (expiring a large balance)."""
    whole, rest = divmod(points, MAX_MOVE)
    return [MAX_MOVE] * whole + ([rest] if rest else [])
