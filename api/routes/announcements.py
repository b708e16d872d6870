"""Announcements: a program's message to a segment, a team or everyone (feed line and email)."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post

from api.auth import admin_only, principal_of
from api.routes.participants import Cursor, Limit, program_of
from programs import announcements, audit
from programs.programs import get_program


@post("/v1/announcements", guards=[admin_only], operation_id="createAnnouncement", summary="Announce",
      opt={"audit": "self"},
      description="A line in the feed of every active participant in the `audience` (segments and teams; "
                  "`{}` for everyone) at once, and an email to each who has an address (unless `email` is "
                  "false), sent by the worker through RW_SMTP_URL or into the outbox folder.",
      tags=["announcements"])
async def create(request: Request[Any, Any, Any], data: announcements.NewAnnouncement) -> Response[
        announcements.AnnouncementView]:
    principal = principal_of(request)
    program = await get_program(program_of(request))
    view = await announcements.announce(program, data, sent_by=f"key:{principal.subject_id}")
    await audit.record(program.id, f"key:{principal.subject_id}", "announcement.sent", data.title)
    return Response(view, status_code=201)


@get("/v1/announcements", guards=[admin_only], operation_id="listAnnouncements", summary="List announcements",
     description="Newest first, each with its recipients and how many of its emails have gone out.",
     tags=["announcements"])
async def list_all(request: Request[Any, Any, Any], limit: Limit = 50,
                   cursor: Cursor = None) -> announcements.AnnouncementPage:
    return await announcements.list_announcements(program_of(request), limit, cursor)


ROUTES = [create, list_all]
