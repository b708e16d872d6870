"""The participant's own view (access token): profile, wallet and history."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, get

from api.auth import CARRY_GATE, Principal, participant_only, principal_of
from api.routes.participants import Cursor, Limit
from programs.expiry import Expiring, expiring_soon
from games.spin_feed import spin_lines
from programs.feed import FeedPage, feed_page
from programs.participants import ParticipantView, get_participant
from programs.programs import get_program
from wallet import accounts, ledger
from wallet.store import WalletStore


@get("/v1/me", guards=[participant_only], operation_id="getMe", summary="My profile",
     description="The participant the access token was issued for.", tags=["me"])
async def me(request: Request[Any, Any, Any]) -> ParticipantView:
    principal = principal_of(request)
    return await get_participant(principal.program_id or "", principal.subject_id)


class MyWallet(msgspec.Struct, frozen=True, omit_defaults=True):
    available: int
    held: int
    lifetime_earned: int
    lifetime_spent: int
    pending: int
    pending_lots: list[accounts.PendingLotView]
    expiring: list[Expiring]
    owed: int | None = None  # shown only when > 0


@get("/v1/me/wallet", guards=[participant_only], opt=CARRY_GATE, operation_id="getMyWallet", summary="My balances",
     description="Available and held points and lifetime totals, always current; `pending` points (waiting in "
                 "`pending_lots`, each with when it releases, or null when a manager approves it) that cannot be "
                 "spent yet; `owed` (only when > 0) points a returned sale took back that the next earnings pay "
                 "first; and the points that expire in the next 90 days when the program has an expiry policy.",
     tags=["me"])
async def my_wallet(request: Request[Any, Any, Any]) -> MyWallet:
    return await wallet_of(request.app.state.wallets, principal_of(request))


async def wallet_of(wallets: WalletStore, principal: Principal) -> MyWallet:
    """The answer of GET /v1/me/wallet (also served by api/lean.py)."""
    program_id = principal.program_id or ""
    view = await accounts.wallet_view(wallets, program_id, principal.subject_id)
    program = await get_program(program_id)
    expiring = await expiring_soon(program, program.points_expire_months, principal.subject_id,
                                   available=view.available)
    return MyWallet(**msgspec.structs.asdict(view), expiring=expiring)


@get("/v1/me/feed", guards=[participant_only], operation_id="getMyFeed", summary="My feed",
     description="What happened to me, in plain words, newest first (\"+150 ThermoPoints: Completed ThermoPro "
                 "training\", \"Claim INV-883 approved\").", tags=["me"])
async def my_feed(request: Request[Any, Any, Any], limit: Limit = 50, cursor: Cursor = None) -> FeedPage:
    principal = principal_of(request)
    return await feed_page(principal.program_id or "", principal.subject_id, limit, cursor, derived=(spin_lines,))


@get("/v1/me/transactions", guards=[participant_only], operation_id="listMyTransactions", summary="My history",
     description="Newest first, from the ledger; `as_of` says up to when it is complete.", tags=["me"])
async def my_transactions(request: Request[Any, Any, Any], redis: Any, limit: Limit = 50,
                          cursor: Cursor = None) -> ledger.TransactionPage:
    return await history_of(redis, principal_of(request), limit, cursor)


async def history_of(redis: Any, principal: Principal, limit: int, cursor: str | None) -> ledger.TransactionPage:
    """The page of GET /v1/me/transactions (also served by api/lean.py)."""
    return await ledger.transactions(redis, principal.program_id or "", principal.subject_id, limit, cursor)


ROUTES = [me, my_wallet, my_transactions, my_feed]
