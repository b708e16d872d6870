"""SQL tables owned by the fulfillment package: partners, orders, code pools, webhook log."""

from __future__ import annotations

from piccolo.columns import BigInt, Boolean, Integer, Text, Timestamptz, Varchar
from piccolo.table import Table


class Partner(Table, tablename="partners"):
    id = Varchar(length=40, primary_key=True)
    program_id = Varchar(length=40, index=True)
    name = Varchar(length=200)
    is_default = Boolean(default=False)
    kind = Varchar(length=20, default="external")  # external | code_pool
    # A disabled partner's keys answer 401 and no order is routed to it.
    status = Varchar(length=20, default="active")  # active | disabled
    webhook_url = Varchar(length=1000, null=True, default=None)
    webhook_secret = Text(null=True, default=None)  # encrypted: we must sign with it
    created_at = Timestamptz()


class Order(Table, tablename="orders"):
    """A redemption (or an item prize). Its points are held under the order's id until the
    order is fulfilled (captured) or fails or is cancelled (voided)."""

    id = Varchar(length=40, primary_key=True)
    program_id = Varchar(length=40, index=True)
    # A participant's orders, newest first, and the year's tax total: orders_of_participant
    # (participant_id, id, program_id, created_at, status, face_value), one index for both.
    participant_id = Varchar(length=40)
    item_id = Varchar(length=40, index=True)
    partner_id = Varchar(length=40, index=True)
    source = Varchar(length=20, default="redemption")  # redemption | prize
    face_value = BigInt()
    currency = Varchar(length=3)
    points = BigInt()
    # pending -> claimed -> fulfilled | failed; cancelled. An order is written once its points
    # are held (pending, or fulfilled at once from the code pool); `new` (row written, hold not
    # yet confirmed) is only left by an earlier build, which placed orders in steps.
    status = Varchar(length=20, index=True)
    lease_id = Varchar(length=40, null=True, default=None)
    lease_expires_at = Timestamptz(null=True, default=None)
    attempts = Integer(default=0)
    credentials = Text(null=True, default=None)  # encrypted JSON
    failure_reason = Text(null=True, default=None)
    # When the wallet confirmed the hold's end (capture or void): a sweep finishes it otherwise.
    settled_at = Timestamptz(null=True, default=None)
    # Reaches the year's tax reporting threshold without the participant's tax form (taxes.py).
    tax_flagged = Boolean(default=False)
    created_at = Timestamptz()
    updated_at = Timestamptz()
    fulfilled_at = Timestamptz(null=True, default=None)


class PoolCode(Table, tablename="pool_codes"):
    """A gift-card code uploaded for the built-in code pool; handed to one order, ever."""

    id = Varchar(length=40, primary_key=True)
    program_id = Varchar(length=40, index=True)
    item_id = Varchar(length=40, index=True)
    code_hash = Varchar(length=64)
    item_code = Varchar(length=120, unique=True)  # item id + hash: the same code is uploaded once
    secret = Text()  # encrypted JSON of code, pin, url, expires_at
    order_id = Varchar(length=40, null=True, default=None, unique=True)
    created_at = Timestamptz()
    used_at = Timestamptz(null=True, default=None)


class WebhookDelivery(Table, tablename="webhook_deliveries"):
    id = Varchar(length=40, primary_key=True)
    program_id = Varchar(length=40, index=True)
    partner_id = Varchar(length=40, index=True)
    order_id = Varchar(length=40, index=True)
    event = Varchar(length=40, default="order.created")
    status = Varchar(length=20, default="pending")  # pending | delivered | failed
    attempts = Integer(default=0)
    next_attempt_at = Timestamptz(index=True)
    last_status_code = Integer(null=True, default=None)
    last_error = Text(null=True, default=None)
    created_at = Timestamptz()
    delivered_at = Timestamptz(null=True, default=None)
