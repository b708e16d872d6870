"""Spinning a wheel (participant), the wheels I can play, my spins with their proofs, and a
manager's report per campaign."""

from __future__ import annotations

from typing import Any

import msgspec

from litestar import Request, Response, get, post
from litestar.di import Provide

from api.auth import CARRY_GATE, Principal, admin_only, participant_only, principal_of
from api.idempotency import provide_idem
from api.routes.participants import Cursor, IdFilter, Limit, program_of
from catalog.items import pricing_of
from fulfillment.sealing import Sealer
from games import arcade, spins
from programs.participants import get_participant
from programs.programs import get_program
from programs.rules import SpinCount
from wallet.accounts import Reason, raise_for
from wallet.store import WalletStore
from kernel.idempotency import Idem

IDEMPOTENT = {"idem": Provide(provide_idem)}
REPLAYED = {"Idempotent-Replayed": "true"}


@post("/v1/me/campaigns/{campaign_id:str}/spins", guards=[participant_only], dependencies=IDEMPOTENT, opt=CARRY_GATE,
      operation_id="spin", summary="Spin a wheel",
      description="One atomic step: checks the campaign is active and within its dates, today's cap (in the "
                  "program's time zone) and the cost (a free-spin token first, else points), draws the segment "
                  "from my seed pair (rw-fair-1) with the weights in effect (a prize out of stock or beyond the "
                  "prize budget weighs 0), pays the prize (points at once; an item becomes an order costing no "
                  "points; free spins as tokens) and advances my nonce. Answers the segment, the prize, my new "
                  "balance and the proof. 409 `campaign_not_active`, 409 `limit_reached` (daily cap), 409 "
                  "`out_of_stock` (no prize left), 422 `insufficient_points`, 403 when the campaign is not open "
                  "to my segment or team. Requires `Idempotency-Key`: a retry answers the first spin again.",
      tags=["games"])
async def spin(request: Request[Any, Any, Any], campaign_id: str, idem: Idem) -> Response[spins.SpinView]:
    # The stores come from the app, not injected: beside `idem`, Litestar would resolve each
    # dependency in a task group on every spin (a fifth of a spin's CPU, py-spy).
    state = request.app.state
    view, replayed = await spin_for(state.wallets, state.sealer, principal_of(request), campaign_id, idem)
    return Response(view, status_code=201, headers=REPLAYED if replayed else None)


async def spin_for(wallets: WalletStore, sealer: Sealer, principal: Principal, campaign_id: str,
                   idem: Idem) -> tuple[spins.SpinView, bool]:
    """The spin of POST /v1/me/campaigns/{id}/spins (also served by api/lean.py)."""
    program = await get_program(principal.program_id or "")
    return await spins.spin(wallets, sealer, program, pricing_of(program), principal.subject_id, campaign_id, idem)


@get("/v1/me/campaigns", guards=[participant_only], operation_id="listMyCampaigns", summary="Wheels I can play",
     description="Active campaigns within their dates that are open to me, each with its segments (label, colour, "
                 "prize, weight and probability as designed, whether an item prize is in stock), the cost, and "
                 "my spins today against the daily cap; plus my free-spin tokens. Newest first.", tags=["games"])
async def my_campaigns(request: Request[Any, Any, Any], wallets: WalletStore, limit: Limit = 50,
                       cursor: Cursor = None) -> arcade.Playable:
    principal = principal_of(request)
    program = await get_program(principal.program_id or "")
    person = await get_participant(program.id, principal.subject_id)
    return await arcade.playable(wallets, program, person, limit, cursor)


@get("/v1/me/spins", guards=[participant_only], operation_id="listMySpins", summary="My spins, with proofs",
     description="Newest first. Each carries its rw-fair-1 proof; once I rotate my seed pair the proofs of the "
                 "spins made with it include the revealed `server_seed`, so `reward-wallet verify spin` (or any "
                 "verifier) can recompute them.", tags=["games"])
async def my_spins(request: Request[Any, Any, Any], limit: Limit = 50, cursor: Cursor = None,
                   campaign_id: IdFilter = None) -> spins.SpinPage:
    principal = principal_of(request)
    return await spins.my_spins(request.app.state.wallets.client, principal.program_id or "", principal.subject_id,
                                limit, cursor, campaign_id)


@get("/v1/campaigns/{campaign_id:str}/report", guards=[admin_only], operation_id="reportSpinCampaign",
     summary="A campaign's report",
     description="Spins (paid with points or free-spin tokens), participants, cost taken, prizes paid, and per "
                 "segment the wins against the configured odds, the points paid and the stock left; the prize "
                 "budget left.", tags=["games"])
async def report(request: Request[Any, Any, Any], campaign_id: str, wallets: WalletStore) -> arcade.CampaignReport:
    return await arcade.report(wallets, program_of(request), campaign_id)


class FreeSpinsGift(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    spins: SpinCount
    reason: Reason


class FreeSpins(msgspec.Struct, frozen=True):
    participant_id: str
    free_spins: int


@post("/v1/participants/{participant_id:str}/free-spins", guards=[admin_only], dependencies=IDEMPOTENT,
      operation_id="giveFreeSpins", summary="Give free spins",
      description="Free-spin tokens for a participant; a spin on any wheel uses a token before points. Earning "
                  "rules can give them too (`free_spins` on a rule). Requires `Idempotency-Key`.", tags=["games"])
async def give_free_spins(request: Request[Any, Any, Any], participant_id: str, data: FreeSpinsGift, idem: Idem,
                          wallets: WalletStore) -> Response[FreeSpins]:
    outcome = await wallets.give_free_spins(program_of(request), participant_id, data.spins, idem)
    raise_for(outcome)
    return Response(FreeSpins(participant_id=participant_id, free_spins=outcome.free_spins or 0), status_code=201,
                    headers=REPLAYED if outcome.replayed else None)


ROUTES = [spin, my_campaigns, my_spins, report, give_free_spins]
