"""Console users (program admin key): invite a person to the program's manager console."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post

from api.auth import admin_only
from api.routes.participants import program_of
from api.settings import Settings
from kernel.mail import Mailer
from programs import console_users


@post("/v1/console-users", guards=[admin_only], operation_id="createConsoleUser",
      summary="Invite a person to the console",
      description="Gives the person (found by email, compared lower-cased, or new) the role in this program. "
                  "A person without a password yet gets `invite_url` (one use, 72 hours, starting with "
                  "RW_PUBLIC_URL) and the same link by email; the same email again adds this program to the "
                  "person (or changes their role in it).",
      tags=["console"])
async def create(request: Request[Any, Any, Any], data: console_users.NewConsoleUser, settings: Settings,
                 mailer: Mailer) -> Response[console_users.ConsoleUserCreated]:
    created = await console_users.add_console_user(program_of(request), data, settings.public_base, mailer)
    return Response(created, status_code=201)


ROUTES = [create]
