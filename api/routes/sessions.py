"""Refreshing a participant's access token."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

import msgspec
from litestar import post
from msgspec import Meta

from api.auth import Authenticator
from api.routes.participants import TokenPair, token_pair
from api.settings import Settings
from programs import sessions


class RefreshRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    refresh_token: Annotated[str, Meta(min_length=1, max_length=200)]


@post("/v1/auth/refresh", operation_id="refreshTokens", summary="Rotate a refresh token",
      description="Spends the refresh token and answers a new access token and refresh token. Presenting a spent "
                  "refresh token again revokes every token of that login.",
      opt={"exclude_from_auth": True}, security=[], tags=["auth"], status_code=200)
async def refresh(data: RefreshRequest, authenticator: Authenticator, settings: Settings) -> TokenPair:
    subject, new_refresh = await sessions.rotate(data.refresh_token, timedelta(days=settings.refresh_token_ttl_days))
    return await token_pair(authenticator, settings, subject.program_id, subject.participant_id, new_refresh)


ROUTES = [refresh]
