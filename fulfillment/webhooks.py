"""Push as well as pull: new orders are POSTed to a partner's webhook URL.

Each delivery is signed: `RW-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret,
"<t>.<body>")>`, so the partner can check the sender and refuse replays outside its
tolerance. A delivery that does not get a 2xx is retried with exponential backoff (2, 4,
8, ... seconds, at most an hour apart) up to `MAX_ATTEMPTS`; every attempt's outcome is
kept in the delivery log the partner and the admin can read.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import msgspec
from piccolo.columns.combination import WhereRaw
from piccolo.query.methods.select import Select

from fulfillment.orders import partner_views
from fulfillment.sealing import Sealer
from fulfillment.tables import Order, Partner, WebhookDelivery
from fulfillment.webhook_target import Lookup, Refused, Unresolvable, pin, send, system_lookup
from kernel.ids import new_id
from kernel.pages import decode_cursor, next_cursor
from kernel.clock import utc

MAX_ATTEMPTS = 10
log = logging.getLogger("rw.webhooks")


class DeliveryView(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    partner_id: str
    order_id: str
    event: str
    status: str
    attempts: int
    next_attempt_at: datetime
    created_at: datetime
    last_status_code: int | None = None
    last_error: str | None = None
    delivered_at: datetime | None = None


class DeliveryPage(msgspec.Struct, frozen=True):
    items: list[DeliveryView]
    next_cursor: str | None


def signature(secret: str, timestamp: int, body: bytes) -> str:
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def backoff(attempts: int) -> timedelta:
    return timedelta(seconds=min(2 ** attempts, 3600))


async def enqueue(program_id: str, partner: dict[str, Any], order_id: str, event: str = "order.created") -> None:
    if not partner.get("webhook_url"):
        return
    # An order resumed after a crash may pass here twice: one delivery per order, event and
    # partner (an order moved off a disabled partner is announced to its new one).
    if await WebhookDelivery.exists().where((WebhookDelivery.order_id == order_id)
                                            & (WebhookDelivery.event == event)
                                            & (WebhookDelivery.partner_id == partner["id"])).run():
        return
    now = datetime.now(timezone.utc)
    await WebhookDelivery.insert(WebhookDelivery(id=new_id("whd"), program_id=program_id, partner_id=partner["id"],
                                                 order_id=order_id, event=event, next_attempt_at=now,
                                                 created_at=now)).run()


def due_deliveries(now: datetime, limit: int) -> Select:
    """The pending deliveries due by `now`, soonest first, through the partial index
    webhook_deliveries_due, which holds the pending ones only (delivered and failed rows keep
    a past next_attempt_at for good). The status is written into the SQL, not bound, so that
    Postgres's generic plan of it can use that index too."""
    return WebhookDelivery.select().where(WhereRaw("status = 'pending'") & (WebhookDelivery.next_attempt_at <= now)) \
        .order_by(WebhookDelivery.next_attempt_at).limit(limit)


async def deliver_due(sealer: Sealer, client: httpx.AsyncClient, limit: int = 50,
                      now: datetime | None = None, allow_private: bool = False,
                      lookup: Lookup = system_lookup) -> int:
    """Attempts every delivery that is due; answers how many it attempted."""
    now = now or datetime.now(timezone.utc)
    due = await due_deliveries(now, limit).run()
    for delivery in due:
        # Claim the attempt first, so two dispatchers never send the same attempt.
        claimed = await WebhookDelivery.update({WebhookDelivery.attempts: delivery["attempts"] + 1,
                                                WebhookDelivery.next_attempt_at: now + backoff(delivery["attempts"] + 1)}) \
            .where((WebhookDelivery.id == delivery["id"]) & (WebhookDelivery.attempts == delivery["attempts"])) \
            .returning(WebhookDelivery.id).run()
        if claimed:
            await attempt(sealer, client, delivery, allow_private, lookup)
    return len(due)


async def attempt(sealer: Sealer, client: httpx.AsyncClient, delivery: dict[str, Any], allow_private: bool,
                  lookup: Lookup) -> None:
    """One attempt of a claimed delivery: the target checked again, sent, the outcome recorded."""
    partner = await Partner.select().where(Partner.id == delivery["partner_id"]).first().run()
    order = await Order.select().where(Order.id == delivery["order_id"]).first().run()
    attempts = delivery["attempts"] + 1
    if partner is None or not partner["webhook_url"] or not partner["webhook_secret"] or order is None:
        await _record(delivery["id"], "failed", attempts, None, "no webhook configured any more")
        return
    if partner["status"] != "active" or order["partner_id"] != partner["id"]:
        await _record(delivery["id"], "failed", attempts, None, "the order is no longer routed to this partner")
        return
    view = (await partner_views([order]))[0]
    body = msgspec.json.encode({"id": delivery["id"], "event": delivery["event"], "order": view})
    timestamp = int(time.time())
    headers = {"Content-Type": "application/json", "User-Agent": "reward-wallet-webhooks/1",
               "RW-Signature": signature(sealer.open(partner["webhook_secret"]), timestamp, body),
               "RW-Delivery": delivery["id"]}
    code: int | None = None
    try:
        # Checked again at each attempt (DNS answers change), and sent to the address checked.
        target = await pin(partner["webhook_url"], allow_private, lookup)
        response = await send(client, target, body, headers, timeout=10)
        code, error = response.status_code, None if response.is_success else f"HTTP {response.status_code}"
    except Refused as exc:
        error = f"refused: {exc}"
    except Unresolvable:
        error = "the webhook host does not resolve"
    except httpx.HTTPError as exc:
        error = f"{type(exc).__name__}"
    if error is None:
        await _record(delivery["id"], "delivered", attempts, code, None)
    else:
        final = attempts >= MAX_ATTEMPTS
        await _record(delivery["id"], "failed" if final else "pending", attempts, code, error)
        log.warning("webhook delivery %s attempt %s failed: %s", delivery["id"], attempts, error)


async def _record(delivery_id: str, status: str, attempts: int, code: int | None, error: str | None) -> None:
    values: dict[Any, Any] = {WebhookDelivery.status: status, WebhookDelivery.attempts: attempts,
                              WebhookDelivery.last_status_code: code, WebhookDelivery.last_error: error}
    if status == "delivered":
        values[WebhookDelivery.delivered_at] = datetime.now(timezone.utc)
    await WebhookDelivery.update(values).where(WebhookDelivery.id == delivery_id).run()


async def deliveries(program_id: str, partner_id: str | None = None, limit: int = 50,
                     cursor: str | None = None) -> DeliveryPage:
    after = decode_cursor(cursor)
    where = WebhookDelivery.program_id == program_id
    if partner_id is not None:
        where &= WebhookDelivery.partner_id == partner_id
    if after is not None:
        where &= WebhookDelivery.id < after
    rows = await WebhookDelivery.select().where(where).order_by(WebhookDelivery.id, ascending=False) \
        .limit(limit + 1).run()

    items = [DeliveryView(id=r["id"], partner_id=r["partner_id"], order_id=r["order_id"], event=r["event"],
                          status=r["status"], attempts=r["attempts"], next_attempt_at=utc(r["next_attempt_at"]),
                          created_at=utc(r["created_at"]), last_status_code=r["last_status_code"],
                          last_error=r["last_error"], delivered_at=utc(r["delivered_at"])) for r in rows[:limit]]
    return DeliveryPage(items=items, next_cursor=next_cursor([r["id"] for r in rows], limit))
