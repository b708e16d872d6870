"""Four eyes: a manual grant or deduction above the program's approval threshold waits for a
second person.

A program's `approval_threshold_points` (off when unset) turns a larger manual move, from an
admin key or a console user, into a request that another owner or manager (or another admin
key) approves or rejects with a reason; nobody decides their own. An approval applies the
move exactly once: the request moves pending -> approving before the wallet is touched, the
move's idempotency key is the request's id (a retried or concurrent approval replays it),
and only then does the request say approved. A request left `approving` by a crash is
approved again the same way. A move the wallet refuses at approval time (the participant
spent the points meanwhile) leaves the request `failed` with the wallet's words.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from typing import Any, Literal

import msgspec

from kernel import keys as kernel_keys
from kernel.clock import utc
from kernel.errors import Conflict, DomainError, NotFound
from kernel.idempotency import Idem
from kernel.pages import newest_first
from programs import point_moves
from programs.programs import ProgramView
from programs.tables import ApprovalRequest, Participant
from wallet.store import WalletStore

MoveKind = Literal["grant", "deduction"]
ApprovalStatus = Literal["pending", "approving", "approved", "failed", "rejected"]


class OwnRequest(DomainError):
    """Four eyes means two people: the one who asked cannot decide."""

    code = "forbidden"


class ApprovalView(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    kind: MoveKind
    participant_id: str
    points: int
    reason: str
    status: ApprovalStatus
    requested_by: str
    created_at: datetime
    decided_by: str | None = None
    decision_reason: str | None = None
    transaction_id: str | None = None
    decided_at: datetime | None = None


class ApprovalPage(msgspec.Struct, frozen=True):
    items: list[ApprovalView]
    next_cursor: str | None


def needs_approval(program: ProgramView, points: int) -> bool:
    threshold = program.approval_threshold_points
    return threshold is not None and points > threshold


def _view(row: dict[str, Any]) -> ApprovalView:
    return ApprovalView(
        id=row["id"], kind=row["kind"], participant_id=row["participant_id"], points=row["points"],
        reason=row["reason"], status=row["status"], requested_by=row["requested_by"],
        created_at=utc(row["created_at"]), decided_by=row["decided_by"], decision_reason=row["decision_reason"],
        transaction_id=row["transaction_id"], decided_at=utc(row["decided_at"]))


async def request_move(program: ProgramView, kind: MoveKind, participant_id: str, points: int, reason: str,
                       requested_by: str, request_id: str) -> ApprovalView:
    """Files the request under `request_id` (pinned by the caller per Idempotency-Key, so a
    retry files nothing twice). Nothing moves yet."""
    person = await Participant.select(Participant.id).where(
        (Participant.id == participant_id) & (Participant.program_id == program.id)).first().run()
    if person is None:
        raise NotFound("no such participant")
    await ApprovalRequest.insert(ApprovalRequest(
        id=request_id, program_id=program.id, kind=kind, participant_id=participant_id, points=points,
        reason=reason, requested_by=requested_by, status="pending", created_at=datetime.now(timezone.utc),
    )).on_conflict(action="DO NOTHING").run()
    return await get_request(program.id, request_id)


async def get_request(program_id: str, request_id: str) -> ApprovalView:
    row = await ApprovalRequest.select().where((ApprovalRequest.id == request_id)
                                               & (ApprovalRequest.program_id == program_id)).first().run()
    if row is None:
        raise NotFound("no such approval request")
    return _view(row)


async def list_requests(program_id: str, status: ApprovalStatus | None = None, limit: int = 50,
                        cursor: str | None = None) -> ApprovalPage:
    where = ApprovalRequest.program_id == program_id
    if status is not None:
        where &= ApprovalRequest.status == status
    rows, following = await newest_first(ApprovalRequest, where, limit, cursor)
    return ApprovalPage(items=[_view(r) for r in rows], next_cursor=following)


async def approve(wallets: WalletStore, program_id: str, request_id: str, decided_by: str,
                  note: str | None = None) -> ApprovalView:
    request = await get_request(program_id, request_id)
    if request.requested_by == decided_by:
        raise OwnRequest("you asked for this move: another owner or manager must approve it")
    if request.status in ("approved", "failed", "rejected"):
        if request.status == "approved":
            return request  # the same approval again: answered, nothing moves twice
        raise Conflict(f"the request is already {request.status}")
    await ApprovalRequest.update({ApprovalRequest.status: "approving", ApprovalRequest.decided_by: decided_by,
                                  ApprovalRequest.decision_reason: note}).where(
        (ApprovalRequest.id == request_id) & ApprovalRequest.status.is_in(["pending", "approving"])).run()
    idem = Idem(key=kernel_keys.idempotency(program_id, "approval", request_id),
                fingerprint=hashlib.sha256(f"{request.kind}|{request.participant_id}|{request.points}".encode())
                .hexdigest())
    move = point_moves.grant_points if request.kind == "grant" else point_moves.deduct_points
    try:
        moved = await move(wallets, program_id, request.participant_id, request.points, request.reason, idem,
                           reference=f"approval:{request_id}", actor=request.requested_by, approved_by=decided_by)
    except DomainError as exc:
        await _finish(program_id, request_id, "failed", {ApprovalRequest.decision_reason: exc.detail})
        return await get_request(program_id, request_id)
    await _finish(program_id, request_id, "approved", {ApprovalRequest.transaction_id: moved.move.transaction_id})
    return await get_request(program_id, request_id)


async def reject(program_id: str, request_id: str, decided_by: str, reason: str) -> ApprovalView:
    request = await get_request(program_id, request_id)
    if request.requested_by == decided_by:
        raise OwnRequest("you asked for this move: another owner or manager must decide it")
    changed = await ApprovalRequest.update({
        ApprovalRequest.status: "rejected", ApprovalRequest.decided_by: decided_by,
        ApprovalRequest.decision_reason: reason, ApprovalRequest.decided_at: datetime.now(timezone.utc)}).where(
        (ApprovalRequest.id == request_id) & (ApprovalRequest.status == "pending")).returning(ApprovalRequest.id).run()
    if not changed:
        raise Conflict(f"the request is already {request.status}")
    return await get_request(program_id, request_id)


async def _finish(program_id: str, request_id: str, status: str, values: dict[Any, Any]) -> None:
    await ApprovalRequest.update({ApprovalRequest.status: status, ApprovalRequest.decided_at: datetime.now(timezone.utc),
                                  **values}).where(
        (ApprovalRequest.id == request_id) & (ApprovalRequest.program_id == program_id)
        & (ApprovalRequest.status == "approving")).run()
