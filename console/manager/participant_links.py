"""A sign-in link for the app, made from a participant's console page: the manager copies it
into a text or a chat. The link is shown once, on the answer to the POST (it is a secret for
15 minutes), and never put in a URL the browser keeps in its history."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, post

from api.problems import status_for
from api.settings import Settings
from console.manager.web import checked_form, page, refused
from kernel.errors import DomainError
from programs import audit, participants, sign_in_links
from programs.console_users import MANAGES
from programs.programs import get_program

P = "/console/p/{program_id:str}"


@post(f"{P}/participants/{{participant_id:str}}/sign-in-link", include_in_schema=False, status_code=200)
async def make_sign_in_link(request: Request[Any, Any, Any], program_id: str, participant_id: str,
                            settings: Settings) -> Response[Any]:
    checked = await checked_form(request, program_id, MANAGES)
    if not isinstance(checked, tuple):
        return checked
    ctx, _ = checked
    try:
        program = await get_program(program_id)
        person = await participants.get_participant(program_id, participant_id)
        link = await sign_in_links.issue_sign_in_link(request.app.state.wallets, settings.public_base, program_id,
                                                      participant_id)
    except DomainError as exc:
        return refused(ctx, exc.detail, status_for(exc.code))
    await audit.record(program_id, f"user:{ctx.signed.person.id}", "participant.sign_in_link", participant_id)
    return page(ctx, "console/sign_in_link.html", f"Sign-in link for {person.display_name or person.external_id}",
                "participants", request, person=person, link=link, program=program)


ROUTES = [make_sign_in_link]
