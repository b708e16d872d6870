"""Sale claims: a participant reports a sale from the phone; an admin approves or rejects it.

An approved claim becomes a `sale` activity and earns through the rules like any other.
The same invoice number twice in a program is flagged as a duplicate and cannot be
approved, so it is never paid twice.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from datetime import datetime, timezone
from zoneinfo import ZoneInfo
from pathlib import Path
from typing import Annotated, Literal

import msgspec
from msgspec import Meta

from programs.activities import ActivityIn, store_batch
from programs.awards import award
from programs.feed import FeedEntry, publish
from programs import receipts
from programs.programs import Money, get_program
from programs.rules import ActivityFacts
from programs.tables import Claim, Participant
from kernel.errors import Conflict, Invalid, NotFound
from kernel.ids import new_id
from kernel.pages import newest_first
from kernel.clock import utc
from wallet.store import WalletStore

ClaimStatus = Literal["pending", "approved", "rejected", "duplicate"]


class NewClaim(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    invoice_number: Annotated[str, Meta(min_length=1, max_length=100, pattern=r"^[^\x00-\x1f]+$")]
    invoice_date: dt.date
    amount: Money
    product: Annotated[str, Meta(min_length=1, max_length=200)]


class Decision(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reason: Annotated[str, Meta(min_length=1, max_length=500)] | None = None


class Rejection(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    reason: Annotated[str, Meta(min_length=1, max_length=500)]


class ClaimView(msgspec.Struct, frozen=True):
    id: str
    participant_id: str
    invoice_number: str
    invoice_date: str
    amount: Money
    product: str
    status: ClaimStatus
    created_at: datetime
    duplicate_of: str | None = None
    decision_reason: str | None = None
    activity_id: str | None = None
    decided_at: datetime | None = None
    receipt_at: datetime | None = None  # set when a receipt photo is attached
    resubmissions: int = 0


class ClaimPage(msgspec.Struct, frozen=True):
    items: list[ClaimView]
    next_cursor: str | None


def _view(row: dict) -> ClaimView:
    return ClaimView(
        id=row["id"], participant_id=row["participant_id"], invoice_number=row["invoice_number"],
        invoice_date=row["invoice_date"], amount=Money(amount=row["amount"], currency=row["currency"]),
        product=row["product"], status=row["status"], created_at=utc(row["created_at"]),
        duplicate_of=row["duplicate_of"], decision_reason=row["decision_reason"] or None,
        activity_id=row["activity_id"], decided_at=utc(row["decided_at"]),
        receipt_at=utc(row.get("receipt_at")), resubmissions=row.get("resubmissions") or 0,
    )


async def _check_dates(program_id: str, spec: NewClaim, today: dt.date | None) -> None:
    program = await get_program(program_id)
    today = today or datetime.now(ZoneInfo(program.timezone)).date()
    if spec.invoice_date > today + dt.timedelta(days=1):
        raise Invalid("invoice_date is in the future", field="invoice_date")
    window = program.claim_window_days
    if window and spec.invoice_date < today - dt.timedelta(days=window):
        raise Invalid(f"sales must be claimed within {window} days; this one was on {spec.invoice_date.isoformat()}, "
                      f"so the last day to claim it was {(spec.invoice_date + dt.timedelta(days=window)).isoformat()}",
                      field="invoice_date")


async def file_claim(program_id: str, participant_id: str, spec: NewClaim, today: dt.date | None = None,
                     claim_id: str | None = None) -> ClaimView:
    """Files the claim under `claim_id` when the caller pinned one for its request: filing
    again under the same id (a retry after a crash) answers the claim already filed."""
    await _check_dates(program_id, spec, today)
    claim_id = claim_id or new_id("clm")
    filed = await Claim.select(Claim.id).where((Claim.id == claim_id) & (Claim.program_id == program_id)
                                               & (Claim.participant_id == participant_id)).first().run()
    if filed is not None:
        return await get_claim(program_id, claim_id)
    invoice_key = f"{program_id}:{spec.invoice_number.strip().upper()}"
    earlier = await Claim.select(Claim.id).where(
        (Claim.program_invoice == invoice_key) & (Claim.status != "rejected")).order_by(Claim.id).first().run()
    await Claim.insert(Claim(
        id=claim_id, program_id=program_id, participant_id=participant_id, invoice_number=spec.invoice_number,
        program_invoice=invoice_key, invoice_date=spec.invoice_date.isoformat(), amount=spec.amount.amount,
        currency=spec.amount.currency, product=spec.product,
        status="duplicate" if earlier else "pending", duplicate_of=earlier["id"] if earlier else None,
        created_at=datetime.now(timezone.utc),
    )).on_conflict(action="DO NOTHING").run()  # a concurrent retry under the same id filed it first
    return await get_claim(program_id, claim_id, participant_id)


async def get_claim(program_id: str, claim_id: str, participant_id: str | None = None) -> ClaimView:
    where = (Claim.id == claim_id) & (Claim.program_id == program_id)
    if participant_id is not None:
        where &= Claim.participant_id == participant_id
    row = await Claim.select().where(where).first().run()
    if row is None:
        raise NotFound("no such claim")
    return _view(row)


async def list_claims(program_id: str, limit: int = 50, cursor: str | None = None, status: ClaimStatus | None = None,
                      participant_id: str | None = None) -> ClaimPage:
    where = Claim.program_id == program_id
    if status is not None:
        where &= Claim.status == status
    if participant_id is not None:
        where &= Claim.participant_id == participant_id
    rows, following = await newest_first(Claim, where, limit, cursor)
    return ClaimPage(items=[_view(r) for r in rows], next_cursor=following)


async def decide(program_id: str, claim_id: str, verdict: Literal["approved", "rejected"],
                 reason: str | None) -> tuple[ClaimView, list[ActivityFacts]]:
    """Moves a pending claim to its verdict, once (a second decision is a 409). An approval
    answers the sale activity to evaluate."""
    claim = await get_claim(program_id, claim_id)
    if claim.status == "duplicate" and verdict == "approved":
        raise Conflict(f"invoice {claim.invoice_number} was already claimed ({claim.duplicate_of}); "
                       "a duplicate cannot be approved")
    allowed = ("pending", "duplicate") if verdict == "rejected" else ("pending",)
    decided = await Claim.update({Claim.status: verdict, Claim.decision_reason: reason or "",
                                  Claim.decided_at: datetime.now(timezone.utc)}).where(
        (Claim.id == claim_id) & (Claim.program_id == program_id) & Claim.status.is_in(list(allowed))
    ).returning(Claim.id).run()
    if not decided:
        raise Conflict(f"the claim is already {claim.status}")
    to_evaluate: list[ActivityFacts] = []
    if verdict == "approved":
        person = await Participant.select(Participant.external_id).where(
            Participant.id == claim.participant_id).first().run()
        # Noon UTC of the invoice date, but never later than now: an invoice dated today (or
        # tomorrow, somewhere east) approved before that noon would be an activity in the
        # future, rejected, and the approved claim would earn nothing.
        occurred_at = min(datetime.combine(dt.date.fromisoformat(claim.invoice_date), dt.time(12), timezone.utc),
                          datetime.now(timezone.utc))
        activity = ActivityIn(
            external_id=f"claim:{claim.id}", type="sale", participant_external_id=person["external_id"],
            occurred_at=occurred_at,
            attributes={"amount": claim.amount.amount, "currency": claim.amount.currency, "product": claim.product,
                        "invoice": claim.invoice_number, "claim_id": claim.id},
        )
        fates, to_evaluate = await store_batch(program_id, [activity], source="claim")
        await Claim.update({Claim.activity_id: fates[0].activity_id}).where(Claim.id == claim_id).run()
    return await get_claim(program_id, claim_id), to_evaluate


async def decide_claim(wallets: WalletStore, program_id: str, claim_id: str,
                       verdict: Literal["approved", "rejected"], reason: str | None) -> ClaimView:
    """An admin's decision: the claim moves to its verdict, the participant's feed says so
    (with the reason of a rejection), and an approved claim's sale earns through the rules."""
    claim, to_evaluate = await decide(program_id, claim_id, verdict, reason)
    text = f"Claim {claim.invoice_number} {verdict}" + (f": {reason}" if reason and verdict == "rejected" else "")
    await publish(program_id, [FeedEntry(key=f"claim:{claim.id}:{verdict}", participant_id=claim.participant_id,
                                         kind=f"claim_{verdict}", text=text, reference=claim.id)])
    if to_evaluate:
        await award(wallets, await get_program(program_id), to_evaluate)
    return claim


# --- receipts and resubmission -------------------------------------------------------------


async def attach_receipt(program_id: str, participant_id: str, claim_id: str, content: bytes,
                         data_path: Path) -> ClaimView:
    """The participant's receipt photo for their claim, cleaned (programs/receipts.py); a new
    photo replaces the old one until the claim is approved."""
    claim = await get_claim(program_id, claim_id, participant_id)
    if claim.status == "approved":
        raise Conflict("the claim is approved; its receipt can no longer change")
    jpeg = await asyncio.to_thread(receipts.reencoded, content)  # decoding is CPU work: off the loop
    await asyncio.to_thread(receipts.save, data_path, program_id, claim_id, jpeg)
    await Claim.update({Claim.receipt_at: datetime.now(timezone.utc)}).where(
        (Claim.id == claim_id) & (Claim.program_id == program_id)).run()
    return await get_claim(program_id, claim_id, participant_id)


async def receipt_of(program_id: str, claim_id: str, data_path: Path, participant_id: str | None = None) -> bytes:
    """The cleaned photo; a participant reads only their own claims' receipts."""
    await get_claim(program_id, claim_id, participant_id)
    jpeg = await asyncio.to_thread(receipts.read, data_path, program_id, claim_id)
    if jpeg is None:
        raise NotFound("this claim has no receipt photo")
    return jpeg


async def resubmit(program_id: str, participant_id: str, claim_id: str, spec: NewClaim,
                   today: dt.date | None = None) -> ClaimView:
    """A rejected claim, fixed and sent again: checked like a new one (window, duplicates),
    then pending again for a manager, with its receipt kept."""
    claim = await get_claim(program_id, claim_id, participant_id)
    if claim.status != "rejected":
        raise Conflict(f"only a rejected claim can be sent again; this one is {claim.status}")
    await _check_dates(program_id, spec, today)
    invoice_key = f"{program_id}:{spec.invoice_number.strip().upper()}"
    earlier = await Claim.select(Claim.id).where(
        (Claim.program_invoice == invoice_key) & (Claim.status != "rejected") & (Claim.id != claim_id)
    ).order_by(Claim.id).first().run()
    changed = await Claim.update({
        Claim.invoice_number: spec.invoice_number, Claim.program_invoice: invoice_key,
        Claim.invoice_date: spec.invoice_date.isoformat(), Claim.amount: spec.amount.amount,
        Claim.currency: spec.amount.currency, Claim.product: spec.product,
        Claim.status: "duplicate" if earlier else "pending", Claim.duplicate_of: earlier["id"] if earlier else None,
        Claim.decision_reason: "", Claim.decided_at: None, Claim.resubmissions: Claim.resubmissions + 1,
    }).where((Claim.id == claim_id) & (Claim.program_id == program_id) & (Claim.status == "rejected")) \
        .returning(Claim.id).run()
    if not changed:
        raise Conflict("the claim changed meanwhile; read it again")
    return await get_claim(program_id, claim_id, participant_id)
