"""Wallet operations as the domain sees them: validated amounts in, results or domain errors out.

Each call is one atomic Redis function (see store.py). Replays of an idempotent request
come back flagged `replayed`, and so do the domain errors of replayed failures, so the
HTTP edge can mark them.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from kernel.errors import (
    BudgetExhausted,
    Conflict,
    DomainError,
    IdempotencyKeyReused,
    InsufficientPoints,
    Invalid,
    NotFound,
    ProgramSuspended,
    Refused,
)
from kernel.ids import new_id
from wallet.store import NO_BOARDS, Boards, GrantSpec, Outcome, WalletStore
from kernel.idempotency import Idem

Reason = Annotated[str, Meta(min_length=1, max_length=200)]

_ERRORS: dict[str, type[DomainError]] = {
    "insufficient_points": InsufficientPoints,
    "budget_exhausted": BudgetExhausted,
    "idempotency_key_reused": IdempotencyKeyReused,
    "not_found": NotFound,
    "conflict": Conflict,
    "validation_error": Invalid,
    "program_suspended": ProgramSuspended,
}


class Balance(msgspec.Struct, frozen=True):
    available: int
    held: int


class PointsMove(msgspec.Struct, frozen=True):
    transaction_id: str
    participant_id: str
    points: int
    balance: Balance


class PendingLotView(msgspec.Struct, frozen=True):
    """A pending lot as the participant sees it on Home."""

    points: int
    releases_at: datetime | None  # None: released when a manager approves it
    reason: str


class WalletView(msgspec.Struct, frozen=True, omit_defaults=True):
    available: int
    held: int
    lifetime_earned: int
    lifetime_spent: int
    # Points waiting in lots (not spendable), and the lots, soonest release first.
    pending: int
    pending_lots: list[PendingLotView]
    # Points a returned sale took back that were no longer there; shown only when > 0.
    owed: int | None = None


class Moved(msgspec.Struct, frozen=True):
    """A result and whether it was replayed from the idempotency record."""

    move: PointsMove
    replayed: bool


def raise_for(outcome: Outcome) -> None:
    if outcome.ok:
        return
    detail = outcome.detail or outcome.code or "refused"
    error = _ERRORS.get(outcome.code or "")
    if error is None:
        raise Refused(outcome.code or "conflict", detail, replayed=bool(outcome.replayed))
    raise error(detail, replayed=bool(outcome.replayed))


def _moved(outcome: Outcome) -> Moved:
    raise_for(outcome)
    move = PointsMove(
        transaction_id=outcome.tx or "",
        participant_id=outcome.participant or "",
        points=outcome.points or 0,
        balance=Balance(available=outcome.available or 0, held=outcome.held or 0),
    )
    return Moved(move=move, replayed=bool(outcome.replayed))


def _metadata(reason: str, extra: dict | None = None) -> str:
    return msgspec.json.encode({"reason": reason, **(extra or {})}).decode()


async def grant(
    store: WalletStore, program_id: str, participant_id: str, points: int, reason: str, idem: Idem,
    kind: str = "grant", reference: str = "", tx: str | None = None, boards: Boards = NO_BOARDS,
    actor: dict[str, str] | None = None,
) -> Moved:
    """`tx` names the transaction when the caller pinned its id beforehand (to find it again,
    or to mark `boards`, the leaderboards the grant moves in the same call, with it)."""
    spec = GrantSpec(idem=idem, tx=tx or new_id("tx"), participant_id=participant_id, points=points, kind=kind,
                     reference=reference, metadata=_metadata(reason, actor), boards=boards)
    return _moved(await store.grant(program_id, spec))


async def deduct(
    store: WalletStore, program_id: str, participant_id: str, points: int, reason: str, idem: Idem,
    kind: str = "deduction", reference: str = "", actor: dict[str, str] | None = None,
) -> Moved:
    """`actor` ({"actor": ..., "approved_by": ...}) rides in the journal entry's metadata for the
    audit log (programs/audit.py), like the reason."""
    spec = GrantSpec(idem=idem, tx=new_id("tx"), participant_id=participant_id, points=points, kind=kind,
                     reference=reference, metadata=_metadata(reason, actor))
    return _moved(await store.deduct(program_id, spec))


async def hold(
    store: WalletStore, program_id: str, participant_id: str, points: int, hold_id: str, idem: Idem,
    reason: str = "", kind: str = "hold", actor: dict[str, str] | None = None,
) -> Moved:
    """`actor` names who holds the points for the participant (a redemption made for them)."""
    spec = GrantSpec(idem=idem, tx=new_id("tx"), participant_id=participant_id, points=points, kind=kind,
                     reference=hold_id, metadata=_metadata(reason or kind, actor))
    return _moved(await store.hold(program_id, hold_id, spec))


async def capture(
    store: WalletStore, program_id: str, participant_id: str, hold_id: str, idem: Idem,
    points: int | None = None, kind: str = "capture", extra: dict[str, Any] | None = None,
) -> Moved:
    """The held points taken; `extra`: more of the entry's metadata, for the journal's
    followers (a partner order's ready line: fulfillment/settlements.py)."""
    outcome = await store.capture(program_id, hold_id, participant_id, new_id("tx"), idem, points=points,
                                  kind=kind, reference=hold_id, metadata=_metadata(kind, extra))
    return _moved(outcome)


async def void(
    store: WalletStore, program_id: str, participant_id: str, hold_id: str, idem: Idem, kind: str = "void",
) -> Moved:
    outcome = await store.void(program_id, hold_id, participant_id, new_id("tx"), idem, kind=kind,
                               reference=hold_id, metadata=_metadata(kind))
    return _moved(outcome)


def _moment(ms: int | None) -> datetime | None:
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=timezone.utc)


async def wallet_view(store: WalletStore, program_id: str, participant_id: str) -> WalletView:
    """Balances, pending lots and owed points: one wallet call (rw_balance)."""
    read = await store.balance_read(program_id, participant_id)
    if read is None:
        raise NotFound("no such participant")
    return WalletView(
        available=read.available,
        held=read.held,
        lifetime_earned=read.earned,
        lifetime_spent=read.spent,
        pending=read.pending,
        pending_lots=[PendingLotView(points=lot.lot.points, releases_at=_moment(lot.lot.releases_at),
                                     reason=lot.lot.reason) for lot in read.lots],
        owed=read.owed or None,
    )
