"""Orders: from points to a gift card.

A redemption (fulfillment/redemptions.py) writes the order row first (status `new`, with
its pool code), then holds the points under the order's id, then makes the order visible
(`pending`, or `fulfilled` and settled for the built-in pool). So no hold ever lacks its
order, and nobody (partners see `pending` and later states) sees an order without its hold.
A crash between the steps leaves a `new` order that the sweep completes or removes.

Life: pending -> claimed -> fulfilled | failed, or cancelled by the participant while
pending. Each transition is one conditional UPDATE (it happens once, or is refused), and
then the wallet settles the hold: capture on fulfilled, void on failed or cancelled,
idempotently, with the sweep retrying any settlement a crash interrupted.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import io
import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

import msgspec
from piccolo.columns.combination import WhereRaw
from piccolo.query.methods.exists import Exists
from piccolo.query.methods.select import Select

from catalog.items import catalog_version, item_row
from catalog.titles import item_title
from fulfillment import item_names, settlements, unwritten
from fulfillment.item_names import NO_NAMES, Names
from fulfillment.delivery import CredentialLine, Credentials, Delivered, seal, unseal
from fulfillment.sealing import Sealer
from fulfillment.tables import Order
from programs.feed import FeedEntry, publish, publishing
from programs.programs import Money, ProgramView
from programs.spreadsheet import safe_cell
from programs.tables import Participant
from wallet import accounts
from kernel import keys as kernel_keys
from kernel.bounded_map import BoundedMap
from kernel.errors import Conflict, DomainError, NotFound
from kernel.pages import decode_cursor, next_cursor
from wallet.store import WalletStore
from wallet.tables import LedgerEntry
from kernel.idempotency import Idem
from kernel.clock import utc
from kernel.ids import new_id
from kernel.sqlite_pool import Statement, placeholders, run_statement, write_chain

STALE_NEW = timedelta(seconds=60)


class OutOfStock(DomainError):
    code = "out_of_stock"


# What a participant reads when the card ran out after their points were taken.
SOLD_OUT = "this gift card is out of stock; your points were returned"

OrderStatus = Literal["pending", "claimed", "fulfilled", "failed", "cancelled"]


class OrderView(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    status: str
    points: int
    item_id: str
    item_name: str
    brand: str
    face_value: Money
    source: str
    created_at: datetime
    updated_at: datetime
    participant_id: str | None = None
    partner_id: str | None = None
    failure_reason: str | None = None
    fulfilled_at: datetime | None = None
    credentials: Credentials | None = None
    credential_list: list[CredentialLine] | None = None
    redemption_instructions: str | None = None
    tax_flagged: bool = False  # admins only: reaches the tax reporting threshold without a form


class OrderPage(msgspec.Struct, frozen=True):
    items: list[OrderView]
    next_cursor: str | None


class Recipient(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    display_name: str
    email: str | None = None


class PartnerItem(msgspec.Struct, frozen=True):
    id: str
    name: str
    sku: str
    brand: str


class PartnerOrder(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    status: str
    item: PartnerItem
    face_value: Money
    recipient: Recipient
    created_at: datetime
    attempts: int
    lease_id: str | None = None
    lease_expires_at: datetime | None = None
    failure_reason: str | None = None


def hold_idem(program_id: str, order_id: str) -> Idem:
    return Idem(key=kernel_keys.idempotency(program_id, "order", f"{order_id}:hold"), fingerprint="hold")


def settle_idem(program_id: str, order_id: str, how: str) -> Idem:
    return Idem(key=kernel_keys.idempotency(program_id, "order", f"{order_id}:settle"), fingerprint=how)


def _view(row: dict[str, Any], names: dict[str, Names], sealer: Sealer | None,
          admin: bool = False) -> OrderView:
    name, _, brand, instructions = names.get(row["item_id"], NO_NAMES)
    card = None
    if sealer is not None and row["status"] == "fulfilled" and row["credentials"]:
        card = unseal(sealer, row["credentials"])
    return OrderView(
        id=row["id"], status=row["status"], points=row["points"], item_id=row["item_id"], item_name=name, brand=brand,
        face_value=Money(amount=row["face_value"], currency=row["currency"]), source=row["source"],
        created_at=utc(row["created_at"]), updated_at=utc(row["updated_at"]),
        participant_id=row["participant_id"] if admin else None, partner_id=row["partner_id"] if admin else None,
        failure_reason=row["failure_reason"], fulfilled_at=utc(row["fulfilled_at"]),
        credentials=card.credentials if card else None, credential_list=card.credential_list if card else None,
        redemption_instructions=instructions if card else None,
        tax_flagged=bool(row.get("tax_flagged")) if admin else False,
    )


async def partner_views(rows: list[dict[str, Any]],
                        names: dict[str, Names] | None = None) -> list[PartnerOrder]:
    """The orders as their partner sees them. `names`: the items' names when the caller has
    them already (`item_names.at_version`)."""
    if not rows:
        return []
    names = names if names is not None else await item_names.read({r["item_id"] for r in rows})
    people = await _recipients(sorted({r["participant_id"] for r in rows}))
    views = []
    for row in rows:
        name, sku, brand, _ = names.get(row["item_id"], NO_NAMES)
        person = people.get(row["participant_id"], {"id": row["participant_id"], "display_name": "", "email": None})
        views.append(PartnerOrder(
            id=row["id"], status=row["status"], item=PartnerItem(id=row["item_id"], name=name, sku=sku, brand=brand),
            face_value=Money(amount=row["face_value"], currency=row["currency"]),
            recipient=Recipient(id=person["id"], display_name=person["display_name"], email=person["email"]),
            created_at=utc(row["created_at"]), attempts=row["attempts"],
            lease_id=row["lease_id"], lease_expires_at=utc(row["lease_expires_at"]),
            failure_reason=row["failure_reason"]))
    return views


async def _recipients(participant_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The participants an order goes to, by id: one plain SQL read. Every claim and fulfil
    makes it, and Piccolo's select, built and compiled for each, cost the event loop about
    150 us of CPU (as measured for wallet/ledger.py's history page)."""
    statement = Statement(_recipients_sql(len(participant_ids)), tuple(participant_ids))
    return {person["id"]: person for person in await run_statement(Participant._meta.db, statement)}


@functools.lru_cache(maxsize=128)
def _recipients_sql(count: int) -> str:
    return (f"SELECT id, display_name, email FROM {Participant._meta.tablename} "
            f"WHERE id IN ({placeholders(count)})")


async def order_row(program_id: str, order_id: str) -> dict[str, Any]:
    row = await Order.select().where((Order.id == order_id) & (Order.program_id == program_id)).first().run()
    if row is None or row["status"] == "new":
        raise NotFound("no such order")
    return row


async def order_or_none(program_id: str, order_id: str) -> dict[str, Any] | None:
    """The order row in any status, `new` included (for carrying on an interrupted attempt)."""
    return await Order.select().where((Order.id == order_id) & (Order.program_id == program_id)).first().run()


async def participant_view(program_id: str, participant_id: str, order_id: str, sealer: Sealer,
                           journal: Any = None) -> OrderView:
    """`journal`: a Redis client, to find a pool order whose row is not written yet there
    (fulfillment/unwritten.py)."""
    try:
        row = await order_row(program_id, order_id)
    except NotFound:
        if journal is None:
            raise
        found = await unwritten.unwritten_orders(journal, program_id, participant_id, order_id)
        # Gone from the journal since SQL was read: written before it went.
        row = found[0] if found else await order_row(program_id, order_id)
    if row["participant_id"] != participant_id:
        raise NotFound("no such order")
    return _view(row, await item_names.read({row["item_id"]}), sealer)


async def admin_view(program_id: str, order_id: str) -> OrderView:
    row = await order_row(program_id, order_id)
    return _view(row, await item_names.read({row["item_id"]}), None, admin=True)


def listing(program_id: str, limit: int, after: str | None = None, status: str | None = None,
            participant_id: str | None = None, item_id: str | None = None, partner_id: str | None = None) -> Select:
    """A page of the program's orders, newest first; a participant's (their app's list) read in
    that order from the index orders_of_participant (participant_id, id, ...), not sorted from
    every order they ever placed."""
    where = (Order.program_id == program_id) & (Order.status != "new")
    if after is not None:
        where &= Order.id < after
    if status is not None:
        where &= Order.status == status
    if participant_id is not None:
        where &= Order.participant_id == participant_id
    if item_id is not None:
        where &= Order.item_id == item_id
    if partner_id is not None:
        where &= Order.partner_id == partner_id
    return Order.select().where(where).order_by(Order.id, ascending=False).limit(limit)


async def list_orders(program_id: str, *, limit: int = 50, cursor: str | None = None, status: OrderStatus | None = None,
                      participant_id: str | None = None, item_id: str | None = None, admin: bool = False,
                      sealer: Sealer | None = None, partner_id: str | None = None, journal: Any = None) -> OrderPage:
    """`journal` (a participant's list): a Redis client, to list their pool orders whose rows
    are not written yet too (fulfillment/unwritten.py), read before SQL."""
    after = decode_cursor(cursor)
    waiting = await unwritten.unwritten_orders(journal, program_id, participant_id) \
        if journal is not None and participant_id is not None and status in (None, "fulfilled") else []
    rows = await listing(program_id, limit + 1, after, status, participant_id, item_id, partner_id).run()
    if waiting:
        have = {r["id"] for r in rows}
        rows = sorted([*rows, *(r for r in waiting if r["id"] not in have and (after is None or r["id"] < after)
                                and item_id in (None, r["item_id"]) and partner_id in (None, r["partner_id"]))],
                      key=lambda r: r["id"], reverse=True)[:limit + 1]
    names = await item_names.read({r["item_id"] for r in rows})
    return OrderPage(items=[_view(r, names, sealer, admin=admin) for r in rows[:limit]],
                     next_cursor=next_cursor([r["id"] for r in rows], limit))


async def export_csv(program_id: str, status: OrderStatus | None = None) -> str:
    where = (Order.program_id == program_id) & (Order.status != "new")
    if status is not None:
        where &= Order.status == status
    rows = await Order.select().where(where).order_by(Order.id).run()
    names = await item_names.read({r["item_id"] for r in rows})
    out = io.StringIO()
    # RFC 4180 line ends: the csv module then quotes every field holding a CR or an LF (with
    # "\n" alone it would write a bare CR unquoted, and a spreadsheet would split the row).
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["order_id", "created_at", "status", "participant_id", "item_id", "item", "brand", "face_value",
                     "currency", "points", "partner_id", "fulfilled_at", "failure_reason"])
    for r in rows:
        name, _, brand, _ = names.get(r["item_id"], ("", "", "", ""))
        fulfilled = utc(r["fulfilled_at"])
        writer.writerow([r["id"], utc(r["created_at"]).isoformat(), r["status"], r["participant_id"],
                         r["item_id"], safe_cell(name), safe_cell(brand), r["face_value"], r["currency"], r["points"],
                         r["partner_id"], fulfilled.isoformat() if fulfilled else "",
                         safe_cell(r["failure_reason"] or "")])
    return out.getvalue()


async def _transition(program_id: str, order_id: str, partner_id: str | None, to: str,
                      allowed: tuple[str, ...], lease_id: str | None, values: dict[Any, Any]) -> dict[str, Any]:
    where = (Order.id == order_id) & (Order.program_id == program_id) & Order.status.is_in(list(allowed))
    if partner_id is not None:
        where &= Order.partner_id == partner_id
    if lease_id is not None:
        where &= Order.lease_id == lease_id
    now = datetime.now(timezone.utc)
    changed = await Order.update({Order.status: to, Order.updated_at: now, **values}).where(where) \
        .returning(*Order.all_columns()).run()
    if changed:
        return changed[0]  # the row as the update left it: no second read
    row = await Order.select().where((Order.id == order_id) & (Order.program_id == program_id)).first().run()
    if row is None or row["status"] == "new" or (partner_id is not None and row["partner_id"] != partner_id):
        raise NotFound("no such order")
    if row["status"] == to and (lease_id is None or row["lease_id"] == lease_id):
        return row  # the same transition again: answered, nothing applied twice
    if row["status"] == "claimed" and lease_id is not None and row["lease_id"] != lease_id:
        raise Conflict("this lease expired and the order was claimed again; it is no longer yours")
    raise Conflict(f"the order is {row['status']}; it cannot become {to}")


async def settle(store: WalletStore, row: dict[str, Any]) -> None:
    """Ends the order's hold: capture when fulfilled, void when failed or cancelled. Idempotent."""
    if row["settled_at"] is None:
        await _end_hold(store, row)
        await _settled_mark(row["id"], datetime.now(timezone.utc)).run()


def _settled_mark(order_id: str, at: datetime) -> Any:
    return Order.update({Order.settled_at: at}).where(Order.id == order_id).returning(Order.id)


async def _end_hold(store: WalletStore, row: dict[str, Any], ready: str = "") -> None:
    """`ready`: the participant's line of a fulfilled order, carried in the capture's journal
    entry for the projector to write with the settled mark (fulfillment/settlements.py)."""
    if not row["points"]:
        return
    how = "capture" if row["status"] == "fulfilled" else "void"
    idem = settle_idem(row["program_id"], row["id"], how)
    try:
        if how == "capture":
            await accounts.capture(store, row["program_id"], row["participant_id"], row["id"], idem,
                                   kind="redemption", extra={settlements.READY: ready} if ready else None)
        else:
            await accounts.void(store, row["program_id"], row["participant_id"], row["id"], idem,
                                kind="redemption_void")
    except Conflict:
        pass  # the hold was already resolved this way by an earlier, interrupted settlement


async def _settled_and_told(store: WalletStore, row: dict[str, Any], feed: list[FeedEntry]) -> dict[str, Any]:
    """`settle`, then the settled mark and the participant's feed lines in one write
    transaction (they were two, and the partner's fulfil waited on each under load); answers
    the row as settled. Settled already (the same transition again): the lines only, which a
    crash before them may have lost."""
    if row["settled_at"] is not None:
        await publish(row["program_id"], feed)
        return row
    await _end_hold(store, row)
    now = datetime.now(timezone.utc)
    await write_chain(Order._meta.db, _settled_mark(row["id"], now), publishing(row["program_id"], feed))
    return {**row, "settled_at": now}


async def fulfill(store: WalletStore, sealer: Sealer, program: ProgramView, order_id: str, partner_id: str | None,
                  card: Delivered, lease_id: str | None = None,
                  allowed: tuple[str, ...] = ("claimed",)) -> dict[str, Any]:
    row, _ = await _fulfilled(store, sealer, program, order_id, partner_id, card, lease_id, allowed)
    return row


async def fulfil_for_partner(store: WalletStore, sealer: Sealer, program: ProgramView, order_id: str,
                             partner_id: str | None, card: Delivered, lease_id: str | None = None) -> PartnerOrder:
    """A partner's fulfil, answered as the partner sees the order: the item's names are read
    once (kept per catalog version), for the participant's feed line and the answer both."""
    row, names = await _fulfilled(store, sealer, program, order_id, partner_id, card, lease_id, ("claimed",))
    return (await partner_views([row], names))[0]


async def _fulfilled(store: WalletStore, sealer: Sealer, program: ProgramView, order_id: str,
                     partner_id: str | None, card: Delivered, lease_id: str | None,
                     allowed: tuple[str, ...]) -> tuple[dict[str, Any], dict[str, Names]]:
    # The catalog's version is read beside the transition, not after it: one step fewer in
    # sequence for the partner (the names are still read from SQL only after it). The
    # transition's own refusal (404, 409) is the answer whatever the read does.
    reading = asyncio.ensure_future(catalog_version(store.client, program.id))
    try:
        row = await _transition(program.id, order_id, partner_id, "fulfilled", allowed, lease_id, {
            Order.credentials: seal(sealer, card), Order.fulfilled_at: datetime.now(timezone.utc)})
    except BaseException:
        reading.cancel()
        raise
    version = await reading
    # The same fulfil again is answered idempotently; other credentials for a delivered order
    # would tell the partner its code was taken while the participant keeps the first one.
    if row["credentials"] and unseal(sealer, row["credentials"]) != card:
        raise Conflict("the order is already fulfilled with other credentials; the first ones stand")
    names = await item_names.at_version(program.id, {row["item_id"]}, version)
    name, _, brand, _ = names.get(row["item_id"], NO_NAMES)
    ready = settlements.ready_line(order_id, row["participant_id"], item_title(brand, name))
    if row["points"] and row["settled_at"] is None:
        # Its capture's journal entry carries the line: the projector writes it with the settled
        # mark, so the partner waits for no SQL write after the capture (issue #13: claim ->
        # fulfil was the load mix's last operation past its p99 target at 1,000 requests/s).
        await _end_hold(store, row, ready=ready.text)
        return row, names
    return await _settled_and_told(store, row, [ready]), names


def points_back(points: int | None, point_name: str) -> str:
    """The feed's closing words for an order whose points went back ("" when none did)."""
    return f" {points:,} {point_name} returned." if points else ""


async def fail(store: WalletStore, program: ProgramView, order_id: str, partner_id: str | None, reason: str,
               lease_id: str | None = None, allowed: tuple[str, ...] = ("claimed",)) -> dict[str, Any]:
    row = await _transition(program.id, order_id, partner_id, "failed", allowed, lease_id,
                            {Order.failure_reason: reason})
    points = points_back(row["points"], program.point_name)
    return await _settled_and_told(store, row, [FeedEntry(
        key=f"order:{order_id}:failed", participant_id=row["participant_id"], kind="order_failed",
        text=f"Order {order_id} failed: {reason}.{points}", points=row["points"] or None, reference=order_id)])


async def cancel(store: WalletStore, program: ProgramView, participant_id: str, order_id: str,
                 sealer: Sealer) -> OrderView:
    row = await order_row(program.id, order_id)
    if row["participant_id"] != participant_id:
        raise NotFound("no such order")
    row = await _transition(program.id, order_id, None, "cancelled", ("pending",), None, {})
    await settle(store, row)
    return _view(row, await item_names.read({row["item_id"]}), sealer)


async def cancel_for_participant(store: WalletStore, program: ProgramView, order_id: str, reason: str,
                                 sealer: Sealer) -> OrderView:
    """A program admin cancels an order no partner has delivered yet (pending, or claimed under
    a lease): the held points go back to the participant, who reads why in the feed, and a
    partner's later fulfil or fail of it answers a conflict. The same cancel again answers the
    cancelled order and returns nothing twice."""
    row = await _transition(program.id, order_id, None, "cancelled", ("pending", "claimed"), None,
                            {Order.failure_reason: reason, Order.lease_id: None})
    points = points_back(row["points"], program.point_name)
    row = await _settled_and_told(store, row, [FeedEntry(
        key=f"order:{order_id}:cancelled", participant_id=row["participant_id"], kind="order_cancelled",
        text=f"Order {order_id} was cancelled: {reason}.{points}", points=row["points"] or None, reference=order_id)])
    return _view(row, await item_names.read({row["item_id"]}), sealer)


async def redeliver(program: ProgramView, order_id: str) -> OrderView:
    """Puts a delivered card in front of its participant again (lost the message, new phone):
    a feed line pointing to the card in the app. The code itself never travels by email or
    into the outbox; it stays sealed and is shown only in the participant's own order."""
    row = await order_row(program.id, order_id)
    if row["status"] != "fulfilled":
        raise Conflict(f"the order is {row['status']}; only a delivered card can be delivered again")
    names = await item_names.read({row["item_id"]})
    name, _, brand, _ = names.get(row["item_id"], NO_NAMES)
    await publish(program.id, [FeedEntry(
        key=f"order:{order_id}:redelivered:{new_id('rdl')}", participant_id=row["participant_id"],
        kind="order_redelivered", text=f"Your {item_title(brand, name)} was delivered again: open it in Rewards",
        reference=order_id)])
    return _view(row, names, None, admin=True)


async def _ended_in_ledger(program_id: str, row: dict[str, Any]) -> bool:
    """Whether the SQL ledger holds the entry that ended the order's hold: its capture (a
    fulfilled order) or its void (a failed or cancelled one), both referencing the order."""
    return bool(await ending_entry(program_id, row["id"], row["status"]).run())


def ending_entry(program_id: str, order_id: str, status: str) -> Exists:
    """The query of `_ended_in_ledger`. The kind is written into the SQL, not bound: Postgres
    plans a bound kind generically after a few runs, and then cannot use the partial index of
    that kind by reference (ledger_entries_redemption_refs, ledger_entries_voids), reading
    every entry of the program."""
    kind = WhereRaw("kind = 'redemption'") if status == "fulfilled" else WhereRaw("kind = 'redemption_void'")
    return LedgerEntry.exists().where(
        (LedgerEntry.program_id == program_id) & (LedgerEntry.reference == order_id) & kind)


def unsettled(program_id: str) -> Select:
    """The program's ended orders whose hold is still to settle (the sweep's first read), through
    the partial index orders_unsettled, which holds those only (not every order the program
    ever had, nor its open ones): its statuses are written into the SQL, as the index has them."""
    return Order.select().where((Order.program_id == program_id) & Order.settled_at.is_null()
                                & WhereRaw("status IN ('fulfilled', 'failed', 'cancelled')"))


log = logging.getLogger("rw.orders")
_unsettleable: BoundedMap[str, bool] = BoundedMap(10_000)  # orders warned of once by this process


async def sweep(store: WalletStore, program_id: str, now: datetime | None = None) -> int:
    """Finishes what a crash interrupted: settles ended orders whose hold is still open, and
    completes (or removes) orders stuck in `new`. Answers how many orders it touched."""
    now = now or datetime.now(timezone.utc)
    touched = 0
    ended = await unsettled(program_id).run()
    for row in ended:
        try:
            await settle(store, row)
        except NotFound:
            # Its hold is not in Redis (data lost there, or the order came from elsewhere).
            # When the ledger holds the capture or void that ended it, only the mark was
            # lost; otherwise nothing here can end it, and an operator can (README,
            # Fulfillment). Either way the program's other orders still settle: one such
            # order used to fail the whole sweep at every round, and its later steps with it.
            if await _ended_in_ledger(program_id, row):
                await _settled_mark(row["id"], datetime.now(timezone.utc)).run()
            else:
                if _unsettleable.get(row["id"]) is None:
                    _unsettleable.put(row["id"], True)
                    log.warning("order %s of program %s is %s but its hold is not in Redis nor ended in the "
                                "ledger: left unsettled", row["id"], program_id, row["status"])
                continue
        touched += 1
    stuck = await Order.select().where((Order.program_id == program_id) & (Order.status == "new")
                                       & (Order.created_at < now - STALE_NEW)).run()
    if stuck:
        # Imported here: placing an order builds on this module.
        from fulfillment.redemptions import labels_of, resume
        from programs.programs import get_program

        program = await get_program(program_id)
    for row in stuck:
        touched += 1
        try:
            await resume(store, program, row, await labels_of(await item_row(program_id, row["item_id"])))
        except DomainError:
            continue  # the hold was refused: the order is gone, nothing was held
    return touched
