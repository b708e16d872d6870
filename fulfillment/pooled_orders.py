"""An order of a built-in code-pool item: one Redis call, and one SQL transaction by the request
or by the journal projector (issue #13).

    rw_pool_redeem (Redis: points taken, the next free code taken, one journal entry; two for
      an order made for the participant)  ->  record_pooled (SQL: the order fulfilled, its
      code bound, its feed line)

Nothing is written before the call, and every refusal (no points, out of stock, a suspended
program) changes nothing. A crash after the call loses nothing: the capture's journal entry
carries the order, and the journal projector writes the same rows (`write_pool_orders`,
ON CONFLICT DO NOTHING), so the order appears whether the request or the projector gets
there first. A retry with the same Idempotency-Key (or, for prizes and approvals, the same
order id) is answered from the call's record: the same order and code, never a second.

When Redis syncs every write before it answers (AOF, `appendfsync always`: the embedded
server's way; kernel/sqlite_pool.py `journal_trusted`) the request writes no SQL at all: its
journal entry outlives a power cut, the projector writes the order within a pass (while it
keeps up; a request waits first while it is behind, and writes its own rows when it is far
behind: `place`), and the answer carries the card, read from SQL's sealed copy of the code.
Until the row is written, the participant's own reads of their orders find it in the journal
(fulfillment/unwritten.py). Otherwise the one SQL transaction stays on the request path; it
runs in one hop on SQLite's writer (kernel/sqlite_pool.py `write_chain`).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec

from fulfillment import order_records, order_writes, orders, pool_store, settlements, taxes, unwritten
from fulfillment.order_writes import NewOrder
from fulfillment.pool_store import Redemption
from fulfillment.redemption_guard import Guard
from fulfillment.taxes import TaxCheck
from kernel.errors import Conflict, DomainError, IdempotencyKeyInFlight, Unavailable
from kernel.idempotency import NO_IDEM, Idem
from kernel.ids import new_id
from kernel.sqlite_pool import journal_trusted
from programs.feed import FEED_COLUMNS, FeedEntry, feed_rows
from programs.programs import ProgramView, get_program
from wallet.accounts import raise_for
from wallet.journal import JournalEntry, Rows
from wallet.store import Outcome, WalletStore
from wallet.tables import LedgerEntry

log = logging.getLogger("rw.orders")

# The journal's length past which a pool order's request waits before it answers (see `place`):
# about a tenth of a second of a busy program's entries, above what a projector that keeps up
# leaves (a pass every 50 ms), so only a projector falling behind (a burst past what the worker
# writes) slows the requests, in proportion: PAUSE_PER_BACKLOG a PROJECTOR_KEEPS_UP entries
# waiting. A pause, not the request's own write (stop 52): the rows are the projector's to write
# either way (their ledger entries always are), so a write by the request added SQLite's work
# and its lock's contention with the projector, where a pause only lets the projector catch up.
PROJECTOR_KEEPS_UP = 256
PAUSE_PER_BACKLOG = 0.01
# Past this many entries the projector is not catching up (stopped, restarting, or outrun for
# long): the request writes its own rows. Half of what the participant's order lists and the
# pool's stock look back in the journal (unwritten.SCAN): an order left to the projector drops
# out of those reads (until it is projected; a read of the order itself looks much further)
# only once SCAN newer entries came before the projector reached it, at least as many again
# as were waiting when it was placed.
PROJECTOR_BEHIND = unwritten.SCAN // 2

# How old an order that took another code must be before the sweep finishes it in its
# request's place: far longer than a request takes.
MEND_AFTER = timedelta(seconds=60)


async def pause(seconds: float) -> None:
    """The wait of an order placed while the projector is behind (see `place`)."""
    await asyncio.sleep(seconds)


def _hold_meta(order: NewOrder, actor: dict[str, str] | None) -> str:
    # Journalled when it names an actor (an order made for the participant: the audit log's
    # row); a participant's own order is one `redemption` entry (pool.lua).
    return msgspec.json.encode({"reason": f"redemption {order.id}", **(actor or {})}).decode()


def feed_of(order: NewOrder, title: str, point_name: str, fulfilled: bool = True) -> list[FeedEntry]:
    """The order's feed lines. Fulfilled at once, a redemption's is one line, its points and
    its card together ("Redeemed 500 points for Amazon $5 gift card: your card is ready"),
    under the key of the order's ready line, which goes with a fulfilled order only
    (`write_pool_orders`); a prize's, its ready line. Not fulfilled (a failed order), the
    points line alone."""
    placed = order_records.placed_line(order, title, point_name)
    if not fulfilled:
        return placed
    if not placed or not order.points:
        return [settlements.ready_line(order.id, order.participant_id, title)]
    return [msgspec.structs.replace(placed[0], key=settlements.ready_key(order.id),
                                    text=f"{placed[0].text}: your card is ready")]


async def place(store: WalletStore, program: ProgramView, order: NewOrder, title: str,
                idem: Idem = NO_IDEM, actor: dict[str, str] | None = None,
                tax: TaxCheck | None = None, guard: Guard | None = None) -> tuple[NewOrder, str, bool]:
    """Places `order` (its tax flag already decided by `tax`, whose counter the call moves)
    from the pool: answers (the order as written, which a replay answers with its first
    attempt's id; the code's sealed secret; whether the call was replayed). `guard`: a
    participant's redemption's (fulfillment/redemption_guard.py). Raises the refusal:
    OutOfStock, insufficient points and the rest of the wallet's, IdempotencyKeyInFlight, the
    guard's."""
    call = Redemption(program_id=program.id, item_id=order.item_id, order_id=order.id,
                      participant_id=order.participant_id, points=order.points, hold_tx=new_id("tx"),
                      capture_tx=new_id("tx"), hold_meta=_hold_meta(order, actor),
                      capture_meta=order_records.carried_meta(order, "redemption"),
                      now_ms=str(int(order.created_at.timestamp() * 1000)),
                      tax_keys=tuple(tax.call_keys()) if tax else (),
                      tax_args=tuple(tax.call_args(order.face_value)) if tax else (), guard=guard)
    reply = await pool_store.redeem(store, call, idem, store.ttl)
    if not reply.ok:
        if reply.code == "tax_recount":
            raise taxes.Recount()
        if reply.code == "out_of_stock":
            raise orders.OutOfStock("this gift card is out of stock")
        if reply.code == "in_flight":
            raise IdempotencyKeyInFlight("a request with this Idempotency-Key is still running; retry shortly",
                                         retry_after=1)
        raise_for(Outcome(ok=False, code=reply.code, detail=reply.detail, replayed=reply.replayed))
    if reply.replayed and reply.meta and reply.points is not None:
        order = order_records.recorded_order(order.program_id, order.participant_id, reply.order or order.id, reply.points,
                               reply.meta)
    elif reply.order and reply.order != order.id:
        order = msgspec.structs.replace(order, id=reply.order)
    flagged_late = False
    if tax is not None and reply.tax is None and not reply.replayed:  # a library of an earlier build
        order = await taxes.placed_uncounted(store, program, order, tax)
        flagged_late = order.tax_flagged
    journalled = order.points > 0 and not reply.replayed  # a prize (no points) is journalled by nobody
    waiting = reply.waiting or 0
    if journalled and not flagged_late and journal_trusted() and (tax is None or tax.limit) \
            and waiting <= PROJECTOR_BEHIND:
        # The call's journal entry carries the order and its code, and Redis synced it before
        # answering: the journal projector writes the rows (`write_pool_orders`), and the card
        # is answered from SQL's sealed copy of the code. A code SQL says is another order's
        # is written here instead, taking the next one (see _write). So is an order whose tax
        # check read SQL (a participant's first of the year, or one near or past the
        # threshold): the next such check then finds it there, with no journal to read. And
        # so is every order while the journal holds more than PROJECTOR_BEHIND entries. While
        # it holds more than PROJECTOR_KEEPS_UP, the request waits in proportion first: the
        # requests slow down until the projector has caught up.
        if waiting > PROJECTOR_KEEPS_UP:
            await pause(PAUSE_PER_BACKLOG * waiting / PROJECTOR_KEEPS_UP)
        try:
            secret = await order_writes.code_secret(order.id, reply.code_id or "")
        except Exception:
            log.warning("order %s: its code's read failed; writing the order instead", order.id, exc_info=True)
            secret = None
        if secret is not None:
            return order, secret, False
    # The call's own code, first written: the rows its journal entry carries (see _write).
    secret = await _write(store, program, order, reply.code_id or "", title, idem, journalled=journalled)
    if flagged_late:  # the projector may have written the row first, as the call judged it
        await order_writes.flag_for_tax(order.id)
    return order, secret, bool(reply.replayed)


class _Note(msgspec.Struct, frozen=True):
    """What rw_pool_retake notes for the sweep: the order, and the key its request recorded
    under (so a give-back by the sweep turns that record into the refusal too)."""

    order: NewOrder
    idem_key: str = ""
    fingerprint: str = ""


async def _write(store: WalletStore, program: ProgramView, order: NewOrder, code_id: str, title: str,
                 idem: Idem, journalled: bool = False) -> str:
    """The order's one SQL transaction with the code the pool took for it; answers the code's
    sealed secret. A code SQL has on another order (a pool reloaded after Redis lost codes it
    had handed out, or a process of an earlier build taking codes in SQL) makes the order take
    the next one, twice at most; when none is left (or the third is another's too), its points
    go back and it is written as failed (OutOfStock), and no code is taken for it again. A
    failed SQL write answers Unavailable: the card is answered only once SQL has it, and a
    retry with the same key (or the journal projector, or the sweep) writes it.

    `journalled`: `code_id` is the one the call's journal entry carries, so its rows are the
    ones the projector writes if they are missing (write_pool_orders), and SQLite need not sync
    them on their own (kernel/sqlite_writer.py, JOURNALLED). An order that moves on to another
    code is known to Redis's note and the sweep alone: those writes sync as any other."""
    feed = feed_of(order, title, program.point_name)
    note = msgspec.json.encode(_Note(order=order, idem_key=idem.key, fingerprint=idem.fingerprint)).decode()
    try:
        for attempt in range(4):
            try:
                return await order_writes.record_pooled(order, code_id, feed, journalled=journalled and attempt == 0)
            except Conflict:
                log.error("order %s: the pool's code %s is on another order; taking the next", order.id, code_id)
            taken = await pool_store.retake(store, program.id, order.item_id, order.id, code_id, note) \
                if attempt < 2 else None
            if taken is None:
                taken = await _give_back(store, program, order, title, idem, code_id)
                if taken is None:
                    raise orders.OutOfStock(orders.SOLD_OUT)
            code_id = taken  # a concurrent attempt's code: the order holds that one now
    except DomainError:
        raise
    except Exception as error:
        log.warning("order %s: its SQL write failed; a retry writes it", order.id, exc_info=True)
        raise Unavailable("the order could not be saved just now; retry with the same Idempotency-Key") from error
    # Concurrent attempts kept moving the order on: the sweep finishes it (it is noted).
    raise Unavailable("the order could not be saved just now; retry with the same Idempotency-Key")


async def _give_back(store: WalletStore, program: ProgramView, order: NewOrder, title: str, idem: Idem,
                     given_up: str) -> str | None:
    """The order's points back (rw_pool_return, once) and the order written as failed; or,
    nothing done, the code a concurrent attempt took for it."""
    now_ms = str(int(datetime.now(timezone.utc).timestamp() * 1000))
    meta = msgspec.json.encode({"reason": f"redemption {order.id}: out of stock"}).decode()
    other = await pool_store.give_back(store, pool_store.Return(
        program_id=program.id, order_id=order.id, participant_id=order.participant_id, tx=new_id("tx"), meta=meta,
        now_ms=now_ms), order.item_id, given_up, idem)
    if other is not None:
        return other
    points = orders.points_back(order.points, program.point_name)
    await order_writes.record_failed(order, "out of stock", [*feed_of(order, title, program.point_name, False), FeedEntry(
        key=f"order:{order.id}:failed", participant_id=order.participant_id, kind="order_failed",
        text=f"Your {title} is out of stock.{points}", points=order.points or None, reference=order.id)])
    return None


async def mend(store: WalletStore, program: ProgramView, now: datetime | None = None,
               window_days: float = 2.0) -> int:
    """The order sweep's part: finishes pool orders whose points were taken and whose SQL row
    was never written: those rw_pool_retake noted (their code lives only in Redis), and any
    `redemption` entry of the last `window_days` with a code and no order (a request that
    died before it wrote the order, whose first code was another's, so the projector could not
    write it; a follower that failed). Each is written with the code the pool holds for it
    now, or, none being left, its points go back. Orders younger than MEND_AFTER are left to
    their request. Answers how many it finished; one it cannot finish now is tried again at
    the next sweep."""
    now = now or datetime.now(timezone.utc)
    finished = 0
    for order_id, raw in (await pool_store.retaken(store, program.id)).items():
        try:
            note = msgspec.json.decode(raw, type=_Note)
        except msgspec.DecodeError:
            try:  # a note of the first build of this part: the order alone
                note = _Note(order=msgspec.json.decode(raw, type=NewOrder))
            except msgspec.DecodeError:
                log.error("the pool's note of order %s is not one this build reads; left as it is", order_id)
                continue
        if now - note.order.created_at < MEND_AFTER:
            continue  # its request may still be writing it
        try:
            if await orders.order_or_none(program.id, order_id) is None:
                finished += await _finish(store, program, note.order,
                                          Idem(key=note.idem_key, fingerprint=note.fingerprint))
        except Exception:
            log.error("order %s: the sweep could not finish it; trying again later", order_id, exc_info=True)
            continue
        await pool_store.seen_written(store, program.id, order_id)
    try:
        rows = await LedgerEntry.raw(_UNWRITTEN, program.id, now - timedelta(days=window_days),
                                     now - MEND_AFTER).run()
    except Exception:
        log.error("program %s: the sweep could not read the ledger for unwritten pool orders", program.id,
                  exc_info=True)
        rows = []
    for row in rows:
        try:
            meta = order_records.decode_meta(row["metadata"])
            if meta.order is None or not meta.code:
                continue
            order = order_records.order_from(program.id, row["reference"], row["participant_id"] or "", meta.order,
                                sum(leg[2] for leg in msgspec.json.decode(row["legs"])))
            finished += await _finish(store, program, order, NO_IDEM, meta.code)
        except Exception:
            log.error("order %s: the sweep could not finish it; trying again later", row["reference"], exc_info=True)
    return finished


# `redemption` entries with a code whose order has no row and whose points did not go back
# (see `mend`); read through the partial index ledger_entries_redemptions.
_UNWRITTEN = """
    SELECT e.reference, e.participant_id, e.metadata, e.legs FROM ledger_entries e
    LEFT JOIN orders o ON o.id = e.reference
    WHERE e.program_id = {} AND e.kind = 'redemption' AND e.created_at > {} AND e.created_at < {}
        AND e.reference IS NOT NULL AND e.metadata LIKE '%"code"%' AND o.id IS NULL
        AND NOT EXISTS (SELECT 1 FROM ledger_entries v WHERE v.reference = e.reference
                        AND v.program_id = e.program_id AND v.kind = 'redemption_void')
    ORDER BY e.created_at LIMIT 500
"""


async def _finish(store: WalletStore, program: ProgramView, order: NewOrder, idem: Idem, code_hint: str = "") -> int:
    """Writes an order its request left unwritten (see `mend`): 1 when done, 0 when the pool
    knows no code for it."""
    title = (await order_records.titles([order.item_id])).get(order.item_id, "")
    code_id = await pool_store.held_code(store, program.id, order.item_id, order.id) or code_hint
    if not code_id:
        log.error("order %s: the pool holds no code for it; nothing to finish", order.id)
        return 0
    if code_id == pool_store.RETURNED:
        await _give_back(store, program, order, title, idem, code_id)  # returned; its failed row was lost
        return 1
    try:
        await _write(store, program, order, code_id, title, idem)
    except orders.OutOfStock:
        pass  # its points went back; the failed order is written
    return 1


async def write_recorded(store: WalletStore, program: ProgramView, participant_id: str, record: dict[str, Any],
                         idem: Idem) -> bool:
    """Writes the order a pool redemption recorded under `idem` whose SQL write was lost, as
    it was charged (no catalog, route or tax read: those may have changed since). False when
    the record is not a pool redemption's."""
    if not isinstance(record.get("meta"), str) or not isinstance(record.get("points"), int):
        return False
    order = order_records.recorded_order(program.id, participant_id, str(record.get("order", "")), record["points"], record["meta"])
    title = (await order_records.titles([order.item_id])).get(order.item_id, "")
    await place(store, program, order, title, idem)
    return True


# --- the journal projector's follower ------------------------------------------------------

async def write_pool_orders(program_id: str, entries: list[JournalEntry]) -> list[Rows]:
    """The follower of `redemption` entries (wired in api/projection.py): for each one
    rw_pool_redeem wrote whose order SQL has no row yet, the order, its code's binding and its
    feed lines, as the request writes them (a request that gets there meanwhile finds them
    written; one that got there first left nothing to do)."""
    carried: list[tuple[JournalEntry, order_records.Carried, str]] = []
    for entry in entries:
        if '"code"' not in entry.metadata or not entry.reference:
            continue  # a capture of an order placed in steps: its request wrote the order
        try:
            meta = order_records.decode_meta(entry.metadata)
        except msgspec.DecodeError:
            log.error("redemption entry %s carries no order this build reads", entry.transaction_id)
            continue
        if meta.order is not None and meta.code:
            carried.append((entry, meta.order, meta.code))
    there = await order_records.written([entry.reference or "" for entry, _, _ in carried])
    carried = [c for c in carried if c[0].reference not in there]
    if not carried:
        return []
    secrets = {code_id: code["secret"]
               for code_id, code in (await order_writes.pool_codes([code for _, _, code in carried])).items()}
    titles = await order_records.titles(sorted({o.item for _, o, _ in carried}))
    point_name = (await get_program(program_id)).point_name
    orders_rows: list[tuple[Any, ...]] = []
    binds: list[tuple[Any, ...]] = []
    feed: list[tuple[Any, ...]] = []
    unbacked: list[tuple[Any, ...]] = []
    unbacked_lines: list[tuple[Any, ...]] = []
    for entry, o, code in carried:
        if code not in secrets:
            continue
        order = order_records.entry_order(program_id, entry, o)
        created = order.created_at
        orders_rows.append(order_writes.fulfilled_values(order, secrets[code]))
        binds.append((order.id, created, code, order.id))
        unbacked.append((order.id, order.id))
        # Its one line (points and card: `feed_of`) stays only with a fulfilled order; one that
        # got no code is written failed with lines of its own (`_give_back`).
        unbacked_lines.append((f"{program_id}:order:{order.id}:fulfilled"[:200], order.id, "fulfilled", "fulfilled"))
        feed += feed_rows(program_id, feed_of(order, titles.get(o.item, ""), point_name), created)
    # The codes first, then the orders, then the feed: the order a request's transaction takes
    # its locks in (order_writes.record_pooled), so the two never wait on each other in a
    # circle (Postgres answers such a circle with a deadlock error). Last, an order left with
    # no code (its code is on another order in SQL) is taken out again with its lines: a code
    # is never on two orders; the request's retry gives it another (rw_pool_retake).
    return [Rows(table="pool_codes", columns=(), rows=binds, statement=order_writes.BIND_CODE),
            Rows(table="orders", columns=order_writes.ORDER_COLUMNS, rows=orders_rows),
            Rows(table="feed_items", columns=FEED_COLUMNS, rows=feed),
            Rows(table="orders", columns=(), rows=unbacked, statement=_DROP_UNBACKED),
            Rows(table="feed_items", columns=(), rows=unbacked_lines, statement=_DROP_UNBACKED_LINES)]


_DROP_UNBACKED = ("DELETE FROM orders WHERE id = ? AND status = 'fulfilled' "
                  "AND NOT EXISTS (SELECT 1 FROM pool_codes WHERE order_id = ?)")
_DROP_UNBACKED_LINES = ("DELETE FROM feed_items WHERE feed_key = ? "
                        "AND NOT EXISTS (SELECT 1 FROM orders WHERE id = ? AND status IN (?, ?))")
