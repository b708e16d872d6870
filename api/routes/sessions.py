"""Participant logins from the HTTP side: refreshing, signing in from a link or an email
code, signing out. The phone app keeps its refresh token in an HttpOnly cookie scoped to
/v1/auth/ (never readable by a script); other clients send it in the body."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, post
from litestar.datastructures import Cookie
from litestar.exceptions import NotAuthorizedException
from msgspec import Meta

from api.auth import Authenticator, active_program, admin_only
from api.limits import client_ip
from api.routes.participants import TokenPair, program_of, token_pair
from api.settings import Settings
from fulfillment.sealing import Sealer
from kernel.errors import Unauthenticated
from kernel.mail import Mailer
from programs import email_codes, sessions, sign_in_links
from wallet.store import WalletStore

REFRESH_COOKIE = "rw_refresh"
COOKIE_PATH = "/v1/auth/"


class RefreshRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    # Optional: the phone app sends `{}` and its cookie instead.
    refresh_token: Annotated[str, Meta(min_length=1, max_length=200)] | None = None


class SignInLinkSpend(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    token: Annotated[str, Meta(min_length=1, max_length=200)]


class SignOutRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    refresh_token: Annotated[str, Meta(min_length=1, max_length=200)] | None = None


class CodeSent(msgspec.Struct, frozen=True):
    detail: str


class Resumed(msgspec.Struct, frozen=True, omit_defaults=True):
    signed_in: bool
    access_token: str | None = None
    token_type: str | None = None
    expires_in: int | None = None


def refresh_cookie(settings: Settings, token: str) -> Cookie:
    return Cookie(key=REFRESH_COOKIE, value=token, path=COOKIE_PATH, httponly=True, samesite="strict",
                  secure=settings.public_url.startswith("https://"),
                  max_age=settings.refresh_token_ttl_days * 86400)


def cleared_cookie(settings: Settings) -> Cookie:
    return Cookie(key=REFRESH_COOKIE, value="", path=COOKIE_PATH, httponly=True, samesite="strict",
                  secure=settings.public_url.startswith("https://"), max_age=0)


async def signed_in(authenticator: Authenticator, settings: Settings, program_id: str,
                    participant_id: str) -> Response[TokenPair]:
    """A new login's tokens in the body, and its refresh token in the cookie too."""
    refresh_token = await sessions.start_session(program_id, participant_id,
                                                 timedelta(days=settings.refresh_token_ttl_days))
    pair = await token_pair(authenticator, settings, program_id, participant_id, refresh_token)
    return Response(pair, status_code=200, cookies=[refresh_cookie(settings, refresh_token)])


@post("/v1/auth/refresh", operation_id="refreshTokens", summary="Rotate a refresh token",
      description="Spends the refresh token and answers a new access token and refresh token. Presented again "
                  "within RW_REFRESH_REUSE_GRACE seconds (10 by default: a retry after a timeout), it answers the "
                  "same new refresh token; later, presenting a spent refresh token revokes every token of that "
                  "login. With no `refresh_token` in the body, the `rw_refresh` cookie set at sign-in is used "
                  "and the new refresh token is set in it. 409 `program_suspended` while the program is "
                  "suspended (the token stays unspent).",
      opt={"exclude_from_auth": True}, security=[], tags=["auth"], status_code=200)
async def refresh(request: Request[Any, Any, Any], data: RefreshRequest, authenticator: Authenticator,
                  settings: Settings, wallets: WalletStore, sealer: Sealer) -> Response[TokenPair]:
    from_cookie = data.refresh_token is None
    presented = data.refresh_token or request.cookies.get(REFRESH_COOKIE) or ""
    if not presented or len(presented) > 200:
        raise Unauthenticated("send refresh_token in the body, or sign in again")
    subject, new_refresh = await sessions.rotate(presented, timedelta(days=settings.refresh_token_ttl_days),
                                                 wallets, sealer, settings.refresh_reuse_grace_seconds)
    pair = await token_pair(authenticator, settings, subject.program_id, subject.participant_id, new_refresh)
    cookies = [refresh_cookie(settings, new_refresh)] if from_cookie else []
    return Response(pair, status_code=200, cookies=cookies)


@post("/v1/auth/resume", operation_id="resumeAppSession", summary="Resume the app's login from its cookie",
      description="For the phone app as it opens: with a good `rw_refresh` cookie, rotates it (as "
                  "`POST /v1/auth/refresh` does) and answers `{signed_in: true, access_token, ...}` with the new "
                  "refresh token in the cookie only; without one, `{signed_in: false}` (200 too, so opening the "
                  "app signed out is no error) and the cookie is cleared. 409 `program_suspended` while the "
                  "program is suspended.",
      opt={"exclude_from_auth": True}, security=[], tags=["auth"], status_code=200)
async def resume(request: Request[Any, Any, Any], authenticator: Authenticator, settings: Settings,
                 wallets: WalletStore, sealer: Sealer) -> Response[Resumed]:
    presented = request.cookies.get(REFRESH_COOKIE) or ""
    if not presented or len(presented) > 200:
        return Response(Resumed(signed_in=False), cookies=[cleared_cookie(settings)])
    try:
        subject, new_refresh = await sessions.rotate(presented, timedelta(days=settings.refresh_token_ttl_days),
                                                     wallets, sealer, settings.refresh_reuse_grace_seconds)
    except Unauthenticated:
        return Response(Resumed(signed_in=False), cookies=[cleared_cookie(settings)])
    pair = await token_pair(authenticator, settings, subject.program_id, subject.participant_id, new_refresh)
    body = Resumed(signed_in=True, access_token=pair.access_token, token_type=pair.token_type,
                   expires_in=pair.expires_in)
    return Response(body, cookies=[refresh_cookie(settings, new_refresh)])


@post("/v1/participants/{participant_id:str}/sign-in-links", guards=[admin_only, active_program],
      operation_id="createSignInLink", summary="Create a sign-in link for the phone app",
      description="A link to the participant's app, `{url, expires_at}`: one use, 15 minutes. `url` starts with "
                  "RW_PUBLIC_URL and carries its token after `#`, so opening it (or a link preview fetching it) "
                  "spends nothing; the app's page spends it with `POST /v1/auth/sign-in-link`.",
      tags=["auth"], status_code=201)
async def create_sign_in_link(request: Request[Any, Any, Any], participant_id: str, settings: Settings,
                              wallets: WalletStore) -> sign_in_links.SignInLink:
    return await sign_in_links.issue_sign_in_link(wallets, settings.public_base, program_of(request), participant_id)


@post("/v1/auth/sign-in-link", operation_id="signInWithLink", summary="Spend a sign-in link's token",
      description="Answers the participant's tokens (as `POST /v1/participants/{id}/tokens` does) and sets the "
                  "refresh token in the HttpOnly `rw_refresh` cookie. A spent, expired or unknown token, or a "
                  "deactivated participant: 401 `unauthenticated`. 409 `program_suspended` while the program "
                  "is suspended (the link stays unspent).",
      opt={"exclude_from_auth": True}, security=[], tags=["auth"], status_code=200)
async def sign_in_with_link(data: SignInLinkSpend, authenticator: Authenticator, settings: Settings,
                            wallets: WalletStore) -> Response[TokenPair]:
    program_id, participant_id = await sign_in_links.spend_sign_in_link(wallets, data.token)
    return await signed_in(authenticator, settings, program_id, participant_id)


@post("/v1/auth/email-codes", operation_id="requestEmailCode", summary="Mail a sign-in code",
      description="202 whether or not the address belongs to a participant of the program: if it does, a "
                  "6-digit code (one use, 10 minutes, 5 tries) is mailed to it. 429 `rate_limited` past 5 codes "
                  "per address or 20 per client address in 15 minutes.",
      opt={"exclude_from_auth": True}, security=[], tags=["auth"], status_code=202)
async def request_email_code(request: Request[Any, Any, Any], data: email_codes.CodeRequest, settings: Settings,
                             wallets: WalletStore, mailer: Mailer) -> CodeSent:
    await email_codes.request_code(wallets, mailer, settings.public_base, data, client_ip(request.scope))
    return CodeSent(detail="if this address belongs to a participant of the program, a code is on its way")


@post("/v1/auth/email-codes/verify", operation_id="verifyEmailCode", summary="Sign in with an emailed code",
      description="Answers the participant's tokens and sets the `rw_refresh` cookie. A wrong, expired or spent "
                  "code: 401 `unauthenticated`; the fifth wrong try ends the code.",
      opt={"exclude_from_auth": True}, security=[], tags=["auth"], status_code=200)
async def verify_email_code(data: email_codes.CodeAttempt, authenticator: Authenticator, settings: Settings,
                            wallets: WalletStore) -> Response[TokenPair]:
    program_id, participant_id = await email_codes.verify_code(wallets, data)
    return await signed_in(authenticator, settings, program_id, participant_id)


@post("/v1/auth/sign-out", operation_id="signOut", summary="Sign out",
      description="Revokes the login (every refresh token of its family) of the refresh token in the body or the "
                  "`rw_refresh` cookie, and clears the cookie. With neither, a participant's access token in "
                  "`Authorization` signs that participant out of every login. Access tokens already issued run out "
                  "on their own (at most 15 minutes). 204 even when there was nothing to revoke.",
      opt={"exclude_from_auth": True}, security=[], tags=["auth"], status_code=204)
async def sign_out(request: Request[Any, Any, Any], settings: Settings, authenticator: Authenticator,
                   data: SignOutRequest | None = None) -> Response[None]:
    presented = (data.refresh_token if data else None) or request.cookies.get(REFRESH_COOKIE)
    if presented and len(presented) <= 200:
        await sessions.sign_out(presented)
    elif (bearer := request.headers.get("authorization", "")).lower().startswith("bearer "):
        try:
            principal = await authenticator.authenticate(bearer[7:].strip())
        except NotAuthorizedException:
            principal = None
        if principal is not None and principal.kind == "participant":
            await sessions.revoke_participant_sessions(principal.subject_id)
    return Response(None, status_code=204, cookies=[cleared_cookie(settings)])


ROUTES = [refresh, resume, create_sign_in_link, sign_in_with_link, request_email_code, verify_email_code, sign_out]
