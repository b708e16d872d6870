"""The audit log: who did what, when, from which console user or key."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from litestar import Request, Response, get
from litestar.params import Parameter

from api.auth import admin_only
from api.routes.participants import Cursor, Limit, program_of
from programs import audit

Actor = Annotated[str | None, Parameter(max_length=120, description='"user:<console user id>" or "key:<key id>"')]
Kind = Annotated[str | None, Parameter(max_length=40, description="e.g. points.grant, approval.approved")]
Since = Annotated[datetime | None, Parameter(description="from this moment (RFC 3339)")]
Until = Annotated[datetime | None, Parameter(description="before this moment (RFC 3339)")]


@get("/v1/audit-events", guards=[admin_only], operation_id="listAuditEvents", summary="The audit log",
     description="Newest first; filter by `actor`, `kind` and a time range. Manual money moves appear once the "
                 "journal projector has written them (a moment after the move).", tags=["audit"])
async def list_all(request: Request[Any, Any, Any], actor: Actor = None, kind: Kind = None, since: Since = None,
                   until: Until = None, limit: Limit = 50, cursor: Cursor = None) -> audit.AuditPage:
    return await audit.events(program_of(request), actor, kind, since, until, limit, cursor)


@get("/v1/audit-events/export.csv", guards=[admin_only], operation_id="exportAuditEvents",
     summary="Export the audit log", description="The same filters, oldest first, as CSV.", tags=["audit"],
     media_type="text/csv")
async def export(request: Request[Any, Any, Any], actor: Actor = None, kind: Kind = None, since: Since = None,
                 until: Until = None) -> Response[str]:
    text = await audit.export_csv(program_of(request), actor, kind, since, until)
    return Response(text, media_type="text/csv", headers={"Content-Disposition": 'attachment; filename="audit.csv"'})


ROUTES = [list_all, export]
