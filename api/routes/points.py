"""Moving points (program admin) and reading wallets and the ledger."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any, NamedTuple

import msgspec
from litestar import Request, Response, get, post
from litestar.openapi.datastructures import ResponseSpec
from litestar.di import Provide
from msgspec import Meta

from api.auth import CARRY_GATE, Principal, admin_only, principal_of
from api.problems import status_for
from api.idempotency import IdempotencyKey, item_idem, provide_idem
from api.routes.participants import Cursor, Limit, program_of
from api.settings import Settings
from programs import approvals, point_moves, standings
from programs.programs import get_program
from programs.participants import get_participant
from wallet import accounts, ledger
from kernel.money import Points
from wallet.accounts import Reason
from kernel.ids import Id, new_id
from wallet.store import GrantSpec, WalletStore
from kernel.idempotency import Idem, once, pinned_id

IDEMPOTENT = {"idem": Provide(provide_idem)}
REPLAYED = {"Idempotent-Replayed": "true"}


class PointsRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    participant_id: Id
    points: Points
    reason: Reason
    reference: Annotated[str, Meta(max_length=200)] | None = None


class BatchGrant(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    idempotency_id: IdempotencyKey
    participant_id: Id
    points: Points
    reason: Reason
    reference: Annotated[str, Meta(max_length=200)] | None = None


class BatchRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    grants: Annotated[list[BatchGrant], Meta(min_length=1, max_length=1000)]


class BatchItemResult(msgspec.Struct, frozen=True, omit_defaults=True):
    idempotency_id: str
    status: int
    replayed: bool = False
    result: accounts.PointsMove | None = None
    code: str | None = None
    detail: str | None = None


class BatchResult(msgspec.Struct, frozen=True):
    applied: int
    replayed: int
    failed: int
    items: list[BatchItemResult]


def wallets_of(request: Request[Any, Any, Any]) -> WalletStore:
    # Read from the app, not injected: with `idem` beside it, Litestar would resolve both
    # dependencies in a task group on every request (about 8% of a deduction's CPU).
    return request.app.state.wallets


def moved_response(moved: accounts.Moved) -> Response[accounts.PointsMove]:
    return Response(moved.move, status_code=201, headers=REPLAYED if moved.replayed else None)


@post("/v1/points/grants", guards=[admin_only], dependencies=IDEMPOTENT, operation_id="grantPoints",
      opt={**CARRY_GATE, "audit": "self"},
      summary="Grant points", description="Moves points from the program budget to the participant's available "
      "balance, atomically. Requires `Idempotency-Key`. Above the program's `approval_threshold_points` it answers "
      "202 with an approval request instead, and nothing moves until another person approves it.", tags=["points"],
      responses={202: ResponseSpec(approvals.ApprovalView, generate_examples=False,
                                   description="Waiting for a second person's approval")})
async def grant(request: Request[Any, Any, Any], data: PointsRequest, idem: Idem) -> Response[Any]:
    answer = await move_or_ask(request.app.state, principal_of(request), "grant", data, idem)
    return Response(answer.body, status_code=answer.status, headers=REPLAYED if answer.replayed else None)


class MoveAnswer(NamedTuple):
    status: int
    body: Any
    replayed: bool = False


async def move_or_ask(state: Any, principal: Principal, kind: approvals.MoveKind, data: PointsRequest,
                      idem: Idem) -> MoveAnswer:
    """A manual grant or deduction (also served by api/lean.py): applied at once (201), or,
    above the program's approval threshold, filed for a second person (202)."""
    program_id = principal.program_id or ""
    program = await get_program(program_id)
    if approvals.needs_approval(program, data.points):
        request_id = await pinned_id(state.redis, idem, "apr", state.settings.idempotency_ttl_seconds)
        view = await approvals.request_move(program, kind, data.participant_id, data.points, data.reason,
                                            f"key:{principal.subject_id}", request_id)
        return MoveAnswer(202, view)
    move = point_moves.grant_points if kind == "grant" else point_moves.deduct_points
    moved = await move(state.wallets, program_id, data.participant_id, data.points, data.reason, idem,
                       reference=data.reference or "", actor=f"key:{principal.subject_id}")
    return MoveAnswer(201, moved.move, moved.replayed)


@post("/v1/points/deductions", guards=[admin_only], dependencies=IDEMPOTENT, operation_id="deductPoints",
      opt={**CARRY_GATE, "audit": "self"},
      summary="Deduct points", description="Takes points back from the participant's available balance to the "
      "program budget; never below zero (422 `insufficient_points`). Requires `Idempotency-Key`. Above the "
      "program's `approval_threshold_points` it answers 202 with an approval request instead.", tags=["points"],
      responses={202: ResponseSpec(approvals.ApprovalView, generate_examples=False,
                                   description="Waiting for a second person's approval")})
async def deduct(request: Request[Any, Any, Any], data: PointsRequest, idem: Idem) -> Response[Any]:
    answer = await move_or_ask(request.app.state, principal_of(request), "deduction", data, idem)
    return Response(answer.body, status_code=answer.status, headers=REPLAYED if answer.replayed else None)



@post("/v1/points/grants/batch", guards=[admin_only], dependencies=IDEMPOTENT, operation_id="grantPointsBatch",
      summary="Grant points in bulk",
      description="Up to 1,000 grants, applied 25 to a Redis call. Each grant carries its own "
                  "`idempotency_id`: a grant already applied (in this or an earlier batch) is replayed, not "
                  "applied again. Each item answers on its own; one failure does not stop the others. A program "
                  "suspended before the batch refuses it whole (409 `program_suspended`); suspended during it, "
                  "the grants applied before stay and the rest answer 409 as items. The "
                  "request's own `Idempotency-Key` replays the whole first answer with `Idempotent-Replayed: true`; "
                  "the same key with another body answers 422 `idempotency_key_reused`. Each grant that applies "
                  "scores the program's points leaderboards in the same call.",
      tags=["points"], status_code=200)
async def grant_batch(request: Request[Any, Any, Any], data: BatchRequest, idem: Idem, wallets: WalletStore,
                      settings: Settings) -> Response[BatchResult]:
    principal = principal_of(request)
    program_id = program_of(request)

    async def action() -> BatchResult:
        return await _apply_batch(wallets, principal, program_id, data)

    body, replayed = await once(wallets.client, idem, settings.idempotency_ttl_seconds, action, BatchResult)
    return Response(body, status_code=200, headers=REPLAYED if replayed else None)


async def _apply_batch(wallets: WalletStore, principal: Principal, program_id: str, data: BatchRequest) -> BatchResult:
    # Each grant moves the points leaderboards in the batch's own call, only when it applies.
    boards = await standings.points_boards(program_id)
    teams = await standings.teams_of(program_id, {g.participant_id for g in data.grants}) \
        if boards.by_team else {}
    now = datetime.now(timezone.utc)
    specs = []
    for g in data.grants:
        tx = new_id("tx")
        specs.append(GrantSpec(
            idem=item_idem(principal, "grant-batch", g.idempotency_id, msgspec.json.encode(g)),
            tx=tx, participant_id=g.participant_id, points=g.points, kind="grant",
            reference=g.reference or "", metadata=msgspec.json.encode({"reason": g.reason}).decode(),
            boards=boards.scoring(g.participant_id, teams.get(g.participant_id), tx, now),
        ))
    outcomes = await wallets.grant_batch(program_id, specs)
    suspended = next((o for o in outcomes if o.code == "program_suspended"), None)
    if suspended is not None and not any(o.ok and not o.replayed for o in outcomes):
        # Nothing new applied: the batch as a whole is refused (the key is free again). A
        # suspension during the batch (its grants go 25 to a call) answers item by item.
        accounts.raise_for(suspended)
    items = []
    for g, outcome in zip(data.grants, outcomes):
        if outcome.ok:
            move = accounts.PointsMove(
                transaction_id=outcome.tx or "", participant_id=outcome.participant or "", points=outcome.points or 0,
                balance=accounts.Balance(available=outcome.available or 0, held=outcome.held or 0))
            items.append(BatchItemResult(idempotency_id=g.idempotency_id, status=201,
                                         replayed=bool(outcome.replayed), result=move))
        else:
            items.append(BatchItemResult(idempotency_id=g.idempotency_id, status=status_for(outcome.code),
                                         replayed=bool(outcome.replayed), code=outcome.code, detail=outcome.detail))
    replayed = sum(1 for i in items if i.replayed)
    failed = sum(1 for i in items if i.status >= 300)
    return BatchResult(applied=len(items) - replayed - failed, replayed=replayed, failed=failed, items=items)


@get("/v1/participants/{participant_id:str}/wallet", guards=[admin_only], operation_id="getParticipantWallet",
     summary="A participant's balances", description="Answers from Redis: always current.", tags=["points"])
async def participant_wallet(request: Request[Any, Any, Any], participant_id: str,
                             wallets: WalletStore) -> accounts.WalletView:
    return await accounts.wallet_view(wallets, program_of(request), participant_id)


@get("/v1/participants/{participant_id:str}/transactions", guards=[admin_only],
     operation_id="listParticipantTransactions", summary="A participant's history",
     description="From the SQL ledger, newest first; `as_of` says up to when it is complete.", tags=["points"])
async def participant_transactions(request: Request[Any, Any, Any], participant_id: str, redis: Any,
                                   limit: Limit = 50, cursor: Cursor = None) -> ledger.TransactionPage:
    program_id = program_of(request)
    await get_participant(program_id, participant_id)
    return await ledger.transactions(redis, program_id, participant_id, limit, cursor)


@get("/v1/program/ledger", guards=[admin_only], operation_id="getProgramLedger", summary="Program account totals",
     description="Budget, participants' available and held totals, and every program account, from the ledger.",
     tags=["points"])
async def program_ledger(request: Request[Any, Any, Any], redis: Any) -> ledger.ProgramLedger:
    return await ledger.program_ledger(redis, program_of(request))


ROUTES = [grant, deduct, grant_batch, participant_wallet, participant_transactions, program_ledger]
