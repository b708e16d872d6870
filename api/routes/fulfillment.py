"""Redemptions (participants), partners and their queue (partner keys), orders (admins)."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, patch, post, put
from litestar.di import Provide
from msgspec import Meta

from api.auth import CARRY_GATE, Principal, admin_only, participant_only, partner_only, principal_of
from api.idempotency import provide_idem
from api.routes.approvals import ASKED, done_or_asked
from api.routes.participants import Cursor, IdFilter, Limit, program_of
from api.settings import Settings
from catalog import changes
from catalog.items import pricing_of
from fulfillment import delivery, orders, partner_admin, partner_claims, partners, webhooks
from fulfillment.redeem_for import redeem_for as redeem_for_participant
from fulfillment.redemptions import redeem as redeem_item
from fulfillment.sealing import Sealer
from programs import audit
from programs.programs import Money, get_program
from kernel.ids import Id, IdOrEmpty
from wallet.store import WalletStore
from kernel.idempotency import Idem

IDEMPOTENT = {"idem": Provide(provide_idem)}
REPLAYED = {"Idempotent-Replayed": "true"}


class RedemptionRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    item_id: Id
    face_value: Money | None = None


class ClaimRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    limit: Annotated[int, Meta(ge=1, le=200)] = 10
    lease_seconds: Annotated[int, Meta(ge=1, le=3600)] = 300


class ClaimedOrders(msgspec.Struct, frozen=True):
    items: list[orders.PartnerOrder]


class FulfilRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # Either or both: the object, or a supplier's labelled lines (fulfillment/delivery.py).
    credentials: delivery.Credentials | None = None
    credential_list: delivery.CredentialList | None = None
    lease_id: IdOrEmpty | None = None


class FailRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reason: Annotated[str, Meta(min_length=1, max_length=500)]
    lease_id: IdOrEmpty | None = None


class AvailabilityRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    available: bool


class CancelRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reason: Annotated[str, Meta(min_length=1, max_length=500)] = "cancelled by the program"


# --- participants -------------------------------------------------------------------------


@post("/v1/me/redemptions", guards=[participant_only], dependencies=IDEMPOTENT, opt=CARRY_GATE, operation_id="redeem",
      summary="Redeem points for a gift card",
      description="Holds the points and creates the order in one step (answers 201 `pending`; an item from the "
                  "built-in code pool is fulfilled at once). 422 `insufficient_points`, 409 `out_of_stock`. "
                  "Requires `Idempotency-Key`.", tags=["redemptions"])
async def redeem(request: Request[Any, Any, Any], data: RedemptionRequest, idem: Idem, wallets: WalletStore,
                 sealer: Sealer, settings: Settings) -> Response[Any]:
    body, replayed = await redeem_as(wallets, sealer, settings.idempotency_ttl_seconds, principal_of(request), data,
                                     idem)
    return Response(body, status_code=201, headers=REPLAYED if replayed else None)


async def redeem_as(wallets: WalletStore, sealer: Sealer, ttl: int, principal: Principal, data: RedemptionRequest,
                    idem: Idem) -> tuple[orders.OrderView, bool]:
    """The redemption of POST /v1/me/redemptions (also served by api/lean.py)."""
    program = await get_program(principal.program_id or "")
    return await redeem_item(wallets, sealer, program, pricing_of(program), principal.subject_id, data.item_id,
                             data.face_value, idem, ttl)


@get("/v1/me/redemptions", guards=[participant_only], operation_id="listMyRedemptions", summary="My orders",
     description="Newest first; fulfilled ones carry their credentials.", tags=["redemptions"])
async def my_orders(request: Request[Any, Any, Any], sealer: Sealer, wallets: WalletStore, limit: Limit = 50,
                    cursor: Cursor = None, status: orders.OrderStatus | None = None) -> orders.OrderPage:
    principal = principal_of(request)
    return await orders.list_orders(principal.program_id or "", limit=limit, cursor=cursor, status=status,
                                    participant_id=principal.subject_id, sealer=sealer, journal=wallets.client)


@get("/v1/me/redemptions/{order_id:str}", guards=[participant_only], operation_id="getMyRedemption",
     summary="One of my orders", description="Once fulfilled it carries the credentials (code, PIN, URL, expiry), "
     "shown only to its participant.", tags=["redemptions"])
async def my_order(request: Request[Any, Any, Any], order_id: str, sealer: Sealer,
                   wallets: WalletStore) -> orders.OrderView:
    principal = principal_of(request)
    return await orders.participant_view(principal.program_id or "", principal.subject_id, order_id, sealer,
                                         journal=wallets.client)


@post("/v1/me/redemptions/{order_id:str}/cancel", guards=[participant_only], operation_id="cancelMyRedemption",
      summary="Cancel a pending order", description="Only while `pending`; the points come back at once.",
      tags=["redemptions"], status_code=200)
async def cancel(request: Request[Any, Any, Any], order_id: str, wallets: WalletStore,
                 sealer: Sealer) -> orders.OrderView:
    principal = principal_of(request)
    program = await get_program(principal.program_id or "")
    return await orders.cancel(wallets, program, principal.subject_id, order_id, sealer)


# --- admins -------------------------------------------------------------------------------


@post("/v1/participants/{participant_id:str}/redemptions", guards=[admin_only], dependencies=IDEMPOTENT,
      operation_id="redeemForParticipant", summary="Redeem for a participant", opt={"audit": "self"},
      description="Redeems an item from the participant's points for them, as their own `POST /v1/me/redemptions` "
                  "does (201 with the order; the card's code stays the participant's). The key is named in the "
                  "hold's journal entry and on the audit log. Above the program's `approval_threshold_points` (the "
                  "order's points) it answers 202 with an approval request instead, and no order exists until "
                  "another person approves it. 409 for a deactivated participant, 422 `insufficient_points`, 409 "
                  "`out_of_stock`. Requires `Idempotency-Key`.", tags=["redemptions"],
      responses=ASKED)
async def redeem_for(request: Request[Any, Any, Any], participant_id: str, data: RedemptionRequest, idem: Idem,
                     wallets: WalletStore, sealer: Sealer, settings: Settings) -> Response[orders.OrderView]:
    principal = principal_of(request)
    program = await get_program(principal.program_id or "")
    body, replayed = await redeem_for_participant(wallets, sealer, idem, settings.idempotency_ttl_seconds, program,
                                                  participant_id, data.item_id, data.face_value,
                                                  f"key:{principal.subject_id}")
    return done_or_asked(body, 201, replayed)


@post("/v1/fulfillment/partners", guards=[admin_only], operation_id="createPartner",
      summary="Add a fulfillment partner",
      description="Answers the partner's API key once (and a webhook signing secret when `webhook_url` is given). "
                  "A program's first partner is its default route.", tags=["fulfillment"])
async def create_partner(request: Request[Any, Any, Any], data: partners.NewPartner, sealer: Sealer,
                         settings: Settings, wallets: WalletStore) -> Response[partners.PartnerCreated]:
    created = await partners.create_partner(wallets.client, program_of(request), data, sealer,
                                            settings.webhook_allow_private)
    return Response(created, status_code=201)


@get("/v1/fulfillment/partners", guards=[admin_only], operation_id="listPartners", summary="List partners",
     description="Newest first, with the default route and webhook URLs; never keys or secrets.",
     tags=["fulfillment"])
async def list_partners(request: Request[Any, Any, Any], limit: Limit = 50,
                        cursor: Cursor = None) -> partners.PartnerPage:
    return await partners.partner_page(program_of(request), limit, cursor)


@put("/v1/fulfillment/partners/{partner_id:str}/webhook", guards=[admin_only], operation_id="setPartnerWebhook",
     summary="Set a partner's webhook", description="New orders are POSTed there, signed (`RW-Signature`); a new URL "
     "gets a new secret, answered once. `{\"url\": null}` stops pushing. A URL whose host is or resolves to "
     "a loopback, private, link-local or cloud-metadata address answers 422 (unless the operator sets "
     "`RW_WEBHOOK_ALLOW_PRIVATE=true`).", tags=["fulfillment"])
async def set_webhook(request: Request[Any, Any, Any], partner_id: str, data: partners.WebhookSettings,
                      sealer: Sealer, settings: Settings, wallets: WalletStore) -> partners.WebhookSecret:
    return await partners.set_webhook(wallets.client, program_of(request), partner_id, data.url, sealer,
                                      settings.webhook_allow_private)


@patch("/v1/fulfillment/partners/{partner_id:str}", guards=[admin_only], operation_id="updatePartner",
       summary="Enable or disable a partner",
       description="`{\"status\": \"disabled\"}`: the partner's keys answer 401 from the next request on, its "
                   "pending orders move at once to where a new redemption of their item would go (the item's or "
                   "brand's partner, else the default; the built-in pool fulfils pool items at once), and an order "
                   "it holds under a lease moves when the lease ends. Disabling the default partner makes the "
                   "oldest other active partner the default; with none left, redemptions answer 409 `conflict` "
                   "until a partner is added or enabled. `{\"status\": \"active\"}` enables it again (and makes "
                   "it the default when the program has no active default). The built-in code pool cannot be "
                   "disabled (409).", tags=["fulfillment"])
async def update_partner(request: Request[Any, Any, Any], partner_id: str, data: partners.PartnerChanges,
                         wallets: WalletStore, sealer: Sealer) -> partners.PartnerView:
    program = await get_program(program_of(request))
    return await partner_admin.change_partner_status(wallets, sealer, program, partner_id, data.status)


@post("/v1/fulfillment/partners/{partner_id:str}/keys", guards=[admin_only], operation_id="rotatePartnerKey",
      summary="Issue a partner a new API key",
      description="Answers the new key once; every earlier key of the partner answers 401 from the next request "
                  "on, on every API machine.", tags=["fulfillment"])
async def rotate_partner_key(request: Request[Any, Any, Any], partner_id: str,
                             wallets: WalletStore) -> Response[partners.PartnerKey]:
    api_key = await partner_admin.new_partner_key(wallets, program_of(request), partner_id)
    return Response(partners.PartnerKey(api_key=api_key), status_code=201)


@get("/v1/orders", guards=[admin_only], operation_id="listOrders", summary="List and search orders",
     description="Newest first; filter by status, participant, item or partner.", tags=["fulfillment"])
async def list_orders(request: Request[Any, Any, Any], limit: Limit = 50, cursor: Cursor = None,
                      status: orders.OrderStatus | None = None,
                      participant_id: IdFilter = None,
                      item_id: IdFilter = None, partner_id: IdFilter = None) -> orders.OrderPage:
    return await orders.list_orders(program_of(request), limit=limit, cursor=cursor, status=status,
                                    participant_id=participant_id, item_id=item_id, admin=True,
                                    partner_id=partner_id)


@get("/v1/orders/export.csv", guards=[admin_only], operation_id="exportOrders", summary="Export orders as CSV",
     description="Every order (or those of one `status`), oldest first; never credentials.", tags=["fulfillment"],
     media_type="text/csv")
async def export(request: Request[Any, Any, Any], status: orders.OrderStatus | None = None) -> Response[str]:
    text = await orders.export_csv(program_of(request), status)
    return Response(text, media_type="text/csv",
                    headers={"Content-Disposition": 'attachment; filename="orders.csv"'})


@get("/v1/orders/{order_id:str}", guards=[admin_only], operation_id="getOrder", summary="Read an order",
     description="Admins never see credentials.", tags=["fulfillment"])
async def read_order(request: Request[Any, Any, Any], order_id: str) -> orders.OrderView:
    return await orders.admin_view(program_of(request), order_id)


@post("/v1/orders/{order_id:str}/cancel", opt={"audit": "self"}, guards=[admin_only], operation_id="cancelOrder",
      summary="Cancel an order not yet delivered",
      description="Pending or claimed orders only: the held points return to the participant at once and a feed "
                  "line says why; a partner's later fulfil or fail answers 409. The same cancel again answers the "
                  "cancelled order and returns nothing twice; a fulfilled or failed order answers 409.",
      tags=["fulfillment"], status_code=200)
async def cancel_order(request: Request[Any, Any, Any], order_id: str, wallets: WalletStore, sealer: Sealer,
                       data: CancelRequest | None = None) -> orders.OrderView:
    program = await get_program(program_of(request))
    reason = data.reason if data is not None else "cancelled by the program"
    view = await orders.cancel_for_participant(wallets, program, order_id, reason, sealer)
    await audit.record(program.id, f"key:{principal_of(request).subject_id}", "order.cancelled", order_id,
                       reason=reason)
    return view


@post("/v1/orders/{order_id:str}/redeliver", guards=[admin_only], operation_id="redeliverOrder",
      summary="Deliver a fulfilled card again",
      description="A feed line tells the participant the card is waiting in the app; the code is never emailed "
                  "or shown to the admin. Only fulfilled orders (409 otherwise).", tags=["fulfillment"],
      status_code=200)
async def redeliver_order(request: Request[Any, Any, Any], order_id: str) -> orders.OrderView:
    return await orders.redeliver(await get_program(program_of(request)), order_id)


@get("/v1/fulfillment/webhook-deliveries", guards=[admin_only], operation_id="listWebhookDeliveries",
     summary="Webhook delivery log (admin)", description="Every partner's deliveries, newest first.",
     tags=["fulfillment"])
async def admin_deliveries(request: Request[Any, Any, Any], limit: Limit = 50,
                           cursor: Cursor = None) -> webhooks.DeliveryPage:
    return await webhooks.deliveries(program_of(request), None, limit, cursor)


# --- partners -----------------------------------------------------------------------------


@post("/v1/fulfillment/orders/claim", guards=[partner_only], operation_id="claimOrders",
      summary="Claim a batch of orders with a lease",
      description="Orders routed to you, oldest first, each with a `lease_id`. An unexpired lease is never handed "
                  "twice; an expired one returns the order to the queue.", tags=["partner"], status_code=200)
async def claim(request: Request[Any, Any, Any], data: ClaimRequest, wallets: WalletStore,
                sealer: Sealer) -> ClaimedOrders:
    return await claim_for(wallets, sealer, principal_of(request), data)


async def claim_for(wallets: WalletStore, sealer: Sealer, principal: Principal, data: ClaimRequest) -> ClaimedOrders:
    """The claim of POST /v1/fulfillment/orders/claim (also served by api/lean.py)."""
    return ClaimedOrders(items=await partner_claims.claim(
        wallets, sealer, await get_program(principal.program_id or ""), principal.partner_id or "", data.limit,
        data.lease_seconds))


@patch("/v1/fulfillment/items/{item_id:str}", guards=[partner_only], operation_id="setItemAvailability",
       summary="Mark an item routed to you unavailable, or back",
       description="`available: false` takes an active item out of the catalog and out of redemption until you "
                   "send `available: true`; phones see it at once (the catalog ETag moves). An item an admin "
                   "disabled stays disabled. Items not routed to you answer 404.", tags=["partner"])
async def set_item_availability(request: Request[Any, Any, Any], item_id: str, data: AvailabilityRequest,
                                redis: Any) -> changes.SupplierAvailability:
    principal = principal_of(request)
    return await changes.set_supplier_availability(redis, principal.program_id or "", principal.partner_id or "",
                                                   item_id, data.available)


@post("/v1/fulfillment/orders/{order_id:str}/fulfill", guards=[partner_only], operation_id="fulfillOrder",
      summary="Deliver an order", description="Send `credentials` (code, PIN, URL, expiry), or a supplier's "
      "`credential_list` of labelled lines (type code, pin, url, barcode or expiry), or both: the order answers "
      "both shapes. Stores them encrypted and captures the held points. The "
      "same call again answers 200 and captures nothing twice; fulfilling a cancelled or failed order, or one "
      "whose lease (`lease_id`) was claimed by another, answers 409.", tags=["partner"], status_code=200)
async def fulfil(request: Request[Any, Any, Any], order_id: str, data: FulfilRequest, wallets: WalletStore,
                 sealer: Sealer) -> orders.PartnerOrder:
    return await fulfil_as(wallets, sealer, principal_of(request), order_id, data)


async def fulfil_as(wallets: WalletStore, sealer: Sealer, principal: Principal, order_id: str,
                    data: FulfilRequest) -> orders.PartnerOrder:
    """The fulfil of POST /v1/fulfillment/orders/{order_id}/fulfill (also served by api/lean.py)."""
    program = await get_program(principal.program_id or "")
    card = delivery.delivered(data.credentials, data.credential_list)
    return await orders.fulfil_for_partner(wallets, sealer, program, order_id, principal.partner_id, card,
                                           data.lease_id)


@post("/v1/fulfillment/orders/{order_id:str}/fail", guards=[partner_only], operation_id="failOrder",
      summary="Give up on an order", description="The held points return to the participant, who is told in the "
      "feed.", tags=["partner"], status_code=200)
async def fail(request: Request[Any, Any, Any], order_id: str, data: FailRequest,
               wallets: WalletStore) -> orders.PartnerOrder:
    principal = principal_of(request)
    program = await get_program(principal.program_id or "")
    row = await orders.fail(wallets, program, order_id, principal.partner_id, data.reason, data.lease_id)
    return (await orders.partner_views([row]))[0]


@get("/v1/fulfillment/deliveries", guards=[partner_only], operation_id="listMyWebhookDeliveries",
     summary="My webhook delivery log", description="Deliveries to your webhook, newest first.", tags=["partner"])
async def partner_deliveries(request: Request[Any, Any, Any], limit: Limit = 50,
                             cursor: Cursor = None) -> webhooks.DeliveryPage:
    principal = principal_of(request)
    return await webhooks.deliveries(principal.program_id or "", principal.partner_id, limit, cursor)


ROUTES = [redeem, my_orders, my_order, cancel, redeem_for, create_partner, list_partners, update_partner, rotate_partner_key,
          set_webhook, list_orders, export,
          read_order, cancel_order, redeliver_order, admin_deliveries, claim, set_item_availability, fulfil, fail, partner_deliveries]