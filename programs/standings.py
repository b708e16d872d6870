"""Leaderboards: who earned most this week, month, quarter, ever, or during a campaign.

Each board and period is a Redis sorted set under the program's hash tag. Points (or a
weighted count of activities, the "success tracking" score) are added by
`leaderboard_score.lua`, once per transaction or activity even when retried, with the tie
broken inside the score: equal points rank by who reached them first. Periods are calendar
periods in the program's time zone (ISO weeks from Monday).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from importlib import resources
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import msgspec
from msgspec import Meta

from programs.programs import get_program
from programs.tables import Leaderboard, Participant, Team
from wallet import keys
from wallet.errors import Invalid, NotFound
from wallet.ids import new_id
from wallet.moments import utc

SCRIPT = resources.files("programs").joinpath("leaderboard_score.lua").read_text()
UNIT = 2**21  # the tie-break's range: about four years of minutes
MAX_POINTS = 2**32 - 1
MARKER_TTL = 400 * 86400
ANONYMOUS = "Anonymous salesperson"
Period = Literal["week", "month", "quarter", "all_time", "custom"]


class NewLeaderboard(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    entity: Literal["participants", "teams"] = "participants"
    metric: Literal["points", "activity_score"] = "points"
    weights: dict[Annotated[str, Meta(pattern=r"^[a-z0-9_]{1,60}$")], Annotated[int, Meta(ge=1, le=1_000_000)]] = {}
    period: Period = "month"
    starts_at: Annotated[datetime, Meta(tz=True)] | None = None
    ends_at: Annotated[datetime, Meta(tz=True)] | None = None


class LeaderboardView(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    name: str
    entity: str
    metric: str
    period: str
    status: str
    weights: dict[str, int] = {}
    starts_at: datetime | None = None
    ends_at: datetime | None = None


class Entry(msgspec.Struct, frozen=True):
    rank: int | None
    id: str
    display_name: str
    score: int


class Standings(msgspec.Struct, frozen=True, omit_defaults=True):
    leaderboard: LeaderboardView
    period_key: str
    period_starts_at: datetime | None
    period_ends_at: datetime | None
    top: list[Entry]
    me: Entry | None = None
    neighbours: list[Entry] | None = None


def _view(row: dict[str, Any]) -> LeaderboardView:
    return LeaderboardView(id=row["id"], name=row["name"], entity=row["entity"], metric=row["metric"],
                           period=row["period"], status=row["status"], weights=msgspec.json.decode(row["weights"]),
                           starts_at=utc(row["starts_at"]), ends_at=utc(row["ends_at"]))


def period_bounds(board: LeaderboardView, at: datetime, tz: str,
                  program_start: datetime) -> tuple[str, datetime, datetime | None] | None:
    """(key, start, end) of the board's period holding `at`; None when `at` is outside a
    custom board's dates."""
    at = utc(at)
    if board.period == "custom":
        if board.starts_at is None or board.ends_at is None or not board.starts_at <= at < board.ends_at:
            return None
        return "custom", board.starts_at, board.ends_at
    if board.period == "all_time":
        return "all", utc(program_start), None
    local = at.astimezone(ZoneInfo(tz))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    if board.period == "week":
        start = midnight - timedelta(days=local.weekday())
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}", start.astimezone(timezone.utc), (start + timedelta(days=7)).astimezone(timezone.utc)
    if board.period == "month":
        start = midnight.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
        return local.strftime("%Y-%m"), start.astimezone(timezone.utc), end.astimezone(timezone.utc)
    quarter_month = 3 * ((local.month - 1) // 3) + 1
    start = midnight.replace(month=quarter_month, day=1)
    end = (start + timedelta(days=95)).replace(day=1)
    return f"{local.year}-Q{(local.month - 1) // 3 + 1}", start.astimezone(timezone.utc), end.astimezone(timezone.utc)


def tie_break(at: datetime, start: datetime) -> int:
    minutes = int((utc(at) - utc(start)).total_seconds() // 60)
    return UNIT - 1 - min(max(minutes, 0), UNIT - 1)


def _board_key(program_id: str, board_id: str, period: str) -> str:
    return f"{keys.tag(program_id)}:lb:{board_id}:{period}"


async def create_leaderboard(program_id: str, spec: NewLeaderboard) -> LeaderboardView:
    if spec.metric == "activity_score" and not spec.weights:
        raise Invalid("an activity_score board needs weights per activity type", field="weights")
    if spec.period == "custom":
        if spec.starts_at is None or spec.ends_at is None or utc(spec.starts_at) >= utc(spec.ends_at):
            raise Invalid("a custom period needs starts_at before ends_at", field="starts_at")
    board_id = new_id("lb")
    await Leaderboard.insert(Leaderboard(
        id=board_id, program_id=program_id, name=spec.name, entity=spec.entity, metric=spec.metric,
        weights=msgspec.json.encode(spec.weights).decode(), period=spec.period,
        starts_at=utc(spec.starts_at) if spec.starts_at else None, ends_at=utc(spec.ends_at) if spec.ends_at else None,
        created_at=datetime.now(timezone.utc))).run()
    _cache.pop(program_id, None)
    return await get_leaderboard(program_id, board_id)


async def get_leaderboard(program_id: str, board_id: str) -> LeaderboardView:
    row = await Leaderboard.select().where((Leaderboard.id == board_id) & (Leaderboard.program_id == program_id)) \
        .first().run()
    if row is None:
        raise NotFound("no such leaderboard")
    return _view(row)


async def list_leaderboards(program_id: str) -> list[LeaderboardView]:
    rows = await Leaderboard.select().where((Leaderboard.program_id == program_id)
                                            & (Leaderboard.status == "active")).order_by(Leaderboard.id).run()
    return [_view(r) for r in rows]


async def retire_leaderboard(program_id: str, board_id: str) -> LeaderboardView:
    await get_leaderboard(program_id, board_id)
    await Leaderboard.update({Leaderboard.status: "retired"}).where(Leaderboard.id == board_id).run()
    _cache.pop(program_id, None)
    return await get_leaderboard(program_id, board_id)


# Boards per program for a few seconds: recording runs on every award.
_cache: dict[str, tuple[float, list[LeaderboardView], str, datetime]] = {}
CACHE_SECONDS = 3.0


async def _boards(program_id: str) -> tuple[list[LeaderboardView], str, datetime]:
    hit = _cache.get(program_id)
    if hit is not None and time.monotonic() - hit[0] < CACHE_SECONDS:
        return hit[1], hit[2], hit[3]
    program = await get_program(program_id)
    boards = await list_leaderboards(program_id)
    _cache[program_id] = (time.monotonic(), boards, program.timezone, program.created_at)
    return boards, program.timezone, program.created_at


async def _add(client: Any, program_id: str, board: LeaderboardView, member: str, points: int, event: str,
               at: datetime, tz: str, program_start: datetime) -> None:
    bounds = period_bounds(board, at, tz, program_start)
    if bounds is None:
        return
    period, start, _ = bounds
    key = _board_key(program_id, board.id, period)
    marker = f"{keys.tag(program_id)}:lbm:{board.id}:{event}"
    await client.eval(SCRIPT, 2, key, marker, member, max(min(points, MAX_POINTS), -MAX_POINTS), tie_break(at, start),
                      MARKER_TTL)


UNKNOWN_TEAM = "?"


async def record_points(client: Any, program_id: str, participant_id: str, team_id: str | None, points: int,
                        transaction_id: str, at: datetime) -> None:
    """Adds points earned to every points board whose period holds `at`, once per transaction.
    `team_id` may be UNKNOWN_TEAM: it is then looked up only if a team board needs it."""
    boards, tz, start = await _boards(program_id)
    if team_id == UNKNOWN_TEAM and any(b.entity == "teams" and b.metric == "points" for b in boards):
        row = await Participant.select(Participant.team_id).where(Participant.id == participant_id).first().run()
        team_id = row["team_id"] if row else None
    for board in boards:
        if board.metric != "points":
            continue
        member = participant_id if board.entity == "participants" else team_id
        if member:
            await _add(client, program_id, board, member, points, f"tx:{transaction_id}", at, tz, start)


async def record_activity(client: Any, program_id: str, participant_id: str, team_id: str | None,
                          activity_type: str, activity_id: str, at: datetime) -> None:
    """Adds an activity's weight to every activity_score board that weighs its type, once."""
    boards, tz, start = await _boards(program_id)
    for board in boards:
        weight = board.weights.get(activity_type)
        if board.metric != "activity_score" or not weight:
            continue
        member = participant_id if board.entity == "participants" else team_id
        if member:
            await _add(client, program_id, board, member, weight, f"act:{activity_id}", at, tz, start)


async def _names(board: LeaderboardView, ids: list[str], viewer: str | None) -> dict[str, str]:
    if not ids:
        return {}
    if board.entity == "teams":
        rows = await Team.select(Team.id, Team.name).where(Team.id.is_in(ids)).run()
        return {r["id"]: r["name"] for r in rows}
    rows = await Participant.select(Participant.id, Participant.display_name, Participant.show_name) \
        .where(Participant.id.is_in(ids)).run()
    return {r["id"]: r["display_name"] if (r["show_name"] or r["id"] == viewer) else ANONYMOUS for r in rows}


def _entries(pairs: list[tuple[Any, float]], first_rank: int) -> list[tuple[str, int, int]]:
    out = []
    for offset, (member, score) in enumerate(pairs):
        member = member.decode() if isinstance(member, bytes) else str(member)
        out.append((member, first_rank + offset, int(score) // UNIT))
    return out


async def standings(client: Any, program_id: str, board_id: str, limit: int = 10, around: str | None = None,
                    at: datetime | None = None, viewer: str | None = None) -> Standings:
    """The top `limit`, and for `around` (a participant id) their own entry and two
    neighbours above and below (their team's, on a team board). `viewer`, a participant,
    sees their own name even if they chose to be anonymous."""
    board = await get_leaderboard(program_id, board_id)
    program = await get_program(program_id)
    bounds = period_bounds(board, at or datetime.now(timezone.utc), program.timezone, program.created_at)
    if bounds is None:  # a custom board outside its dates shows its final standings
        bounds = ("custom", board.starts_at or program.created_at, board.ends_at)
    period, start, end = bounds
    key = _board_key(program_id, board.id, period)
    top = _entries(await client.zrevrange(key, 0, limit - 1, withscores=True), 1)
    me_entry = neighbours = None
    member = around
    if around is not None and board.entity == "teams":
        row = await Participant.select(Participant.team_id).where(Participant.id == around).first().run()
        member = row["team_id"] if row else None
    near: list[tuple[str, int, int]] = []
    if member is not None:
        rank = await client.zrevrank(key, member)
        if rank is not None:
            low = max(rank - 2, 0)
            near = _entries(await client.zrevrange(key, low, rank + 2, withscores=True), low + 1)
    names = await _names(board, sorted({m for m, _, _ in top + near} | ({member} if member else set())), viewer)
    entry = lambda m, r, s: Entry(rank=r, id=m, display_name=names.get(m, ""), score=s)  # noqa: E731
    if member is not None:
        mine = [e for e in near if e[0] == member]
        me_entry = entry(*mine[0]) if mine else Entry(rank=None, id=member, display_name=names.get(member, ""), score=0)
        neighbours = [entry(*e) for e in near if e[0] != member]
    return Standings(leaderboard=board, period_key=period, period_starts_at=start, period_ends_at=end,
                     top=[entry(*e) for e in top], me=me_entry, neighbours=neighbours)
