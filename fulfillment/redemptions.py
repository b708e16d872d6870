"""Placing an order, end to end: the built-in pool fulfils it at once, an external partner is
told by webhook (and can always pull).

Either is one Redis call and one SQL transaction: fulfillment/pooled_orders.py for a
built-in pool item, fulfillment/partner_orders.py for an external partner's. The Redis call
journals the order with the entry that pays for it, so a crash between the two leaves the
journal projector to write it, and a retry with the same Idempotency-Key is answered from
the call's record: the same order, never a second.

Orders an earlier build placed in steps (written `new` before their hold) are carried on by
`resume`, from a retry or from the sweep (`orders.sweep`, after `STALE_NEW`): the hold is
idempotent per order and each SQL step is conditional on `status = 'new'`, so nothing is
held twice. The answer is built from what the request already holds: no re-select.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

import msgspec

from catalog import keys as catalog_keys
from catalog.items import Pricing, catalog_version, item_row, redemption_points
from catalog.tables import Brand
from catalog.titles import item_title
from fulfillment import order_writes, orders, partner_orders, pooled_orders, taxes, webhooks
from fulfillment.code_pool import take_code, take_code_id
from fulfillment.order_writes import NewOrder
from fulfillment.delivery import Credentials, delivered, unseal
from fulfillment.orders import SOLD_OUT, OrderView, OutOfStock
from fulfillment.item_routes import ItemRoute, item_route, kept
from fulfillment.redemption_guard import CatalogMoved, Guard, Pinned, Recorded, guard_of
from fulfillment.partners import route
from fulfillment.sealing import Sealer
from fulfillment.tables import Partner
from programs.feed import FeedEntry
from programs.programs import Money, ProgramView
from wallet import accounts
from kernel.errors import Conflict, DomainError, Invalid, NotFound, Unavailable
from kernel.gated import judge_open_gate
from kernel.idempotency import NO_IDEM, Idem, once, peek_with
from kernel.ids import new_id
from kernel.clock import utc
from wallet.store import WalletStore


class Labels(msgspec.Struct, frozen=True):
    """How the item reads in feed lines and views."""

    item_name: str
    brand: str
    instructions: str

    @property
    def title(self) -> str:
        return item_title(self.brand, self.item_name)


class Finished(msgspec.Struct, frozen=True):
    status: Literal["pending", "fulfilled", "failed"]
    secret: str | None = None  # the pool code's sealed credentials


async def dispatch(store: WalletStore, sealer: Sealer, program: ProgramView, row: dict[str, Any],
                   partner: dict[str, Any]) -> bool:
    """Starts an already pending order with its partner (re-routing, old pending orders): the
    built-in pool fulfils it at once (or fails it, returning the points, when out of stock:
    answers False); an external partner is told by webhook and can always pull."""
    if partner["kind"] == "code_pool":
        code = await take_code(store, program.id, row["id"], row["item_id"], sealer)
        if code is None:
            await orders.fail(store, program, row["id"], None, "out of stock", allowed=("pending",))
            return False
        await orders.fulfill(store, sealer, program, row["id"], None,
                             delivered(msgspec.convert(code, Credentials), None), allowed=("pending",))
    else:
        await webhooks.enqueue(program.id, partner, row["id"])
    return True


def _feed(program: ProgramView, order: NewOrder, labels: Labels, fulfilled: bool) -> list[FeedEntry]:
    return pooled_orders.feed_of(order, labels.title, program.point_name, fulfilled)


async def _hold(store: WalletStore, order: NewOrder, actor: dict[str, str] | None = None) -> None:
    """The order's points from available to held; refused (a domain error) leaves no order.
    `actor`: who redeemed for the participant, in the hold's journal entry (the audit log's row)."""
    if order.points <= 0:
        return
    try:
        await accounts.hold(store, order.program_id, order.participant_id, order.points, order.id,
                            orders.hold_idem(order.program_id, order.id), reason=f"redemption {order.id}", kind="hold",
                            actor=actor)
    except DomainError:
        await order_writes.drop_order(order.id)  # the refusal is recorded under the order: a retry gets it again
        raise


async def _finish(store: WalletStore, program: ProgramView, order: NewOrder, partner: dict[str, Any],
                  secret: str | None, labels: Labels) -> Finished:
    """After the hold: the pool's order captured then fulfilled, or the partner's announced."""
    if partner["kind"] != "code_pool":
        await order_writes.announce_pending(order.id, program.id, partner, _feed(program, order, labels, False))
        return Finished(status="pending")
    if secret is None:
        await orders.fail(store, program, order.id, None, "out of stock", allowed=("new",))
        return Finished(status="failed")
    if order.points > 0:
        try:
            await accounts.capture(store, order.program_id, order.participant_id, order.id,
                                   orders.settle_idem(order.program_id, order.id, "capture"), kind="redemption")
        except Conflict:
            pass  # captured by an earlier, interrupted attempt
    await order_writes.fulfil_pooled(order.id, program.id, secret, _feed(program, order, labels, True))
    return Finished(status="fulfilled", secret=secret)


def _new_order(row: dict[str, Any]) -> NewOrder:
    return NewOrder(id=row["id"], program_id=row["program_id"], participant_id=row["participant_id"],
                    item_id=row["item_id"], partner_id=row["partner_id"], source=row["source"],
                    face_value=row["face_value"], currency=row["currency"], points=row["points"],
                    created_at=utc(row["created_at"]))


async def resume(store: WalletStore, program: ProgramView, row: dict[str, Any], labels: Labels,
                 actor: dict[str, str] | None = None) -> Finished:
    """Carries on an order left `new` (by a crash, or still in flight elsewhere): every step
    again, each one idempotent. Raises the hold's refusal (the order is then gone)."""
    order = _new_order(row)
    partner = await Partner.select().where(Partner.id == order.partner_id).first().run()
    if partner is None:
        raise Conflict("the order's partner is gone")
    # Not counted when it was made (no counter then): counted before it stops being `new`.
    await taxes.count(store, program, order.participant_id, order.face_value, order.created_at)
    await _hold(store, order, actor)
    secret = None
    if partner["kind"] == "code_pool":
        # Bound by the first attempt's transaction; an order from before codes were taken
        # with it takes one now.
        secret = await order_writes.bound_code(order.id) or await take_code_id(store, program.id, order.id,
                                                                               order.item_id)
    return await _finish(store, program, order, partner, secret, labels)


async def labels_of(item: dict[str, Any]) -> Labels:
    brand = await Brand.select(Brand.name, Brand.redemption_instructions).where(
        Brand.id == item["brand_id"]).first().run()
    return Labels(item_name=item["name"], brand=brand["name"] if brand else "",
                  instructions=brand["redemption_instructions"] if brand else "")


def _answer(order: NewOrder, done: Finished, labels: Labels, sealer: Sealer, now: datetime | None = None) -> OrderView:
    now = now or datetime.now(timezone.utc)
    card = unseal(sealer, done.secret) if done.secret else None
    return OrderView(id=order.id, status=done.status, points=order.points, item_id=order.item_id,
                     item_name=labels.item_name, brand=labels.brand,
                     face_value=Money(amount=order.face_value, currency=order.currency), source=order.source,
                     created_at=order.created_at, updated_at=now,
                     fulfilled_at=now if done.status == "fulfilled" else None,
                     credentials=card.credentials if card else None,
                     credential_list=card.credential_list if card else None,
                     redemption_instructions=labels.instructions if card else None)


async def place_order(store: WalletStore, sealer: Sealer, program: ProgramView, pricing: Pricing,
                      participant_id: str, item_id: str, face_value: Money | None,
                      source: Literal["redemption", "prize"] = "redemption", order_id: str | None = None,
                      actor: dict[str, str] | None = None, idem: Idem | None = None,
                      known: ItemRoute | None = None) -> OrderView:
    """`order_id` lets a caller that must not create two orders (a retry, a prize paid on a
    retry, an approval) choose the id: an order an earlier attempt began is carried on, not
    made twice. `actor` ({"actor", "approved_by"}): who redeemed for the participant. `idem`:
    the request's record, for an order placed without a chosen id (`redeem`). `known`: the
    item's route as the caller read it (`item_route`), else read here."""
    placed, _ = await _place(store, sealer, program, pricing, participant_id, item_id, face_value, source, order_id,
                             actor, idem, known)
    return placed


# How many times a redemption routes again when the catalog moves under it before it gives up.
CATALOG_MOVES = 3


async def redeem(store: WalletStore, sealer: Sealer, program: ProgramView, pricing: Pricing, participant_id: str,
                 item_id: str, face_value: Money | None, idem: Idem, ttl: int) -> tuple[OrderView, bool]:
    """A participant's own redemption, once per idempotency record `idem`: answers (the order,
    whether it is a replay). One Redis call (which carries the request's gate) reads the key,
    checks what the request judged from what its process keeps and places the order
    (fulfillment/redemption_guard.py); an attempt an earlier build placed in steps (its id
    pinned to the key) is carried on in steps. Without a kept route the catalog's version is
    read first; a participant's first order of a tax year, or one near the threshold, is
    judged from SQL after its call refused it (a second call)."""
    held = kept(program.id, item_id)
    if held is None:
        version, known = await catalog_version(store.client, program.id), None
    else:
        version, known = held
    for _ in range(CATALOG_MOVES):
        try:
            known = known or await item_route(program.id, item_id, version)
            return await _place(store, sealer, program, pricing, participant_id, item_id, face_value, "redemption",
                                None, None, idem, known, guard_of(program.id, idem, version))
        except CatalogMoved as moved:
            version, known = moved.version, None
        except Recorded as found:
            return await _replay(store, sealer, program, participant_id, idem, found.record), True
        except Pinned as pinned:  # routed as the catalog is now (the kept route was not checked)
            return await _in_steps(store, sealer, program, pricing, participant_id, item_id, face_value, idem, ttl,
                                   pinned.order_id, None)
        except (NotFound, Invalid, Conflict, taxes.TaxFormRequired):
            # Refused, most often before its call could read the key or the catalog's version
            # (the item gone or its face values changed, as this process last read it; a tax
            # form required): a replay answers what was recorded whatever the catalog says now,
            # and a route read before the catalog moved is read again. (A refusal by the call
            # itself wrote nothing and finds no record: it is raised, or made again when the
            # catalog moved meanwhile.) Nothing is written before the request's gate is judged.
            await judge_open_gate(store.execute)
            found, pinned_order, (now_at,) = await peek_with(store.client, idem, "order",
                                                             [catalog_keys.catalog_version(program.id)])
            if found is not None:
                return await _replay(store, sealer, program, participant_id, idem, found), True
            if pinned_order is not None:
                return await _in_steps(store, sealer, program, pricing, participant_id, item_id, face_value, idem,
                                       ttl, pinned_order, None)
            if int(now_at or 0) == version:
                raise
            version, known = int(now_at or 0), None
    raise Unavailable("the catalog kept changing during the redemption; retry with the same Idempotency-Key")


async def _replay(store: WalletStore, sealer: Sealer, program: ProgramView, participant_id: str, idem: Idem,
                  found: dict[str, Any]) -> OrderView:
    """The answer the key's record holds (the order read again), whatever the catalog, the
    route or the year's tax total say now."""
    if found.get("ok") is False and found.get("code") == "out_of_stock":  # no code was left (rw_pool_return)
        raise OutOfStock(str(found.get("detail") or SOLD_OUT))
    try:
        answer = await _recorded(program, participant_id, sealer, found)
        if answer.status == "failed" and "meta" in found:
            # A pool order whose points the sweep returned (no code was left): refused, as
            # its request would have been.
            raise OutOfStock(SOLD_OUT)
        return answer
    except NotFound:
        # An order whose SQL write was lost: written now as it was charged.
        if not (await partner_orders.write_recorded(program, participant_id, found)
                or await pooled_orders.write_recorded(store, program, participant_id, found, idem)):
            raise
        return await _recorded(program, participant_id, sealer, found)


async def _in_steps(store: WalletStore, sealer: Sealer, program: ProgramView, pricing: Pricing, participant_id: str,
                    item_id: str, face_value: Money | None, idem: Idem, ttl: int, order_id: str,
                    known: ItemRoute | None) -> tuple[OrderView, bool]:
    """An attempt an earlier build placed in steps under `order_id` (pinned to the key, which a
    crash left unanswered): carried on in steps, never placed a second time."""
    async def action() -> OrderView:
        return await place_order(store, sealer, program, pricing, participant_id, item_id, face_value,
                                 order_id=order_id, known=known)

    async def recorded(record: dict[str, Any]) -> OrderView:
        return await _recorded(program, participant_id, sealer, record)

    return await once(store.client, idem, ttl, action, OrderView, recorded_as=recorded)


async def _recorded(program: ProgramView, participant_id: str, sealer: Sealer, record: dict[str, Any]) -> OrderView:
    """The answer an idempotency record holds: a pool redemption's names its order (read
    again: the card is sealed at rest, never kept in Redis); one placed in steps holds it."""
    if "v" in record or "body" in record:
        return msgspec.convert(record["v"] if "v" in record else record["body"], OrderView)
    return await orders.participant_view(program.id, participant_id, str(record.get("order", "")), sealer)


def _now() -> datetime:
    # Whole milliseconds: the journal carries the order's moment in ms, and the projector's
    # row must be the request's.
    now = datetime.now(timezone.utc)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


async def _place(store: WalletStore, sealer: Sealer, program: ProgramView, pricing: Pricing, participant_id: str,
                 item_id: str, face_value: Money | None, source: Literal["redemption", "prize"],
                 order_id: str | None, actor: dict[str, str] | None, idem: Idem | None,
                 known: ItemRoute | None = None, guard: Guard | None = None) -> tuple[OrderView, bool]:
    # `guard`: a participant's redemption's (redemption_guard.py): its tax check presumes the
    # counter leaves room, which its call checks (a Recount when not).
    existing = None
    if order_id is not None:
        existing = await orders.order_or_none(program.id, order_id)
        # (A prize holds no points: nothing to look for.)
        if existing is None and source == "redemption" and await partner_orders.write_held(store, program, order_id,
                                                                                            participant_id):
            # An earlier attempt held its points and died before its row: written as it was
            # charged, whatever the catalog, the route or the year's tax total say now.
            return await orders.participant_view(program.id, participant_id, order_id, sealer), False
    item = known.item if known is not None else await item_row(program.id, item_id)
    partner = known.partner if known is not None else None
    value, points = redemption_points(item, pricing, face_value)
    order_id = order_id or new_id("ord")
    if existing is not None and existing["status"] != "new":
        if existing["status"] == "pending":  # left pending by an older attempt: start it (idempotent)
            partner = await Partner.select().where(Partner.id == existing["partner_id"]).first().run()
            if partner is not None and not await dispatch(store, sealer, program, existing, partner):
                raise OutOfStock(SOLD_OUT)
        return await orders.participant_view(program.id, participant_id, order_id, sealer), False
    labels = Labels(item_name=item["name"], brand=known.brand_name, instructions=known.instructions) \
        if known is not None else await labels_of(item)
    if existing is not None:
        done = await resume(store, program, existing, labels, actor)
        order = _new_order(existing)
        replayed = False
    else:
        partner = partner or await route(program.id, item)
        now = _now()
        # Before anything is written: a refusal (tax_form_required) changes nothing.
        async def placed(presume: bool) -> tuple[NewOrder, Finished, bool]:
            tax = await taxes.check(program, participant_id, value, now, refusable=source == "redemption",
                                    presume=presume, journal=store.client)
            order = NewOrder(id=order_id, program_id=program.id, participant_id=participant_id, item_id=item_id,
                             partner_id=partner["id"], source=source, face_value=value, currency=item["currency"],
                             points=0 if source == "prize" else points, created_at=now, tax_flagged=tax.flagged)
            if partner["kind"] == "code_pool":
                order, secret, replayed = await pooled_orders.place(store, program, order, labels.title,
                                                                    idem or NO_IDEM, actor, tax, guard)
                return order, Finished(status="fulfilled", secret=secret), replayed
            order, replayed = await partner_orders.place(store, program, order, partner, labels.title,
                                                         idem or NO_IDEM, actor, tax, guard)
            return order, Finished(status="pending"), replayed

        try:
            order, done, replayed = await placed(guard is not None)
        except taxes.Recount:  # judged again from SQL (a call so judged is never refused so)
            order, done, replayed = await placed(False)
        if replayed and idem is not None:
            return await orders.participant_view(program.id, participant_id, order.id, sealer), True
        # The row's moments are the order's own (a GET or a replay answers the same).
        return _answer(order, done, labels, sealer, now=order.created_at), replayed
    if done.status == "failed":
        raise OutOfStock(SOLD_OUT)
    return _answer(order, done, labels, sealer), replayed
