"""Leaderboards: admins define them; participants see the top and where they stand."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, get, patch, post

from api.auth import admin_only, admin_or_participant, participant_only, principal_of
from api.routes.participants import Cursor, IdFilter, Limit, program_of
from programs import standings
from programs.participants import ParticipantChanges, ParticipantView, update_participant
from kernel.errors import Invalid


class Preferences(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    show_name: bool


@post("/v1/leaderboards", guards=[admin_only], operation_id="createLeaderboard", summary="Define a leaderboard",
      description="For participants or teams, ranked by points earned or by an activity score (weights per "
                  "activity type: the success-tracking score), per week, month, quarter, all time, or custom "
                  "dates (a campaign's). Periods follow the program's time zone. A points board counts grants "
                  "(single and batch), earning awards and approved claims; with `count_prizes`, spin and "
                  "sweepstakes points prizes too; never deductions, spends or redemptions.", tags=["leaderboards"])
async def create(request: Request[Any, Any, Any], data: standings.NewLeaderboard) -> Response[standings.LeaderboardView]:
    return Response(await standings.create_leaderboard(program_of(request), data), status_code=201)


@get("/v1/leaderboards", guards=[admin_or_participant], operation_id="listLeaderboards",
     summary="List leaderboards", description="The program's active leaderboards, newest first.",
     tags=["leaderboards"])
async def list_all(request: Request[Any, Any, Any], limit: Limit = 50,
                   cursor: Cursor = None) -> standings.LeaderboardPage:
    return await standings.leaderboard_page(principal_of(request).program_id or "", limit, cursor)


@get("/v1/leaderboards/{leaderboard_id:str}", guards=[admin_or_participant], operation_id="getLeaderboard",
     summary="Standings", description="The top `limit` of the current period. `around=me` (participants) adds "
     "their own rank and score and up to two neighbours above and below; admins pass a participant id. Ties rank "
     "by who got there first; participants who opted out show as 'Anonymous salesperson'.",
     tags=["leaderboards"])
async def read(request: Request[Any, Any, Any], leaderboard_id: str,
               limit: Limit = 10,
               around: IdFilter = None) -> standings.Standings:
    principal = principal_of(request)
    if around is not None and principal.kind == "participant":
        if around != "me":
            raise Invalid("participants may only ask around=me", field="around")
        around = principal.subject_id
    elif around == "me":
        raise Invalid("around=me is for participants; admins pass a participant id", field="around")
    viewer = principal.subject_id if principal.kind == "participant" else None
    return await standings.standings(request.app.state.redis, principal.program_id or "", leaderboard_id, limit,
                                     around, viewer=viewer)


@post("/v1/leaderboards/{leaderboard_id:str}/retire", guards=[admin_only], operation_id="retireLeaderboard",
      summary="Retire a leaderboard", description="It stops counting and leaves the list.", tags=["leaderboards"],
      status_code=200)
async def retire(request: Request[Any, Any, Any], leaderboard_id: str) -> standings.LeaderboardView:
    return await standings.retire_leaderboard(program_of(request), leaderboard_id)


@patch("/v1/me/preferences", guards=[participant_only], operation_id="updateMyPreferences",
       summary="My preferences", description="`show_name: false` shows me as 'Anonymous salesperson' on "
       "leaderboards to everyone else.", tags=["me"])
async def preferences(request: Request[Any, Any, Any], data: Preferences) -> ParticipantView:
    principal = principal_of(request)
    _, after = await update_participant(principal.program_id or "", principal.subject_id,
                                        ParticipantChanges(show_name=data.show_name))
    return after


ROUTES = [create, list_all, read, retire, preferences]
