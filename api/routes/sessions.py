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
from fulfillment.sealing import Sealer
from programs import sessions
from wallet.store import WalletStore


class RefreshRequest(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    refresh_token: Annotated[str, Meta(min_length=1, max_length=200)]


@post("/v1/auth/refresh", operation_id="refreshTokens", summary="Rotate a refresh token",
      description="Spends the refresh token and answers a new access token and refresh token. Presented again "
                  "within RW_REFRESH_REUSE_GRACE seconds (10 by default: a retry after a timeout), it answers the "
                  "same new refresh token; later, presenting a spent refresh token revokes every token of that "
                  "login. 409 `program_suspended` while the program is suspended (the token stays unspent).",
      opt={"exclude_from_auth": True}, security=[], tags=["auth"], status_code=200)
async def refresh(data: RefreshRequest, authenticator: Authenticator, settings: Settings, wallets: WalletStore,
                  sealer: Sealer) -> TokenPair:
    subject, new_refresh = await sessions.rotate(data.refresh_token, timedelta(days=settings.refresh_token_ttl_days),
                                                 wallets, sealer, settings.refresh_reuse_grace_seconds)
    return await token_pair(authenticator, settings, subject.program_id, subject.participant_id, new_refresh)


ROUTES = [refresh]
