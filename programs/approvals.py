"""Four eyes: a money move above the program's approval threshold waits for a second person.

A program's `approval_threshold_points` (off when unset) turns a larger move into a request
that another owner or manager (or another admin key) approves or rejects with a reason;
nobody decides their own. The moves it covers, by kind: a manual `grant` or `deduction`, a
`redemption` made for a participant (the order's points), a budget `top_up` (the points the
amount buys) and a `rule_activation` (the rule's simulated cost over the last 90 days).

This module files, reads and rejects requests; programs/approving.py approves them (it calls
the use cases of every kind, which file their requests through here). A request carries
what its kind needs to be carried out later (`Details`, the payload column), so an approval
does exactly what was asked, and what was made (the order, the funding, the rule version)
is recorded on it.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any, Literal

import msgspec

from kernel.clock import utc
from kernel.errors import Conflict, DomainError, NotFound
from kernel.pages import newest_first
from programs import audit
from programs.programs import Money, ProgramView
from programs.rules import RuleSpec
from programs.tables import ApprovalRequest, Participant

MoveKind = Literal["grant", "deduction"]
ApprovalKind = Literal["grant", "deduction", "redemption", "top_up", "rule_activation"]
ApprovalStatus = Literal["pending", "approving", "approved", "failed", "rejected"]


class OwnRequest(DomainError):
    """Four eyes means two people: the one who asked cannot decide."""

    code = "forbidden"


class Details(msgspec.Struct, frozen=True, omit_defaults=True):
    """What a request needs to be shown and carried out, beyond its participant and points
    (stored as JSON in the request's payload)."""

    amount: Money | None = None  # the move in money (see ApprovalView.amount)
    item_id: str | None = None
    item_title: str | None = None
    face_value: Money | None = None  # as asked, for an item of variable value; None: the item's own
    rule_id: str | None = None
    rule_name: str | None = None
    rule_version: int | None = None  # the version the approval makes: 1 for a new rule
    rule_digest: str | None = None
    rule: RuleSpec | None = None  # exactly the rule the approval activates


class ApprovalView(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    kind: ApprovalKind
    # A grant's or deduction's points; a redemption's order points; the points a top-up buys;
    # a rule's simulated award over the last 90 days.
    points: int
    reason: str
    status: ApprovalStatus
    requested_by: str
    created_at: datetime
    participant_id: str | None = None  # grants, deductions, redemptions
    # The move in money: the points' value for a grant or deduction, the card's face value for
    # a redemption, the payment for a top-up, the rule's simulated 90-day cost.
    amount: Money | None = None
    item_id: str | None = None
    item_title: str | None = None
    rule_id: str | None = None
    rule_name: str | None = None
    rule_version: int | None = None
    rule_digest: str | None = None
    decided_by: str | None = None
    decision_reason: str | None = None
    transaction_id: str | None = None  # an approved grant's or deduction's
    order_id: str | None = None  # an approved redemption's order
    funding_id: str | None = None  # an approved top-up's funding: pay it with its client secret
    decided_at: datetime | None = None


class ApprovalPage(msgspec.Struct, frozen=True):
    items: list[ApprovalView]
    next_cursor: str | None


_decode_details = msgspec.json.Decoder(Details).decode
OUTCOME_FIELD = {"redemption": "order_id", "top_up": "funding_id"}


def needs_approval(program: ProgramView, points: int) -> bool:
    threshold = program.approval_threshold_points
    return threshold is not None and points > threshold


def made_id(prefix: str, request_id: str) -> str:
    """The id of what a request's approval makes (an order, a funding, a new rule): the
    request's own time-ordered id under the thing's prefix, so every attempt makes the same one."""
    return f"{prefix}_{request_id.split('_', 1)[-1]}"


def money_of(program: ProgramView, points: int) -> Money:
    return Money(amount=points * program.point_value.amount, currency=program.point_value.currency)


def details_of(row: dict[str, Any]) -> Details:
    return _decode_details(row.get("payload") or "{}")


def _view(row: dict[str, Any]) -> ApprovalView:
    details = details_of(row)
    outcome = {OUTCOME_FIELD[row["kind"]]: row["outcome_id"]} \
        if row.get("outcome_id") and row["kind"] in OUTCOME_FIELD else {}
    return ApprovalView(
        id=row["id"], kind=row["kind"], participant_id=row["participant_id"] or None, points=row["points"],
        reason=row["reason"], status=row["status"], requested_by=row["requested_by"],
        created_at=utc(row["created_at"]), amount=details.amount, item_id=details.item_id,
        item_title=details.item_title, rule_id=details.rule_id, rule_name=details.rule_name,
        rule_version=details.rule_version, rule_digest=details.rule_digest, decided_by=row["decided_by"],
        decision_reason=row["decision_reason"], transaction_id=row["transaction_id"],
        decided_at=utc(row["decided_at"]), **outcome)


async def file_request(program: ProgramView, kind: ApprovalKind, points: int, requested_by: str, request_id: str,
                       *, participant_id: str = "", reason: str = "", details: Details = Details()) -> ApprovalView:
    """Files the request under `request_id` (pinned by the caller per idempotency key, so a
    retry files nothing twice) and puts it on the audit log. Nothing moves yet."""
    if participant_id:
        person = await Participant.select(Participant.id).where(
            (Participant.id == participant_id) & (Participant.program_id == program.id)).first().run()
        if person is None:
            raise NotFound("no such participant")
    filed = await ApprovalRequest.insert(ApprovalRequest(
        id=request_id, program_id=program.id, kind=kind, participant_id=participant_id, points=points,
        reason=reason, requested_by=requested_by, status="pending", created_at=datetime.now(timezone.utc),
        payload=msgspec.json.encode(details).decode(),
    )).on_conflict(action="DO NOTHING").returning(ApprovalRequest.id).run()
    if filed:
        await audit.record(program.id, requested_by, "approval.requested", request_id, request_kind=kind,
                           points=points, **({"participant_id": participant_id} if participant_id else {}),
                           **({"reason": reason} if reason else {}))
    return await get_request(program.id, request_id)


async def request_move(program: ProgramView, kind: MoveKind, participant_id: str, points: int, reason: str,
                       requested_by: str, request_id: str) -> ApprovalView:
    """A manual grant or deduction above the threshold, filed (see `file_request`)."""
    return await file_request(program, kind, points, requested_by, request_id, participant_id=participant_id,
                              reason=reason, details=Details(amount=money_of(program, points)))


async def get_request(program_id: str, request_id: str) -> ApprovalView:
    return _view(await request_row(program_id, request_id))


async def request_row(program_id: str, request_id: str) -> dict[str, Any]:
    row = await ApprovalRequest.select().where((ApprovalRequest.id == request_id)
                                               & (ApprovalRequest.program_id == program_id)).first().run()
    if row is None:
        raise NotFound("no such approval request")
    return row


async def list_requests(program_id: str, status: ApprovalStatus | None = None, limit: int = 50,
                        cursor: str | None = None) -> ApprovalPage:
    where = ApprovalRequest.program_id == program_id
    if status is not None:
        where &= ApprovalRequest.status == status
    rows, following = await newest_first(ApprovalRequest, where, limit, cursor)
    return ApprovalPage(items=[_view(r) for r in rows], next_cursor=following)


def check_decider(request: ApprovalView, decided_by: str) -> None:
    if request.requested_by == decided_by:
        raise OwnRequest(f"you asked for this {request.kind.replace('_', ' ')}: another owner or manager must "
                         "decide it")


async def reject(program_id: str, request_id: str, decided_by: str, reason: str) -> ApprovalView:
    request = await get_request(program_id, request_id)
    check_decider(request, decided_by)
    changed = await ApprovalRequest.update({
        ApprovalRequest.status: "rejected", ApprovalRequest.decided_by: decided_by,
        ApprovalRequest.decision_reason: reason, ApprovalRequest.decided_at: datetime.now(timezone.utc)}).where(
        (ApprovalRequest.id == request_id) & (ApprovalRequest.status == "pending")).returning(ApprovalRequest.id).run()
    if not changed:
        raise Conflict(f"the request is already {request.status}")
    return await get_request(program_id, request_id)


async def start(program_id: str, request_id: str, decided_by: str, note: str | None) -> None:
    """pending -> approving (or approving again, after a crash): the move is applied after this."""
    await ApprovalRequest.update({ApprovalRequest.status: "approving", ApprovalRequest.decided_by: decided_by,
                                  ApprovalRequest.decision_reason: note}).where(
        (ApprovalRequest.id == request_id) & ApprovalRequest.status.is_in(["pending", "approving"])).run()


async def finish(program_id: str, request_id: str, status: Literal["approved", "failed"],
                 values: dict[Any, Any]) -> ApprovalView:
    await ApprovalRequest.update({ApprovalRequest.status: status, ApprovalRequest.decided_at: datetime.now(timezone.utc),
                                  **values}).where(
        (ApprovalRequest.id == request_id) & (ApprovalRequest.program_id == program_id)
        & (ApprovalRequest.status == "approving")).run()
    return await get_request(program_id, request_id)
