"""Sweepstakes, end to end: create (commit the seed), enter (points or free), close (freeze
the entries file and publish its hash), draw (rw-fair-1 with a beacon), pay the winners.

One module per job, each imported by name (`from games.sweepstakes import entries`):

- `design`: the spec, prizes, official rules, odds and views; creating one;
- `entries`: entering (games/sweepstakes/sweepstakes.lua takes an entry in one atomic
  step: open, under the maximum, paid for) and the close (entries stop in Redis first,
  then the canonical entries file is frozen in SQL);
- `draw`: the draw and its proof (pure, in games/fairness.py);
- `payouts`: paying the winners, idempotent per pick so a retried draw never pays twice,
  and forfeits (an alternate takes over);
- `report`: what admins and participants read, and the winners report;
- `keys` and `tables`: the Redis keys and the SQL tables.

Three types live here, not in their modules: where two types share a name, the OpenAPI
document names each by its module (`sweepstakes_PointsPrize` beside games.wheel's,
`games_sweepstakes_Entry` beside programs.standings'), and those names are published.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
from msgspec import Meta

from kernel.ids import Id
from kernel.money import Points
from wallet import accounts

MAX_PICKS = 1000


class PointsPrize(msgspec.Struct, tag="points", tag_field="type", frozen=True, forbid_unknown_fields=True):
    points: Points
    quantity: Annotated[int, Meta(ge=1, le=MAX_PICKS)] = 1
    description: Annotated[str, Meta(max_length=500)] = ""


class ItemPrize(msgspec.Struct, tag="item", tag_field="type", frozen=True, forbid_unknown_fields=True):
    item_id: Id
    quantity: Annotated[int, Meta(ge=1, le=MAX_PICKS)] = 1
    description: Annotated[str, Meta(max_length=500)] = ""


class Entry(msgspec.Struct, frozen=True):
    transaction_id: str
    sweepstakes_id: str
    participant_id: str
    count: int
    points: int  # what the tickets cost (0 for free entries)
    tickets: int  # the participant's tickets now
    total_tickets: int
    balance: accounts.Balance
