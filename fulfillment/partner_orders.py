"""An order of an external partner's item: one Redis call, one SQL transaction (issue #13).

    rw_partner_hold (Redis: the points held under the order, a `hold` journal entry carrying
    the order, the request's record)  ->  record_pending (SQL: the order pending, its webhook,
    its feed lines)

Nothing is written before the call, and every refusal (no points, a suspended program)
changes nothing. A crash after the call loses nothing: the hold's journal entry carries the
order, and the journal projector writes the same rows (`write_partner_orders`, ON CONFLICT
DO NOTHING, the webhook's id following from the order's), whichever gets there first. A
retry with the same Idempotency-Key is answered from the call's record: the same order, its
points held once. A prize costs no points and moves none: it is the SQL transaction alone,
and its own caller (a spin, a sweepstakes payout, their sweeps) places it again by its id.

The one SQL transaction stays on the request path because the partner's claim queue, the
admin's order list and the participant's own read SQL, and a retry or a GET right after the
answer must find the order there.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec

from fulfillment import order_records, order_writes, redemption_guard, taxes
from fulfillment.order_writes import NewOrder
from fulfillment.redemption_guard import Guard
from fulfillment.tables import Partner
from fulfillment.taxes import TaxCheck
from kernel.errors import IdempotencyKeyInFlight, Unavailable
from kernel.idempotency import NO_IDEM, Idem
from kernel.ids import new_id
from kernel.keys import no_record
from kernel.redis_functions import FunctionStore
from kernel.replies import Reply, reply_text
from programs.feed import FEED_COLUMNS, feed_rows
from programs.programs import ProgramView, get_program
from wallet import keys as wallet_keys
from wallet.accounts import raise_for
from wallet.journal import JournalEntry, Rows
from wallet.store import Outcome
from wallet.tables import LedgerEntry

log = logging.getLogger("rw.orders")

# How old a held order with no row must be before the sweep writes it in its request's and
# the projector's place: far longer than either takes.
MEND_AFTER = timedelta(seconds=60)


class HoldReply(Reply, frozen=True):
    order: str | None = None
    tx: str | None = None
    points: int | None = None  # what the order was charged (a replay's is its first attempt's)
    meta: str | None = None  # recorded: the hold's metadata (the order's fields)
    tax: int | None = None  # 1: the call counted the order for its tax year (fulfillment/taxes.lua)


_decode = msgspec.json.Decoder(HoldReply).decode


async def _hold(store: FunctionStore, order: NewOrder, idem: Idem, ttl: int, actor: dict[str, str] | None,
                tax: TaxCheck | None, guard: Guard | None) -> HoldReply:
    """The hold's call; a guarded one raises what its guard found (redemption_guard.check)."""
    assert guard is None or tax is not None, "a guard follows the tax counter's keys"
    p = order.program_id
    key_list = [idem.key or no_record(p), wallet_keys.journal(p), wallet_keys.config(p),
                wallet_keys.wallet(p, order.participant_id), wallet_keys.hold(p, order.id),
                *(tax.call_keys() if tax else []), *(guard.call_keys() if guard else [])]
    meta = order_records.carried_meta(order, f"redemption {order.id}", actor)
    args = [idem.fingerprint, ttl, order.id, order.participant_id, order.points, new_id("tx"), meta,
            int(order.created_at.timestamp() * 1000), *(tax.call_args(order.face_value) if tax else []),
            *(guard.call_args() if guard else [])]
    raw = await store.fcall("rw_partner_hold", key_list, args)
    reply = _decode(raw)
    if guard is not None:
        redemption_guard.check(raw, reply.code, reply.detail, reply.replayed)
    return reply


async def place(store: Any, program: ProgramView, order: NewOrder, partner: dict[str, Any], title: str,
                idem: Idem = NO_IDEM, actor: dict[str, str] | None = None,
                tax: TaxCheck | None = None, guard: Guard | None = None) -> tuple[NewOrder, bool]:
    """Places `order` (its tax flag already decided by `tax`, whose counter the call moves)
    with `partner`: answers (the order as written, which a replay answers with its first
    attempt's id and fields; whether the call was replayed). `actor` ({"actor",
    "approved_by"}): who redeemed for the participant, in the hold's journal entry. `guard`:
    a participant's redemption's (fulfillment/redemption_guard.py). Raises the refusal
    (insufficient points and the rest of the wallet's, IdempotencyKeyInFlight, the guard's),
    or Unavailable when the SQL write failed: a retry with the same key, or the journal
    projector, writes it."""
    replayed = flagged_late = False
    if order.points > 0:
        reply = await _hold(store, order, idem, store.ttl, actor, tax, guard)
        if not reply.ok:
            if reply.code == "tax_recount":
                raise taxes.Recount()
            if reply.code == "in_flight":
                raise IdempotencyKeyInFlight("a request with this Idempotency-Key is still running; retry shortly",
                                             retry_after=1)
            raise_for(Outcome(ok=False, code=reply.code, detail=reply.detail, replayed=reply.replayed))
        replayed = bool(reply.replayed)
        if replayed and reply.meta and reply.points is not None:  # as the first attempt charged it
            order = order_records.recorded_order(order.program_id, order.participant_id, reply.order or order.id,
                                                 reply.points, reply.meta)
        elif tax is not None and reply.tax is None and not replayed:  # a library of an earlier build
            order = await taxes.placed_uncounted(store, program, order, tax)
            flagged_late = order.tax_flagged
    elif tax is not None:  # a prize: counted before its row is written, as a held order is
        await taxes.count(store, program, order.participant_id, order.face_value, order.created_at, tax.seed)
    if order.partner_id != partner.get("id"):  # a replay: the partner it was routed to then
        partner = await _partner(order.partner_id)
    # A held order's first write: the hold's journal entry carries it (see _write).
    await _write(program, order, partner, title, journalled=order.points > 0 and not replayed)
    if flagged_late:  # the projector may have written the row first, as the call judged it
        await order_writes.flag_for_tax(order.id)
    return order, replayed


async def _write(program: ProgramView, order: NewOrder, partner: dict[str, Any], title: str,
                 journalled: bool = False) -> bool:
    """The order's one SQL transaction; False when it was written already. A failure answers
    Unavailable (a retry, the journal projector or the sweep writes it). `journalled`: the
    rows the call's `hold` entry carries, which the projector writes if they are missing, so
    SQLite need not sync them on their own (order_writes.record_pending)."""
    try:
        return await order_writes.record_pending(order, partner,
                                                 order_records.placed_line(order, title, program.point_name),
                                                 journalled=journalled)
    except Exception as error:
        log.warning("order %s: its SQL write failed; a retry or the journal projector writes it", order.id,
                    exc_info=True)
        raise Unavailable("the order could not be saved just now; retry shortly (with the same Idempotency-Key, "
                          "if the request had one)") from error


async def _partner(partner_id: str) -> dict[str, Any]:
    row = await Partner.select(Partner.id, Partner.webhook_url).where(Partner.id == partner_id).first().run()
    return row or {"id": partner_id}


async def _title(item_id: str) -> str:
    return (await order_records.titles([item_id])).get(item_id, "")


async def write_recorded(program: ProgramView, participant_id: str, record: dict[str, Any]) -> bool:
    """Writes the order a partner redemption recorded (its hold is made) whose SQL write was
    lost, as it was charged: no catalog, route or tax read. False when the record is not such
    a redemption's."""
    if not isinstance(record.get("meta"), str) or not isinstance(record.get("points"), int) or "code_id" in record:
        return False
    order = order_records.recorded_order(program.id, participant_id, str(record.get("order", "")), record["points"],
                                         record["meta"])
    await _write(program, order, await _partner(order.partner_id), await _title(order.item_id))
    return True


async def write_held(store: Any, program: ProgramView, order_id: str, participant_id: str) -> NewOrder | None:
    """The order an earlier attempt with this order id (an approval's, a redemption made for
    the participant) held the points of and died before writing: written now as it was
    charged, before any route or tax check could refuse what is paid for. None when no such
    hold carries it."""
    meta, points, holder = await store.client.hmget(wallet_keys.hold(program.id, order_id), "meta", "points",
                                                    "participant")
    if not meta or holder is None or reply_text(holder) != participant_id:
        return None
    order = order_records.recorded_order(program.id, participant_id, order_id, int(points), reply_text(meta))
    await _write(program, order, await _partner(order.partner_id), await _title(order.item_id))
    return order


# `hold` entries that carry an order (rw_partner_hold) whose order has no row; read through
# the partial index ledger_entries_holds.
_UNWRITTEN = """
    SELECT e.reference, e.participant_id, e.metadata, e.legs FROM ledger_entries e
    LEFT JOIN orders o ON o.id = e.reference
    WHERE e.program_id = {} AND e.kind = 'hold' AND e.created_at > {} AND e.created_at < {}
        AND e.reference IS NOT NULL AND e.metadata LIKE '%"order"%' AND o.id IS NULL
    ORDER BY e.created_at LIMIT 500
"""


async def mend(program: ProgramView, now: datetime | None = None, window_days: float = 2.0) -> int:
    """The order sweep's part: writes the partner orders whose points rw_partner_hold held and
    whose row neither their request nor the journal projector wrote (its follower failed, or
    a process of an earlier build projected the entry), as they were charged. Entries younger
    than MEND_AFTER are left to them. Answers how many it wrote; one it cannot write now is
    tried again at the next sweep."""
    now = now or datetime.now(timezone.utc)
    try:
        rows = await LedgerEntry.raw(_UNWRITTEN, program.id, now - timedelta(days=window_days),
                                     now - MEND_AFTER).run()
    except Exception:
        log.error("program %s: the sweep could not read the ledger for unwritten partner orders", program.id,
                  exc_info=True)
        return 0
    written = 0
    for row in rows:
        try:
            carried = order_records.decode_meta(row["metadata"]).order
            if carried is None:
                continue
            order = order_records.order_from(program.id, row["reference"], row["participant_id"] or "", carried,
                                             sum(leg[2] for leg in msgspec.json.decode(row["legs"])))
            written += await _write(program, order, await _partner(order.partner_id), await _title(order.item_id))
        except Exception:
            log.error("order %s: the sweep could not write it; trying again later", row["reference"], exc_info=True)
    return written


# --- the journal projector's follower ------------------------------------------------------

async def write_partner_orders(program_id: str, entries: list[JournalEntry]) -> list[Rows]:
    """The follower of `hold` entries (wired in api/projection.py): for each one
    rw_partner_hold wrote whose order SQL has no row yet, the order pending, its webhook and
    its feed line, as the request writes them (a request that gets there meanwhile finds them
    written; one that got there first left nothing to do but, at most, its webhook)."""
    carried: list[NewOrder] = []
    for entry in entries:
        if '"order"' not in entry.metadata or not entry.reference:
            continue  # a hold of something else, or an order an earlier build wrote first
        try:
            meta = order_records.decode_meta(entry.metadata)
        except msgspec.DecodeError:
            log.error("hold entry %s carries no order this build reads", entry.transaction_id)
            continue
        if meta.order is not None:
            carried.append(order_records.entry_order(program_id, entry, meta.order))
    there = await order_records.written([o.id for o in carried])
    # An order its request wrote with no webhook delivery, by a route it kept from before its
    # partner's webhook was set (fulfillment/item_routes.py), is told now if still pending.
    to_tell = [o for o in carried if there.get(o.id) == ("pending", o.partner_id)]
    carried = [o for o in carried if o.id not in there]
    if not carried and not to_tell:
        return []
    telling = [*carried, *to_tell]
    hooked = {r["id"] for r in await Partner.select(Partner.id, Partner.webhook_url).where(
        Partner.id.is_in(sorted({o.partner_id for o in telling}))).run() if r["webhook_url"]}
    announced = [order_writes.announcement_values(o, o.partner_id) for o in telling if o.partner_id in hooked]
    if not carried:
        return [Rows(table="webhook_deliveries", columns=order_writes.WEBHOOK_COLUMNS, rows=announced)] \
            if announced else []
    titles = await order_records.titles(sorted({o.item_id for o in carried}))
    point_name = (await get_program(program_id)).point_name
    feed: list[tuple[Any, ...]] = []
    for order in carried:
        feed += feed_rows(program_id, order_records.placed_line(order, titles.get(order.item_id, ""), point_name),
                          order.created_at)
    # The orders first, then their webhooks, then the feed: the order a request's transaction
    # takes its locks in (order_writes.record_pending), so the two never wait in a circle.
    return [Rows(table="orders", columns=order_writes.ORDER_COLUMNS,
                 rows=[order_writes.pending_values(o) for o in carried]),
            Rows(table="webhook_deliveries", columns=order_writes.WEBHOOK_COLUMNS, rows=announced),
            Rows(table="feed_items", columns=FEED_COLUMNS, rows=feed)]
