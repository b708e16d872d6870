"""The audit log: who did what, when, from which console user or key.

A money move carries its actor in its journal entry's metadata (`actor`, and `approved_by`
when four eyes applied); the journal projector turns it into the audit row (`money_rows`,
wired in api/projection.py), so the request path writes no SQL row for it. Other changes
(people, roles, campaigns, claims, settings, exports) write their row when they happen
(`record`). Rows are read newest first, filtered by actor, kind and dates, and exported.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timezone
from typing import Any

import msgspec

from kernel.clock import utc
from kernel.ids import new_id
from kernel.pages import newest_first
from programs.spreadsheet import safe_cell
from programs.tables import AuditEvent
from wallet.journal import JournalEntry, Rows

AUDIT_COLUMNS = ("id", "program_id", "actor", "kind", "subject", "detail", "created_at")
# Journal kinds that are manual money moves, and the audit kind each becomes: a hold that
# names its actor is a redemption made for the participant.
MONEY_KINDS = {"grant": "points.grant", "deduction": "points.deduction", "hold": "points.redemption"}


class AuditView(msgspec.Struct, frozen=True):
    id: str
    actor: str
    kind: str
    subject: str
    detail: dict[str, Any]
    created_at: datetime


class AuditPage(msgspec.Struct, frozen=True):
    items: list[AuditView]
    next_cursor: str | None


async def record(program_id: str, actor: str, kind: str, subject: str = "", **detail: Any) -> None:
    await AuditEvent.insert(AuditEvent(
        id=new_id("aud"), program_id=program_id, actor=actor, kind=kind, subject=subject[:200],
        detail=msgspec.json.encode(detail).decode(), created_at=datetime.now(timezone.utc))).run()


async def money_rows(program_id: str, entries: list[JournalEntry]) -> list[Rows]:
    """The projector's follower for manual money moves that name their actor."""
    rows = []
    for entry in entries:
        try:
            meta = msgspec.json.decode(entry.metadata or "{}")
        except msgspec.DecodeError:
            continue
        if not isinstance(meta, dict) or not meta.get("actor") or entry.kind not in MONEY_KINDS:
            continue
        detail = {"points": abs(entry.points), "reason": meta.get("reason"), "transaction_id": entry.transaction_id}
        if meta.get("approved_by"):
            detail["approved_by"] = meta["approved_by"]
        rows.append((money_row_id(entry.transaction_id), program_id, str(meta["actor"])[:120], MONEY_KINDS[entry.kind],
                     entry.participant_id or "", msgspec.json.encode(detail).decode(), entry.created_at))
    return [Rows(table="audit_events", columns=AUDIT_COLUMNS, rows=rows)] if rows else []


def money_row_id(transaction_id: str) -> str:
    """The audit row of a money move: its transaction's time-ordered id under the audit prefix,
    so money rows and the others page together in time order, and a replay writes nothing."""
    return "aud_" + transaction_id.split("_", 1)[-1]


def _where(program_id: str, actor: str | None, kind: str | None, since: datetime | None,
           until: datetime | None) -> Any:
    where = AuditEvent.program_id == program_id
    if actor:
        where &= AuditEvent.actor == actor
    if kind:
        where &= AuditEvent.kind == kind
    if since is not None:
        where &= AuditEvent.created_at >= since
    if until is not None:
        where &= AuditEvent.created_at < until
    return where


def _view(row: dict[str, Any]) -> AuditView:
    return AuditView(id=row["id"], actor=row["actor"], kind=row["kind"], subject=row["subject"],
                     detail=msgspec.json.decode(row["detail"] or "{}"), created_at=utc(row["created_at"]))


async def events(program_id: str, actor: str | None = None, kind: str | None = None, since: datetime | None = None,
                 until: datetime | None = None, limit: int = 50, cursor: str | None = None) -> AuditPage:
    """Newest first."""
    rows, following = await newest_first(AuditEvent, _where(program_id, actor, kind, since, until), limit, cursor)
    return AuditPage(items=[_view(r) for r in rows], next_cursor=following)


async def export_csv(program_id: str, actor: str | None = None, kind: str | None = None,
                     since: datetime | None = None, until: datetime | None = None) -> str:
    rows = await AuditEvent.select().where(_where(program_id, actor, kind, since, until)).order_by(
        AuditEvent.id).run()
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["created_at", "actor", "kind", "subject", "detail"])
    for row in rows:
        view = _view(row)
        writer.writerow([view.created_at.isoformat(), view.actor, view.kind, safe_cell(view.subject),
                         safe_cell(msgspec.json.encode(view.detail).decode())])
    return out.getvalue()


