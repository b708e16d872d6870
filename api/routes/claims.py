"""Sale claims: filed by participants, decided by admins."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post, put
from litestar.di import Provide

from api.auth import active_program, admin_only, participant_only, principal_of
from api.idempotency import provide_idem
from api.routes.participants import Cursor, IdFilter, Limit, program_of
from api.settings import Settings
from programs import claims, receipts
from wallet.store import WalletStore
from kernel.idempotency import Idem, once, pinned_id

IDEMPOTENT = {"idem": Provide(provide_idem)}


@post("/v1/me/claims", guards=[participant_only, active_program], dependencies=IDEMPOTENT, operation_id="fileClaim",
      summary="Claim a sale", description="Invoice number, date, amount and product, for an admin to approve. The "
      "same invoice number again in the program is flagged `duplicate` and cannot be paid twice. Requires "
      "`Idempotency-Key`.", tags=["claims"])
async def file(request: Request[Any, Any, Any], data: claims.NewClaim, idem: Idem, redis: Any,
               settings: Settings) -> Response[Any]:
    principal = principal_of(request)

    async def action() -> claims.ClaimView:
        # Pinned before any write, so a retry after a crash files under the same id.
        claim_id = await pinned_id(redis, idem, "clm", settings.idempotency_ttl_seconds)
        return await claims.file_claim(principal.program_id or "", principal.subject_id, data, claim_id=claim_id)

    body, replayed = await once(redis, idem, settings.idempotency_ttl_seconds, action, claims.ClaimView)
    return Response(body, status_code=201, headers={"Idempotent-Replayed": "true"} if replayed else None)


@get("/v1/me/claims", guards=[participant_only], operation_id="listMyClaims", summary="My claims",
     description="Newest first.", tags=["claims"])
async def my_claims(request: Request[Any, Any, Any], limit: Limit = 50, cursor: Cursor = None,
                    status: claims.ClaimStatus | None = None) -> claims.ClaimPage:
    principal = principal_of(request)
    return await claims.list_claims(principal.program_id or "", limit, cursor, status, principal.subject_id)


@get("/v1/me/claims/{claim_id:str}", guards=[participant_only], operation_id="getMyClaim", summary="One of my claims",
     description="404 for another participant's claim.", tags=["claims"])
async def my_claim(request: Request[Any, Any, Any], claim_id: str) -> claims.ClaimView:
    principal = principal_of(request)
    return await claims.get_claim(principal.program_id or "", claim_id, principal.subject_id)


@get("/v1/claims", guards=[admin_only], operation_id="listClaims", summary="List claims",
     description="Newest first; filter by `status` (pending, approved, rejected, duplicate) or `participant_id`.",
     tags=["claims"])
async def list_all(request: Request[Any, Any, Any], limit: Limit = 50, cursor: Cursor = None,
                   status: claims.ClaimStatus | None = None, participant_id: IdFilter = None) -> claims.ClaimPage:
    return await claims.list_claims(program_of(request), limit, cursor, status, participant_id)


@get("/v1/claims/{claim_id:str}", guards=[admin_only], operation_id="getClaim", summary="Read a claim",
     description="404 for another program's claim.", tags=["claims"])
async def read(request: Request[Any, Any, Any], claim_id: str) -> claims.ClaimView:
    return await claims.get_claim(program_of(request), claim_id)


@post("/v1/claims/{claim_id:str}/approve", guards=[admin_only, active_program], operation_id="approveClaim",
      summary="Approve a claim", description="The claim becomes a `sale` activity and earns through the rules. "
      "A claim is decided once (409 after); a duplicate cannot be approved.", tags=["claims"], status_code=200)
async def approve(request: Request[Any, Any, Any], claim_id: str, wallets: WalletStore,
                  data: claims.Decision | None = None) -> claims.ClaimView:
    return await claims.decide_claim(wallets, program_of(request), claim_id, "approved",
                                     data.reason if data else None)


@post("/v1/claims/{claim_id:str}/reject", guards=[admin_only], operation_id="rejectClaim", summary="Reject a claim",
      description="With a reason the participant sees in their feed.", tags=["claims"], status_code=200)
async def reject(request: Request[Any, Any, Any], claim_id: str, data: claims.Rejection,
                 wallets: WalletStore) -> claims.ClaimView:
    return await claims.decide_claim(wallets, program_of(request), claim_id, "rejected", data.reason)


RECEIPT_BODY_LIMIT = receipts.MAX_BYTES + 64 * 1024  # past 10 MB: 413 before the photo is read


@put("/v1/me/claims/{claim_id:str}/receipt", guards=[participant_only], operation_id="attachReceipt",
     summary="Attach a receipt photo", description="The body is the photo's bytes (any Content-Type: the type is "
     "read from the bytes): JPEG, PNG or HEIC, at most 10 MB. It is re-encoded as a JPEG without metadata (no "
     "location, no device) and replaces the claim's earlier one; refused once the claim is approved.",
     tags=["claims"], request_max_body_size=RECEIPT_BODY_LIMIT, status_code=200)
async def attach_receipt(request: Request[Any, Any, Any], claim_id: str, settings: Settings) -> claims.ClaimView:
    principal = principal_of(request)
    return await claims.attach_receipt(principal.program_id or "", principal.subject_id, claim_id,
                                       await request.body(), settings.data_path)


@get("/v1/me/claims/{claim_id:str}/receipt", guards=[participant_only], operation_id="getMyReceipt",
     summary="My claim's receipt photo", description="The cleaned JPEG.", tags=["claims"], media_type="image/jpeg")
async def my_receipt(request: Request[Any, Any, Any], claim_id: str, settings: Settings) -> Response[bytes]:
    principal = principal_of(request)
    jpeg = await claims.receipt_of(principal.program_id or "", claim_id, settings.data_path, principal.subject_id)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, no-store"})


@get("/v1/claims/{claim_id:str}/receipt", guards=[admin_only], operation_id="getReceipt",
     summary="A claim's receipt photo", description="The cleaned JPEG the participant sent.", tags=["claims"],
     media_type="image/jpeg")
async def receipt(request: Request[Any, Any, Any], claim_id: str, settings: Settings) -> Response[bytes]:
    jpeg = await claims.receipt_of(program_of(request), claim_id, settings.data_path)
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, no-store"})


@post("/v1/me/claims/{claim_id:str}/resubmit", guards=[participant_only, active_program],
      operation_id="resubmitClaim", summary="Fix a rejected claim and send it again",
      description="The corrected invoice number, date, amount and product; checked like a new claim, then pending "
      "again (its receipt stays). Only a rejected claim (409 otherwise).", tags=["claims"], status_code=200)
async def resubmit(request: Request[Any, Any, Any], claim_id: str, data: claims.NewClaim) -> claims.ClaimView:
    principal = principal_of(request)
    return await claims.resubmit(principal.program_id or "", principal.subject_id, claim_id, data)


ROUTES = [file, my_claims, my_claim, attach_receipt, my_receipt, resubmit, list_all, read, receipt, approve, reject]
