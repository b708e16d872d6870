"""Four eyes: money moves above the program's threshold (grants, deductions, redemptions made for
someone, top-ups, rule activations), waiting for a second person."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from msgspec import Meta

from api.auth import active_program, admin_only, principal_of
from api.routes.participants import Cursor, Limit, program_of
from fulfillment.sealing import Sealer
from programs import approvals, approving, audit
from wallet.store import WalletStore


# The 202 answer of every route four eyes may hold back, for the OpenAPI document.
ASKED = {202: ResponseSpec(approvals.ApprovalView, generate_examples=False,
                           description="Waiting for a second person's approval")}


def done_or_asked(body: Any, status: int, replayed: bool = False) -> Response[Any]:
    """A four-eyes route's answer: what it did (`status`), or 202 with the request it filed."""
    return Response(body, status_code=202 if isinstance(body, approvals.ApprovalView) else status,
                    headers={"Idempotent-Replayed": "true"} if replayed else None)


class Approval(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reason: Annotated[str, Meta(min_length=1, max_length=500)] | None = None


class Rejection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reason: Annotated[str, Meta(min_length=1, max_length=500)]


@get("/v1/approvals", guards=[admin_only], operation_id="listApprovals", summary="Approval requests",
     description="Newest first; `status=pending` for what waits for a decision.", tags=["approvals"])
async def list_all(request: Request[Any, Any, Any], limit: Limit = 50, cursor: Cursor = None,
                   status: approvals.ApprovalStatus | None = None) -> approvals.ApprovalPage:
    return await approvals.list_requests(program_of(request), status, limit, cursor)


@get("/v1/approvals/{request_id:str}", guards=[admin_only], operation_id="getApproval", summary="An approval request",
     description="With its decision and, once approved, the transaction it made.", tags=["approvals"])
async def read(request: Request[Any, Any, Any], request_id: str) -> approvals.ApprovalView:
    return await approvals.get_request(program_of(request), request_id)


@post("/v1/approvals/{request_id:str}/approve", guards=[admin_only, active_program], operation_id="approveMove",
      opt={"audit": "self"},
      summary="Approve a move", description="Applies the request's move once: the grant or deduction, places the "
      "redemption's order (`order_id`), creates the top-up's PaymentIntent (`funding_id`: pay it with its client "
      "secret) or activates exactly the rule version asked for. Approving again answers the same request; a "
      "second approval while the first is still running answers 409 `idempotency_key_in_flight`. The key that "
      "asked cannot approve (403); a move refused now (the balance no longer covers it, the card is out of stock, "
      "the rule changed meanwhile) leaves the request `failed` with the reason.", tags=["approvals"],
      status_code=200)
async def approve(request: Request[Any, Any, Any], request_id: str, wallets: WalletStore, sealer: Sealer,
                  data: Approval | None = None) -> approvals.ApprovalView:
    principal = principal_of(request)
    view = await approving.approve(wallets, sealer, program_of(request), request_id, f"key:{principal.subject_id}",
                                   data.reason if data else None, gateway=getattr(request.app.state, "stripe", None))
    await audit.record(program_of(request), f"key:{principal.subject_id}", "approval.approved", request_id,
                       status=view.status)
    return view


@post("/v1/approvals/{request_id:str}/reject", opt={"audit": "self"}, guards=[admin_only], operation_id="rejectMove",
      summary="Reject a move", description="With a reason; nothing moves. The key that asked cannot reject (403).",
      tags=["approvals"], status_code=200)
async def reject(request: Request[Any, Any, Any], request_id: str, data: Rejection) -> approvals.ApprovalView:
    principal = principal_of(request)
    view = await approvals.reject(program_of(request), request_id, f"key:{principal.subject_id}", data.reason)
    await audit.record(program_of(request), f"key:{principal.subject_id}", "approval.rejected", request_id,
                       reason=data.reason)
    return view


ROUTES = [list_all, read, approve, reject]
