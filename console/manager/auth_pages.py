"""Signing in and out of the console, and accepting an invite."""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from litestar import Request, Response, get, post
from litestar.response import Redirect

from api.limits import client_ip
from api.settings import Settings
from console.manager.web import (COOKIE, PRE_SESSION_COOKIE, cleared_cookie, form_of, pre_session_cookie, render,
                                 session_cookie, signed_in, to_sign_in)
from kernel.errors import Invalid
from programs import console_sessions, console_users

# The one refusal for an unknown email and a wrong password alike.
WRONG = "That email and password do not match an account. Check both and try again."
BLOCKED = "Too many failed sign-ins. Wait a few minutes, then try again."
EXPIRED = "The sign-in form expired. Enter your email and password again."


@get("/console", include_in_schema=False)
async def home(request: Request[Any, Any, Any]) -> Response[Any]:
    signed = await signed_in(request)
    if signed is None:
        return to_sign_in()
    if not signed.memberships:
        return render("console/error.html", 403, title="No program", ctx=None,
                      message="Your account has no role in any program yet. Ask a program owner to invite you.")
    return Redirect(f"/console/p/{signed.memberships[0].program_id}/overview", status_code=303)


def _form(settings: Settings, code: int = 200, error: str | None = None, email: str = "") -> Response[str]:
    """The sign-in form with a fresh pre-session token, in a hidden field and in a cookie: a
    POST must carry both (another site cannot read the cookie to forge the field, so it
    cannot sign a browser in to an account of its choosing)."""
    token = secrets.token_urlsafe(32)
    return render("console/sign_in.html", code, cookies=[pre_session_cookie(settings, token)], title="Sign in",
                  error=error, email=email, csrf=token)


@get("/console/sign-in", include_in_schema=False)
async def sign_in_form(settings: Settings) -> Response[str]:
    return _form(settings)


@post("/console/sign-in", include_in_schema=False, status_code=200)
async def sign_in(request: Request[Any, Any, Any], settings: Settings) -> Response[Any]:
    form = await form_of(request)
    email, password = form.get("email", "").strip()[:320], form.get("password", "")[:1024]
    presented, expected = form.get("csrf", ""), request.cookies.get(PRE_SESSION_COOKIE, "")
    if not expected or not hmac.compare_digest(presented.encode(), expected.encode()):
        return _form(settings, 403, EXPIRED, email)
    redis = request.app.state.redis
    address = client_ip(request.scope)
    if await console_sessions.sign_in_blocked(redis, address, email):
        return _form(settings, 429, BLOCKED, email)
    person = await console_users.authenticate(email, password) if email and password else None
    if person is None:
        await console_sessions.count_failure(redis, address, email)
        # 200, the form again with the alert: a browser logs a 4xx page load as a console
        # error, and nothing is wrong with the page itself.
        return _form(settings, 200, WRONG, email)
    session_id = await console_sessions.start(redis, person.id)
    response: Response[Any] = Redirect("/console", status_code=303)
    response.set_cookie(session_cookie(settings, session_id))
    response.set_cookie(pre_session_cookie(settings, "", max_age=0))
    return response


@post("/console/sign-out", include_in_schema=False, status_code=200)
async def sign_out(request: Request[Any, Any, Any], settings: Settings) -> Response[Any]:
    return await _sign_out(request, settings, everywhere=False)


@post("/console/sign-out-everywhere", include_in_schema=False, status_code=200)
async def sign_out_everywhere(request: Request[Any, Any, Any], settings: Settings) -> Response[Any]:
    return await _sign_out(request, settings, everywhere=True)


async def _sign_out(request: Request[Any, Any, Any], settings: Settings, everywhere: bool) -> Response[Any]:
    signed = await signed_in(request)
    if signed is None:
        return to_sign_in()
    form = await form_of(request)
    if not console_sessions.csrf_ok(signed.session, form.get("csrf")):
        return render("console/error.html", 403, title="Not allowed", ctx=None,
                      message="This form did not come from this console. Reload the page and try again.")
    redis = request.app.state.redis
    if everywhere:
        await console_sessions.end_all(redis, signed.person.id)
    else:
        await console_sessions.end(redis, request.cookies.get(COOKIE))
    response: Response[Any] = Redirect("/console/sign-in", status_code=303)
    response.set_cookie(cleared_cookie(settings))
    return response


def _link_dead(reset: bool) -> Response[str]:
    if reset:
        return render("console/error.html", 404, title="Reset link not valid", ctx=None,
                      message="This reset link is used, expired or unknown. Ask for a new one from the sign-in page.")
    return render("console/error.html", 404, title="Invite not valid", ctx=None,
                  message="This invite link is used, expired or unknown. Ask a program owner for a new one.")


async def _password_form(token: str, reset: bool) -> Response[str]:
    # A link preview (or a mail scanner) opening the link spends nothing: only the POST does.
    person = await console_users.invite_person(token)
    if person is None:
        return _link_dead(reset)
    return render("console/invite.html", title="Choose a new password" if reset else "Set your password",
                  person=person, token=token, error=None, reset=reset)


async def _set_password(request: Request[Any, Any, Any], token: str, reset: bool) -> Response[Any]:
    form = await form_of(request)
    password = form.get("password", "")
    person = await console_users.invite_person(token)
    if person is None:
        return _link_dead(reset)
    title = "Choose a new password" if reset else "Set your password"
    if password != form.get("confirm", ""):
        return render("console/invite.html", 422, title=title, person=person, token=token, reset=reset,
                      error="The two passwords differ.")
    try:
        await console_users.accept_invite(token, password)
    except Invalid as exc:
        return render("console/invite.html", 422, title=title, person=person, token=token, reset=reset,
                      error=exc.detail)
    if reset:
        # Whoever knew the old password is signed out with it.
        await console_sessions.end_all(request.app.state.redis, person.id)
    return Redirect("/console/sign-in", status_code=303)


@get("/console/invite/{token:str}", include_in_schema=False)
async def invite_form(token: str) -> Response[str]:
    return await _password_form(token, reset=False)


@post("/console/invite/{token:str}", include_in_schema=False, status_code=200)
async def accept_invite(request: Request[Any, Any, Any], token: str) -> Response[Any]:
    return await _set_password(request, token, reset=False)


def _forgot_form(settings: Settings, error: str | None = None, email: str = "") -> Response[str]:
    token = secrets.token_urlsafe(32)
    return render("console/forgot.html", cookies=[pre_session_cookie(settings, token)], title="Reset your password",
                  error=error, email=email, csrf=token, sent=False)


@get("/console/forgot-password", include_in_schema=False)
async def forgot_form(settings: Settings) -> Response[str]:
    return _forgot_form(settings)


@post("/console/forgot-password", include_in_schema=False, status_code=200)
async def forgot_password(request: Request[Any, Any, Any], settings: Settings) -> Response[Any]:
    form = await form_of(request)
    email = form.get("email", "").strip()[:320]
    presented, expected = form.get("csrf", ""), request.cookies.get(PRE_SESSION_COOKIE, "")
    if not expected or not hmac.compare_digest(presented.encode(), expected.encode()):
        return _forgot_form(settings, EXPIRED.replace("email and password", "email"), email)
    if not email:
        return _forgot_form(settings, "Enter your email.", email)
    # Past the limits the answer is the same and no mail leaves: the page must not tell
    # whether the address has an account, nor serve as a way to flood one.
    if await console_sessions.reset_allowed(request.app.state.redis, client_ip(request.scope), email):
        await console_users.request_password_reset(email, settings.public_base, request.app.state.mailer)
    return render("console/forgot.html", title="Reset your password", email=email, sent=True)


@get("/console/reset/{token:str}", include_in_schema=False)
async def reset_form(token: str) -> Response[str]:
    return await _password_form(token, reset=True)


@post("/console/reset/{token:str}", include_in_schema=False, status_code=200)
async def reset_password(request: Request[Any, Any, Any], token: str) -> Response[Any]:
    return await _set_password(request, token, reset=True)


ROUTES = [home, sign_in_form, sign_in, sign_out, sign_out_everywhere, invite_form, accept_invite, forgot_form,
          forgot_password, reset_form, reset_password]
