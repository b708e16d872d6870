"""Spin campaigns (program admin): design, launch, pause, end; each answer shows the odds,
the expected payout per spin and the return to player."""

from __future__ import annotations

from typing import Any

from litestar import Request, Response, get, post, put

from api.auth import admin_only
from api.routes.participants import Cursor, Limit, program_of
from catalog.items import pricing_of
from games import campaigns
from games.wheel import WheelSpec
from programs.programs import get_program
from wallet.store import WalletStore


@post("/v1/campaigns/spin", guards=[admin_only], operation_id="createSpinCampaign",
      summary="Design a spin-to-win campaign",
      description="Segments with a label, a weight and a prize (`points`, `item` with its stock, `free_spin` or "
                  "`entries` in an open sweepstakes or `nothing`), a cost per spin, optional dates, daily cap per participant, prize budget and "
                  "eligibility. Weights must sum to 1..2^32. Answers the odds, the expected payout per spin and "
                  "the return to player, so the cost is known before launching. Created as a draft.",
      tags=["games"])
async def create(request: Request[Any, Any, Any], data: WheelSpec) -> Response[campaigns.CampaignView]:
    program = await get_program(program_of(request))
    return Response(await campaigns.create_campaign(program, data, pricing_of(program)), status_code=201)


@get("/v1/campaigns", guards=[admin_only], operation_id="listSpinCampaigns", summary="List spin campaigns",
     description="Newest first; filter by status.", tags=["games"])
async def list_all(request: Request[Any, Any, Any], limit: Limit = 50, cursor: Cursor = None,
                   status: campaigns.Status | None = None) -> campaigns.CampaignPage:
    program = await get_program(program_of(request))
    return await campaigns.list_campaigns(program.id, pricing_of(program), limit, cursor, status)


@get("/v1/campaigns/{campaign_id:str}", guards=[admin_only], operation_id="getSpinCampaign",
     summary="Read a spin campaign", description="With its odds and expected payout.", tags=["games"])
async def read(request: Request[Any, Any, Any], campaign_id: str) -> campaigns.CampaignView:
    program = await get_program(program_of(request))
    return await campaigns.get_campaign(program.id, campaign_id, pricing_of(program))


@put("/v1/campaigns/{campaign_id:str}", guards=[admin_only], operation_id="updateSpinCampaign",
     summary="Change a draft campaign", description="Only drafts change: a launched wheel's odds are public.",
     tags=["games"])
async def update(request: Request[Any, Any, Any], campaign_id: str, data: WheelSpec) -> campaigns.CampaignView:
    program = await get_program(program_of(request))
    return await campaigns.update_campaign(program, campaign_id, data, pricing_of(program))


@post("/v1/campaigns/{campaign_id:str}/launch", guards=[admin_only], operation_id="launchSpinCampaign",
      summary="Launch (or resume) a campaign", description="Makes it active. The first launch funds the prize "
      "pool from the program budget (409 `budget_exhausted` if it cannot) and loads the prize stock. Every active "
      "participant without a seed pair gets one committed then, so the spins right after a launch write no SQL.",
      tags=["games"], status_code=200)
async def launch(request: Request[Any, Any, Any], campaign_id: str, wallets: WalletStore) -> campaigns.CampaignView:
    program = await get_program(program_of(request))
    return await campaigns.launch(wallets, program, campaign_id, pricing_of(program), request.app.state.sealer)


@post("/v1/campaigns/{campaign_id:str}/pause", guards=[admin_only], operation_id="pauseSpinCampaign",
      summary="Pause a campaign", description="Spins answer 409 `campaign_not_active` until it is launched again.",
      tags=["games"], status_code=200)
async def pause(request: Request[Any, Any, Any], campaign_id: str, wallets: WalletStore) -> campaigns.CampaignView:
    program = await get_program(program_of(request))
    return await campaigns.pause(wallets, program, campaign_id, pricing_of(program))


@post("/v1/campaigns/{campaign_id:str}/end", guards=[admin_only], operation_id="endSpinCampaign",
      summary="End a campaign", description="For good; what is left of the prize pool returns to the budget.",
      tags=["games"], status_code=200)
async def end(request: Request[Any, Any, Any], campaign_id: str, wallets: WalletStore) -> campaigns.CampaignView:
    program = await get_program(program_of(request))
    return await campaigns.end(wallets, program, campaign_id, pricing_of(program))


ROUTES = [create, list_all, read, update, launch, pause, end]
