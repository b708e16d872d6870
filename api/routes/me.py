"""The participant's own view (access token): profile, wallet and history."""

from __future__ import annotations

from typing import Any

from litestar import Request, get

from api.auth import participant_only, principal_of
from api.routes.participants import Cursor, Limit
from programs.participants import ParticipantView, get_participant
from wallet import accounts, ledger
from wallet.store import WalletStore


@get("/v1/me", guards=[participant_only], operation_id="getMe", summary="My profile",
     description="The participant the access token was issued for.", tags=["me"])
async def me(request: Request[Any, Any, Any]) -> ParticipantView:
    principal = principal_of(request)
    return await get_participant(principal.program_id or "", principal.subject_id)


@get("/v1/me/wallet", guards=[participant_only], operation_id="getMyWallet", summary="My balances",
     description="Available and held points and lifetime totals, always current.", tags=["me"])
async def my_wallet(request: Request[Any, Any, Any], wallets: WalletStore) -> accounts.WalletView:
    principal = principal_of(request)
    return await accounts.wallet_view(wallets, principal.program_id or "", principal.subject_id)


@get("/v1/me/transactions", guards=[participant_only], operation_id="listMyTransactions", summary="My history",
     description="Newest first, from the ledger; `as_of` says up to when it is complete.", tags=["me"])
async def my_transactions(request: Request[Any, Any, Any], redis: Any, limit: Limit = 50,
                          cursor: Cursor = None) -> ledger.TransactionPage:
    principal = principal_of(request)
    return await ledger.transactions(redis, principal.program_id or "", principal.subject_id, limit, cursor)


ROUTES = [me, my_wallet, my_transactions]
