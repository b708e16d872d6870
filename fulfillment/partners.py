"""Fulfillment partners: who delivers which orders, and how they hear of new ones."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from catalog.items import bump_version, moving_version
from catalog.tables import Brand
from fulfillment.sealing import Sealer
from fulfillment.tables import Partner
from fulfillment.webhook_target import check_url
from programs import gate
from programs.credentials import issue_key
from programs.tables import ApiKey
from kernel.errors import Conflict, NotFound
from kernel.ids import new_id
from kernel.clock import utc
from kernel.pages import newest_first

WebhookUrl = Annotated[str, Meta(max_length=1000, pattern=r"^https?://\S+$")]
POOL_NAME = "Code pool (built-in)"


class NewPartner(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    default: bool = False
    webhook_url: WebhookUrl | None = None


PartnerStatus = Literal["active", "disabled"]


class PartnerView(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    name: str
    default: bool
    kind: str
    created_at: datetime
    status: str  # active | disabled
    webhook_url: str | None = None


class PartnerChanges(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    status: PartnerStatus


class PartnerKey(msgspec.Struct, frozen=True):
    api_key: str


class PartnerCreated(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    name: str
    default: bool
    api_key: str
    webhook_secret: str | None = None


class WebhookSettings(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    url: WebhookUrl | None


class WebhookSecret(msgspec.Struct, frozen=True):
    url: str | None
    secret: str | None


def _view(row: dict[str, Any]) -> PartnerView:
    return PartnerView(id=row["id"], name=row["name"], default=bool(row["is_default"]), kind=row["kind"],
                       created_at=utc(row["created_at"]), status=row["status"],
                       webhook_url=row["webhook_url"])


async def create_partner(client: Any, program_id: str, spec: NewPartner, sealer: Sealer,
                         allow_private: bool = False) -> PartnerCreated:
    """A program's first partner is its default route; `default` moves the default here.
    `client`: Redis, whose catalog version moves (items' routes are kept per version)."""
    if spec.webhook_url:
        await check_url(spec.webhook_url, allow_private, field="webhook_url")
    has_default = await Partner.exists().where((Partner.program_id == program_id) & (Partner.status == "active")
                                               & (Partner.is_default == True)).run()  # noqa: E712
    make_default = spec.default or not has_default
    partner_id = new_id("ptn")
    secret = "whsec_" + secrets.token_urlsafe(24) if spec.webhook_url else None
    # The default may have moved even when the insert failed.
    async with moving_version(client, program_id):
        if make_default:
            await Partner.update({Partner.is_default: False}).where(Partner.program_id == program_id).run()
        await Partner.insert(Partner(id=partner_id, program_id=program_id, name=spec.name, is_default=make_default,
                                     webhook_url=spec.webhook_url,
                                     webhook_secret=sealer.seal(secret) if secret else None,
                                     created_at=datetime.now(timezone.utc))).run()
    _, api_key = await issue_key(program_id, "partner", name=spec.name, partner_id=partner_id)
    return PartnerCreated(id=partner_id, name=spec.name, default=make_default, api_key=api_key, webhook_secret=secret)


async def list_partners(program_id: str) -> list[PartnerView]:
    rows = await Partner.select().where(Partner.program_id == program_id).order_by(Partner.created_at).run()
    return [_view(r) for r in rows]


class PartnerPage(msgspec.Struct, frozen=True):
    items: list[PartnerView]
    next_cursor: str | None


async def partner_page(program_id: str, limit: int = 50, cursor: str | None = None) -> PartnerPage:
    """The program's partners, newest first."""
    where = Partner.program_id == program_id
    rows, following = await newest_first(Partner, where, limit, cursor)
    return PartnerPage(items=[_view(r) for r in rows], next_cursor=following)


async def get_partner(program_id: str, partner_id: str) -> dict[str, Any]:
    row = await Partner.select().where((Partner.id == partner_id) & (Partner.program_id == program_id)).first().run()
    if row is None:
        raise NotFound("no such partner")
    return row


async def partner_view(program_id: str, partner_id: str) -> PartnerView:
    return _view(await get_partner(program_id, partner_id))


async def set_webhook(client: Any, program_id: str, partner_id: str, url: str | None, sealer: Sealer,
                      allow_private: bool = False) -> WebhookSecret:
    """Sets (or clears) the partner's webhook URL; a new URL gets a new signing secret. The
    catalog's version moves: a redemption's kept route holds whether its order is pushed."""
    row = await get_partner(program_id, partner_id)
    if row["kind"] != "external":
        raise Conflict("the built-in code pool takes no webhook")
    if url:
        await check_url(url, allow_private)
    secret = "whsec_" + secrets.token_urlsafe(24) if url else None
    await Partner.update({Partner.webhook_url: url, Partner.webhook_secret: sealer.seal(secret) if secret else None}) \
        .where(Partner.id == partner_id).run()
    await bump_version(client, program_id)
    return WebhookSecret(url=url, secret=secret)


async def pool_partner(program_id: str) -> str:
    """The program's built-in code-pool partner, created on first use."""
    row = await Partner.select(Partner.id).where(
        (Partner.program_id == program_id) & (Partner.kind == "code_pool")).first().run()
    if row is not None:
        return row["id"]
    partner_id = new_id("ptn")
    await Partner.insert(Partner(id=partner_id, program_id=program_id, name=POOL_NAME, kind="code_pool",
                                 created_at=datetime.now(timezone.utc))).run()
    return partner_id


async def route(program_id: str, item: dict[str, Any]) -> dict[str, Any]:
    """The partner for an item's orders: the item's own, else its brand's, else the default."""
    candidates = [item.get("partner_id")]
    brand = await Brand.select(Brand.partner_id).where(Brand.id == item["brand_id"]).first().run()
    candidates.append(brand["partner_id"] if brand else None)
    active = (Partner.program_id == program_id) & (Partner.status == "active")
    for partner_id in candidates:
        if partner_id:
            row = await Partner.select().where((Partner.id == partner_id) & active).first().run()
            if row is not None:
                return row
    row = await Partner.select().where(active & (Partner.is_default == True)).first().run()  # noqa: E712
    if row is None:
        raise Conflict("the program has no active fulfillment partner yet: an admin must add (or enable) one")
    return row


async def partner_active(partner_id: str) -> bool:
    row = await Partner.select(Partner.status).where(Partner.id == partner_id).first().run()
    return row is not None and row["status"] == "active"


async def partner_key_ids(partner_id: str) -> list[str]:
    """Every key ever issued to the partner, revoked ones included (their cache marks too)."""
    rows = await ApiKey.select(ApiKey.id).where((ApiKey.partner_id == partner_id) & (ApiKey.kind == "partner")).run()
    return [r["id"] for r in rows]


async def restore_key_marks(client: Any, program_id: str) -> None:
    """The request gate's marks written again from SQL (revoked keys, disabled partners' keys):
    after Redis lost them, a worker that keeps a key's record in memory would otherwise let a
    revoked key in (`reward-wallet rebuild` calls this)."""
    revoked = await ApiKey.select(ApiKey.id).where(
        (ApiKey.program_id == program_id) & ApiKey.revoked_at.is_not_null()).run()
    for row in revoked:
        await gate.mark_revoked(client, program_id, row["id"])
    disabled = await Partner.select(Partner.id).where(
        (Partner.program_id == program_id) & (Partner.status == "disabled")).run()
    for row in disabled:
        await gate.mark_disabled(client, program_id, await partner_key_ids(row["id"]), True)


async def rotate_key(program_id: str, partner_id: str) -> tuple[str, list[str]]:
    """A new key for the partner, and the ids of the keys it replaces (now revoked in SQL; the
    caller marks them in the auth cache before answering, so they fail on the next request)."""
    row = await get_partner(program_id, partner_id)
    if row["kind"] != "external":
        raise Conflict("the built-in code pool has no key")
    revoked = await ApiKey.update({ApiKey.revoked_at: datetime.now(timezone.utc)}).where(
        (ApiKey.partner_id == partner_id) & (ApiKey.program_id == program_id) & (ApiKey.kind == "partner")
        & ApiKey.revoked_at.is_null()).returning(ApiKey.id).run()
    _, api_key = await issue_key(program_id, "partner", name=row["name"], partner_id=partner_id)
    return api_key, [r["id"] for r in revoked]


async def set_status(program_id: str, partner_id: str, status: PartnerStatus) -> PartnerView:
    """Enables or disables a partner. Disabling the default partner hands the default to the
    oldest other active external partner; with none, the program has no default until one is
    added or enabled (redemptions routed to it answer 409 meanwhile). The caller re-routes the
    partner's unclaimed orders and marks its keys in the auth cache."""
    row = await get_partner(program_id, partner_id)
    if row["kind"] != "external":
        raise Conflict("the built-in code pool cannot be disabled; route the items elsewhere instead")
    await Partner.update({Partner.status: status}).where(Partner.id == partner_id).run()
    if status == "disabled" and row["is_default"]:
        heir = await Partner.select(Partner.id).where(
            (Partner.program_id == program_id) & (Partner.kind == "external") & (Partner.status == "active")
            & (Partner.id != partner_id)).order_by(Partner.created_at).first().run()
        if heir is not None:
            await Partner.update({Partner.is_default: False}).where(Partner.program_id == program_id).run()
            await Partner.update({Partner.is_default: True}).where(Partner.id == heir["id"]).run()
    elif status == "active":
        # A program whose only partners were disabled gets its default back.
        has_default = await Partner.exists().where(
            (Partner.program_id == program_id) & (Partner.is_default == True)  # noqa: E712
            & (Partner.status == "active")).run()
        if not has_default:
            await Partner.update({Partner.is_default: False}).where(Partner.program_id == program_id).run()
            await Partner.update({Partner.is_default: True}).where(Partner.id == partner_id).run()
    return _view(await get_partner(program_id, partner_id))
