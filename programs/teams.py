"""Teams: a dealer's sales floor, for team awards and team leaderboards."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated

import msgspec
from msgspec import Meta

from programs.participants import ParticipantPage, list_participants
from programs.tables import Team
from kernel.errors import Conflict, NotFound
from kernel.ids import new_id
from kernel.pages import decode_cursor, next_cursor


class NewTeam(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)]


class TeamView(msgspec.Struct, frozen=True):
    id: str
    name: str
    created_at: datetime


class TeamPage(msgspec.Struct, frozen=True):
    items: list[TeamView]
    next_cursor: str | None


async def create_team(program_id: str, spec: NewTeam) -> TeamView:
    key = f"{program_id}:{spec.name}"
    if await Team.exists().where(Team.program_name == key).run():
        raise Conflict(f"a team named {spec.name!r} already exists")
    team = Team(
        id=new_id("team"), program_id=program_id, name=spec.name, program_name=key, created_at=datetime.now(timezone.utc)
    )
    try:
        await Team.insert(team).run()
    except Exception:
        raise Conflict(f"a team named {spec.name!r} already exists") from None
    return await get_team(program_id, team.id)


async def get_team(program_id: str, team_id: str) -> TeamView:
    row = await Team.select(Team.id, Team.name, Team.created_at).where(
        (Team.id == team_id) & (Team.program_id == program_id)
    ).first().run()
    if row is None:
        raise NotFound("no such team")
    return TeamView(**row)


async def list_teams(program_id: str, limit: int = 50, cursor: str | None = None) -> TeamPage:
    after = decode_cursor(cursor)
    where = Team.program_id == program_id
    if after is not None:
        where &= Team.id < after
    rows = await Team.select(Team.id, Team.name, Team.created_at).where(where).order_by(
        Team.id, ascending=False
    ).limit(limit + 1).run()
    return TeamPage(items=[TeamView(**r) for r in rows[:limit]], next_cursor=next_cursor([r["id"] for r in rows], limit))


async def team_members(program_id: str, team_id: str, limit: int = 50, cursor: str | None = None) -> ParticipantPage:
    await get_team(program_id, team_id)
    return await list_participants(program_id, limit=limit, cursor=cursor, team_id=team_id)
