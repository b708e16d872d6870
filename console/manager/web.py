"""What every console page shares: the templates, the session cookie, the signed-in person
and their role in the program of the URL, the CSRF check of a form, and HTML answers."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import msgspec
from jinja2 import Environment, FileSystemLoader, select_autoescape
from litestar import Request, Response
from litestar.datastructures import Cookie
from litestar.response import Redirect

from api.settings import Settings
from console.assets import StaticAssets
from kernel.errors import NotFound
from programs import console_sessions, console_users
from programs.console_users import Membership, Person, Role

COOKIE = "rw_console"
# The sign-in form's token before there is a session (console/manager/auth_pages.py).
PRE_SESSION_COOKIE = "rw_console_pre"
PACKAGE = Path(__file__).resolve().parents[1]
STATIC = PACKAGE / "static" / "console"

ASSETS = StaticAssets(STATIC, "/console/static")

templates = Environment(loader=FileSystemLoader(PACKAGE / "templates"), autoescape=select_autoescape(["html"]),
                        trim_blocks=True, lstrip_blocks=True)
templates.globals["static"] = ASSETS.url

# The navigation, in UI.md's order: (link name, path under /console/p/{program_id}/).
NAV: list[tuple[str, str]] = [
    ("Overview", "overview"), ("Participants", "participants"), ("Earning rules", "earning-rules"),
    ("Claims", "claims"), ("Approvals", "approvals"), ("Catalog", "catalog"), ("Orders", "orders"),
    ("Spin campaigns", "spin-campaigns"), ("Sweepstakes", "sweepstakes"), ("Leaderboards", "leaderboards"),
    ("Announcements", "announcements"), ("Funding", "funding"), ("Partners", "partners"),
    ("Audit log", "audit-log"),
]
OWNER_NAV = [("Users", "users")]

# Messages a redirect after a change may name (?done=...): fixed texts, never echoed input.
DONE = {
    "granted": "Points granted.", "deducted": "Points deducted.", "deactivated": "Participant deactivated.", "launched": "Campaign launched.",
    "paused": "Campaign paused.", "resumed": "Campaign resumed.", "ended": "Campaign ended.",
    "approved": "Claim approved.", "rejected": "Claim rejected.", "disabled": "Item disabled.",
    "enabled": "Item enabled.", "invited": "Invitation sent.", "role": "Role changed.", "removed": "Person removed.",
    "announced": "Announcement sent.", "rule-activated": "Rule activated: activities from now on use it.",
    "rule-retired": "Rule retired: it awards nothing from now on.",
    "partner-disabled": "Partner disabled: its keys are refused and its waiting orders moved.",
    "partner-enabled": "Partner enabled.",
    "order-cancelled": "Order cancelled: the points went back to the participant.",
    "requested": "Above the program's approval threshold: sent to Approvals for another owner or manager.",
    "lot-released": "Pending points released: they are available now.",
    "move-approved": "Approved: done once, as it was asked for.", "move-rejected": "Rejected: nothing moved.",
    "redeemed": "Redeemed: the order is placed from the participant's points.",
    "rule-requested": "Above the program's approval threshold (its simulated cost over the last 90 days): sent to "
                      "Approvals for another owner or manager. Nothing is active yet.",
    "top-up-requested": "Sent for approval: the top-up is above the program's approval threshold. Once another "
                        "owner or manager approves it, it waits below with a Pay button.",
}


class Signed(msgspec.Struct, frozen=True):
    """A signed-in request: the session, the person, and their programs."""

    session: console_sessions.ConsoleSession
    person: Person
    memberships: list[Membership]


class InProgram(msgspec.Struct, frozen=True):
    signed: Signed
    program_id: str
    program_name: str
    role: Role

    @property
    def can_manage(self) -> bool:
        return self.role in console_users.MANAGES

    @property
    def is_owner(self) -> bool:
        return self.role == "owner"


def html(body: str, status: int = 200, cookies: list[Cookie] | None = None) -> Response[str]:
    return Response(body, status_code=status, media_type="text/html; charset=utf-8", cookies=cookies or [])


def render(name: str, code: int = 200, cookies: list[Cookie] | None = None, **context: Any) -> Response[str]:
    return html(templates.get_template(name).render(**context), code, cookies)


def session_cookie(settings: Settings, value: str, max_age: int | None = None) -> Cookie:
    return Cookie(key=COOKIE, value=value, path="/console", httponly=True, samesite="strict",
                  secure=settings.public_url.startswith("https://"), max_age=max_age)


def pre_session_cookie(settings: Settings, value: str, max_age: int | None = 3600) -> Cookie:
    # Path /console: the sign-in and the forgot-password forms both carry it.
    return Cookie(key=PRE_SESSION_COOKIE, value=value, path="/console", httponly=True, samesite="strict",
                  secure=settings.public_url.startswith("https://"), max_age=max_age)


def cleared_cookie(settings: Settings) -> Cookie:
    return session_cookie(settings, "", max_age=0)


def to_sign_in() -> Response[Any]:
    return Redirect("/console/sign-in", status_code=303)


async def signed_in(request: Request[Any, Any, Any]) -> Signed | None:
    redis = request.app.state.redis
    session = await console_sessions.load(redis, request.cookies.get(COOKIE))
    if session is None:
        return None
    try:
        person = await console_users.get_person(session.user_id)
    except NotFound:  # the person was deleted while signed in
        return None
    return Signed(session=session, person=person, memberships=await console_users.memberships(person.id))


async def in_program(request: Request[Any, Any, Any], program_id: str) -> InProgram | Response[Any]:
    """The signed-in person's standing in the program, or the answer to give instead: the
    sign-in page without a session, 404 for a program that is not theirs."""
    signed = await signed_in(request)
    if signed is None:
        return to_sign_in()
    for membership in signed.memberships:
        if membership.program_id == program_id:
            return InProgram(signed=signed, program_id=program_id, program_name=membership.program_name,
                             role=membership.role)
    return render("console/error.html", 404, title="Not found", message="There is no such program for you here.",
                  ctx=None)


def page(ctx: InProgram, name: str, title: str, current: str, request: Request[Any, Any, Any] | None = None,
         code: int = 200, **context: Any) -> Response[str]:
    """A page inside a program: the template with the navigation, the person and the CSRF token."""
    done = DONE.get(request.query_params.get("done", "")) if request is not None else None
    return render(name, code, ctx=ctx, title=title, current=current, nav=NAV + (OWNER_NAV if ctx.is_owner else []),
                  csrf=ctx.signed.session.csrf, done=done, **context)


async def form_of(request: Request[Any, Any, Any]) -> dict[str, str]:
    form = await request.form()
    return {key: value for key, value in form.items() if isinstance(value, str)}


def refused(ctx: InProgram | None, message: str, status: int = 403) -> Response[str]:
    return render("console/error.html", status, title="Not allowed" if status == 403 else "Could not do that",
                  message=message, ctx=ctx, nav=(NAV + (OWNER_NAV if ctx and ctx.is_owner else [])) if ctx else [],
                  csrf=ctx.signed.session.csrf if ctx else "", current="")


async def checked_form(request: Request[Any, Any, Any], program_id: str,
                       allowed: frozenset[str]) -> tuple[InProgram, dict[str, str]] | Response[Any]:
    """A change's form, once its session, CSRF token and role are good; else the refusal
    (403 without a matching token or for a role the change is not for)."""
    ctx = await in_program(request, program_id)
    if not isinstance(ctx, InProgram):
        return ctx
    form = await form_of(request)
    if not console_sessions.csrf_ok(ctx.signed.session, form.get("csrf")):
        return refused(ctx, "This form has expired or did not come from this console. Reload the page and try again.")
    if ctx.role not in allowed:
        return refused(ctx, "Your role in this program does not allow this change.")
    return ctx, form


def back(program_id: str, path: str, done: str | None = None) -> Response[Any]:
    target = f"/console/p/{quote(program_id)}/{path}"
    if done:
        target += ("&" if "?" in target else "?") + f"done={done}"
    return Redirect(target, status_code=303)
