"""A participant's redemption in one round trip (issue #13): what its request judged before
its Redis call, checked inside that call.

The request reads nothing of Redis first. Its item's route is the one its process keeps
(fulfillment/item_routes.py) at the catalog version it was read at; its tax check presumes
the participant's counter leaves room (fulfillment/taxes.py `check`); its Idempotency-Key is
read by the call itself. The order's call (rw_pool_redeem, rw_partner_hold) answers a record
the key already holds (`Recorded`), and refuses before any write when an earlier build
placed the same request in steps (`Pinned`) or the catalog moved since the route was read
(`CatalogMoved`); pool.lua `guard_refusal` says how. The request's gate rides in the same
call (kernel/gated.py).
"""

from __future__ import annotations

from typing import Any

import msgspec

from catalog import keys as catalog_keys
from kernel.idempotency import Idem


class Guard(msgspec.Struct, frozen=True):
    """The guard's keys and argument, after the tax counter's in the order's call."""

    pinned: str  # the key of the order id an earlier build pinned to the Idempotency-Key
    catalog: str  # the catalog's version key
    version: int  # the version the item's route was read at

    def call_keys(self) -> list[str]:
        return [self.pinned, self.catalog]

    def call_args(self) -> list[Any]:
        return [self.version]


def guard_of(program_id: str, idem: Idem, version: int) -> Guard:
    # The pinned id's key is kernel/idempotency.py `pinned_id`'s for suffix "order".
    return Guard(pinned=f"{idem.key}:order", catalog=catalog_keys.catalog_version(program_id), version=version)


class Recorded(Exception):
    """The key already holds its request's answer (a replay): the record, as stored."""

    def __init__(self, record: dict[str, Any]) -> None:
        super().__init__("recorded")
        self.record = record


class Pinned(Exception):
    """An earlier build placed this request in steps under `order_id`: carried on in steps."""

    def __init__(self, order_id: str) -> None:
        super().__init__(order_id)
        self.order_id = order_id


class CatalogMoved(Exception):
    """The catalog moved since the item's route was read: read it at `version`, call again."""

    def __init__(self, version: int) -> None:
        super().__init__(version)
        self.version = version


def check(raw: bytes, code: str | None, detail: str | None, replayed: int) -> None:
    """Raises what a guarded call's reply says about the request's judgement (nothing for a
    reply of its own order)."""
    if replayed:
        record = msgspec.json.decode(raw)
        record.pop("replayed", None)
        raise Recorded(record)
    if code == "pinned":
        raise Pinned(detail or "")
    if code == "catalog_moved":
        raise CatalogMoved(int(detail or 0))
