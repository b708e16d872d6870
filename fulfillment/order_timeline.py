"""An order's story for the console, oldest first, from the records that hold it: the order
row (made, claimed under a lease, delivered, failed, cancelled), the ledger's entries that
name the order (points held, captured, returned), its webhook deliveries, and the audit log's
changes to it (a cancel, a re-delivery). Nothing here is stored twice: each line is read
from the record it comes from."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import msgspec

from fulfillment.tables import Order, WebhookDelivery
from kernel.clock import utc
from kernel.errors import NotFound
from programs.tables import AuditEvent
from wallet.tables import LedgerEntry

MONEY_WORDS = {"hold": "points held", "capture": "points taken (delivered)", "redemption": "points taken (delivered)",
               "void": "points returned", "redemption_void": "points returned"}


class TimelineLine(msgspec.Struct, frozen=True):
    at: datetime
    what: str
    source: str  # order | ledger | webhook | audit


async def order_timeline(program_id: str, order_id: str) -> list[TimelineLine]:
    row = await Order.select().where((Order.id == order_id) & (Order.program_id == program_id)).first().run()
    if row is None:
        raise NotFound("no such order")
    lines = [TimelineLine(at=utc(row["created_at"]), what=f"made ({row['source']}) for {row['points']:,} points",
                          source="order")]
    if row["tax_flagged"]:
        lines.append(TimelineLine(at=utc(row["created_at"]), what="flagged: reaches the year's tax threshold "
                                  "without the participant's tax form", source="order"))
    if row["lease_expires_at"] is not None and row["status"] == "claimed":
        lines.append(TimelineLine(at=utc(row["updated_at"]), what=f"claimed by partner {row['partner_id']} "
                                  f"(lease until {utc(row['lease_expires_at']):%H:%M:%S} UTC)", source="order"))
    if row["fulfilled_at"] is not None:
        lines.append(TimelineLine(at=utc(row["fulfilled_at"]), what=f"delivered by partner {row['partner_id']}",
                                  source="order"))
    if row["status"] == "failed":
        lines.append(TimelineLine(at=utc(row["updated_at"]), what=f"failed: {row['failure_reason'] or 'no reason'}",
                                  source="order"))
    if row["status"] == "cancelled":
        lines.append(TimelineLine(at=utc(row["updated_at"]), what="cancelled", source="order"))
    for entry in await LedgerEntry.select(LedgerEntry.kind, LedgerEntry.points, LedgerEntry.created_at).where(
            (LedgerEntry.participant_id == row["participant_id"]) & (LedgerEntry.reference == order_id)).run():
        words = MONEY_WORDS.get(entry["kind"], entry["kind"])
        lines.append(TimelineLine(at=utc(entry["created_at"]), what=f"ledger: {words} ({abs(entry['points']):,})",
                                  source="ledger"))
    for hook in await WebhookDelivery.select().where(
            (WebhookDelivery.program_id == program_id) & (WebhookDelivery.order_id == order_id)).run():
        lines.append(TimelineLine(at=utc(hook["created_at"]), what=_delivery(hook), source="webhook"))
    for event in await AuditEvent.select(AuditEvent.kind, AuditEvent.actor, AuditEvent.created_at).where(
            (AuditEvent.program_id == program_id) & (AuditEvent.subject == order_id)).run():
        lines.append(TimelineLine(at=utc(event["created_at"]), what=f"{event['kind']} by {event['actor']}",
                                  source="audit"))
    return sorted(lines, key=lambda line: line.at)


def _delivery(hook: dict[str, Any]) -> str:
    if hook["delivered_at"] is not None:
        return f"webhook {hook['event']} delivered after {hook['attempts']} attempt(s)"
    last = f"HTTP {hook['last_status_code']}" if hook["last_status_code"] else (hook["last_error"] or "not tried yet")
    return f"webhook {hook['event']} {hook['status']} after {hook['attempts']} attempt(s), last: {last}"
