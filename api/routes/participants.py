"""Participants, their tokens, and teams (program admin)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, patch, post
from litestar.params import Parameter
from msgspec import Meta

from api.auth import Authenticator, active_program, admin_only, principal_of
from api.settings import Settings
from programs import participants as people
from programs import participant_imports, sessions, teams
from kernel.ids import ID_MAX
from wallet.store import WalletStore

Limit = Annotated[int, Parameter(ge=1, le=200, description="page size, 1..200")]
Cursor = Annotated[str | None, Parameter(max_length=200, description="opaque cursor from next_cursor")]
IdFilter = Annotated[str | None, Parameter(max_length=ID_MAX)]


class TokenPair(msgspec.Struct, frozen=True):
    access_token: str
    refresh_token: str
    token_type: str
    expires_in: int


class CsvImport(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    csv: Annotated[str, Meta(min_length=1, max_length=2_000_000)]


def program_of(request: Request[Any, Any, Any]) -> str:
    return principal_of(request).program_id or ""


async def token_pair(authenticator: Authenticator, settings: Settings, program_id: str, participant_id: str,
                     refresh_token: str) -> TokenPair:
    return TokenPair(
        access_token=await authenticator.mint_access_token(program_id, participant_id),
        refresh_token=refresh_token,
        token_type="Bearer",
        expires_in=settings.access_token_ttl_seconds,
    )


@post("/v1/participants", guards=[admin_only], operation_id="upsertParticipant", summary="Enrol a participant",
      description="Creates the participant (201), or answers the existing one with the same external_id (200).",
      tags=["participants"])
async def upsert(request: Request[Any, Any, Any], data: people.NewParticipant,
                 wallets: WalletStore) -> Response[people.ParticipantView]:
    view, created = await people.enrol_participant(wallets, program_of(request), data)
    return Response(view, status_code=201 if created else 200)


@get("/v1/participants", guards=[admin_only], operation_id="listParticipants", summary="List participants",
     description="Newest first. `q` searches name, external id and email.", tags=["participants"])
async def list_all(
    request: Request[Any, Any, Any],
    limit: Limit = 50,
    cursor: Cursor = None,
    q: Annotated[str | None, Parameter(max_length=200)] = None,
    team_id: IdFilter = None,
    segment: Annotated[str | None, Parameter(max_length=100)] = None,
    status: people.ParticipantStatus | None = None,
) -> people.ParticipantPage:
    return await people.list_participants(program_of(request), limit, cursor, q, team_id, segment, status)


@get("/v1/participants/{participant_id:str}", guards=[admin_only], operation_id="getParticipant",
     summary="Read a participant", description="404 for ids of other programs.", tags=["participants"])
async def read(request: Request[Any, Any, Any], participant_id: str) -> people.ParticipantView:
    return await people.get_participant(program_of(request), participant_id)


@patch("/v1/participants/{participant_id:str}", guards=[admin_only], operation_id="updateParticipant",
       summary="Update a participant",
       description="Name, email, team, segment, status. Setting status `deactivated` stops their tokens at once.",
       tags=["participants"])
async def update(request: Request[Any, Any, Any], participant_id: str, data: people.ParticipantChanges,
                 wallets: WalletStore) -> people.ParticipantView:
    return await people.change_participant(wallets, program_of(request), participant_id, data)


@post("/v1/participants/{participant_id:str}/deactivate", guards=[admin_only], operation_id="deactivateParticipant",
      summary="Deactivate a participant",
      description="Their access and refresh tokens stop working at once; balances are kept.",
      tags=["participants"], status_code=200)
async def deactivate(request: Request[Any, Any, Any], participant_id: str,
                     wallets: WalletStore) -> people.ParticipantView:
    return await people.deactivate_participant(wallets, program_of(request), participant_id)


@post("/v1/participants/import", guards=[admin_only], operation_id="importParticipants",
      summary="Bulk import participants from CSV",
      description="Body `{\"csv\": \"external_id,display_name,email,team_id,segment\\n...\"}`. Every good row is "
                  "upserted; each bad row is reported with its line number.",
      tags=["participants"], status_code=200)
async def import_csv(request: Request[Any, Any, Any], data: CsvImport,
                     wallets: WalletStore) -> people.ImportReport:
    return await participant_imports.import_sheet(wallets, program_of(request), data.csv)


@post("/v1/participants/{participant_id:str}/tokens", guards=[admin_only, active_program], operation_id="issueParticipantTokens",
      summary="Issue a participant's tokens",
      description="An access token (a JWT, at most 15 minutes) and a refresh token that rotates on every use.",
      tags=["participants"])
async def issue_tokens(request: Request[Any, Any, Any], participant_id: str, authenticator: Authenticator,
                       settings: Settings) -> Response[TokenPair]:
    program_id = program_of(request)
    refresh = await sessions.start_session(program_id, participant_id,
                                           timedelta(days=settings.refresh_token_ttl_days))
    pair = await token_pair(authenticator, settings, program_id, participant_id, refresh)
    return Response(pair, status_code=201)


@post("/v1/teams", guards=[admin_only], operation_id="createTeam", summary="Create a team",
      description="Team names are unique within a program.", tags=["teams"])
async def create_team(request: Request[Any, Any, Any], data: teams.NewTeam) -> Response[teams.TeamView]:
    return Response(await teams.create_team(program_of(request), data), status_code=201)


@get("/v1/teams", guards=[admin_only], operation_id="listTeams", summary="List teams", description="Newest first.",
     tags=["teams"])
async def list_teams(request: Request[Any, Any, Any], limit: Limit = 50, cursor: Cursor = None) -> teams.TeamPage:
    return await teams.list_teams(program_of(request), limit, cursor)


@get("/v1/teams/{team_id:str}", guards=[admin_only], operation_id="getTeam", summary="Read a team",
     description="404 for ids of other programs.", tags=["teams"])
async def read_team(request: Request[Any, Any, Any], team_id: str) -> teams.TeamView:
    return await teams.get_team(program_of(request), team_id)


@get("/v1/teams/{team_id:str}/members", guards=[admin_only], operation_id="listTeamMembers",
     summary="List a team's members", description="Newest first.", tags=["teams"])
async def members(request: Request[Any, Any, Any], team_id: str, limit: Limit = 50,
                  cursor: Cursor = None) -> people.ParticipantPage:
    return await teams.team_members(program_of(request), team_id, limit, cursor)


ROUTES = [upsert, list_all, import_csv, read, update, deactivate, issue_tokens, create_team, list_teams, read_team,
          members]
