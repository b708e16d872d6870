"""A participant's pool orders whose rows the journal projector has not written yet (issue #13).

A code-pool redemption answers its card with no SQL write on its request when Redis syncs
every write (fulfillment/pooled_orders.py); its order row follows within a projection pass.
Until then the participant's own reads of their orders (`GET /v1/me/redemptions` and
`.../{id}`) find it here: in the program's journal, which holds exactly the entries not yet
projected (an entry leaves it once its rows are committed), as the `redemption` entry that
carries the order and its code. Read the journal first and SQL after: an entry gone from the
journal was in SQL before it went, so one of the two reads always has the order.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from fulfillment import order_records, order_writes
from fulfillment.tables import Order
from kernel.errors import Unavailable
from wallet import keys
from wallet.journal import BadEntry, JournalEntry, entry_field, parse_entry

# How far back the read looks in the journal (as games/spin_projection.py PENDING_SCAN for
# spins): the projector keeps the journal to what is pending, so this bounds the read's cost
# only when the projector has fallen this far behind (those orders show once projected). A
# pool order's request writes its own rows past half of this (pooled_orders.PROJECTOR_BEHIND).
SCAN = 2_000
# The tax year's total must count every such order, and a read of one order must find it: they
# read the whole journal up to this, and a journal longer than this (a projector stopped for a
# while) makes them wait (503).
TAX_SCAN = 50_000


# The columns a fulfilled pool order leaves empty (a lease, a failure).
_EMPTY = {column._meta.name: None for column in Order._meta.columns}


async def _carried(client: Any, program_id: str, participant_id: str | None,
                   whole: bool = False) -> list[tuple[JournalEntry, order_records.Carried, str]]:
    """The pool orders among the SCAN newest entries of the journal (one participant's, or
    all), newest first: each one's entry, the order it carries and its code's id. `whole`: a
    read that must see every entry, up to TAX_SCAN; it raises Unavailable when the journal
    holds more."""
    found = []
    scan = TAX_SCAN if whole else SCAN
    read = await client.xrevrange(keys.journal(program_id), count=scan)
    if whole and len(read) >= scan:
        raise Unavailable("the orders waiting to be recorded are too many to read now; retry shortly",
                          retry_after=5)
    for stream_id, fields in read:
        # Most entries are others' or not redemptions: skip them before parsing.
        if entry_field(fields, "kind") != "redemption" or (
                participant_id is not None and entry_field(fields, "participant") != participant_id):
            continue
        try:
            entry = parse_entry(stream_id, fields)
            meta = order_records.decode_meta(entry.metadata) if '"code"' in entry.metadata else None
        except (BadEntry, msgspec.DecodeError):
            continue
        if entry.reference and meta is not None and meta.order is not None and meta.code:
            found.append((entry, meta.order, meta.code))
    return found


async def unwritten_orders(client: Any, program_id: str, participant_id: str,
                           order_id: str | None = None) -> list[dict[str, Any]]:
    """The participant's pool orders the journal still holds (only `order_id`, when given), as
    rows of the orders table with their code's sealed secret, newest first."""
    # One order (a read that missed it in SQL) is looked for in the whole journal: its card
    # may have been answered already, so it is never reported missing while it waits.
    orders = [(order_records.entry_order(program_id, entry, carried), code)
              for entry, carried, code in await _carried(client, program_id, participant_id, whole=order_id is not None)
              if order_id is None or entry.reference == order_id]
    secrets = await order_writes.code_secrets([(order.id, code) for order, code in orders])
    return [{**_EMPTY, **dict(zip(order_writes.ORDER_COLUMNS, order_writes.fulfilled_values(order, secrets[order.id])))}
            for order, _ in orders if order.id in secrets]


async def unwritten_values(client: Any, program_id: str, participant_id: str,
                           whole: bool = True) -> list[tuple[str, datetime, int]]:
    """The participant's pool orders the journal still holds, as (order id, when it was made,
    face value): what their tax year's total has not counted yet (fulfillment/taxes.py).
    Raises Unavailable when the journal is too long to read whole (TAX_SCAN); not `whole`, a
    page that shows the total reads the newest entries only, as the order lists do."""
    orders = [order_records.entry_order(program_id, entry, carried)
              for entry, carried, _ in await _carried(client, program_id, participant_id, whole)]
    return [(order.id, order.created_at, order.face_value) for order in orders]


async def unwritten_codes(client: Any, program_id: str) -> set[str]:
    """The ids of the codes the program's pool orders took whose rows are not written yet:
    handed out, though SQL does not say so yet (the pool's stock counts them used)."""
    return {code for _, _, code in await _carried(client, program_id, None)}
