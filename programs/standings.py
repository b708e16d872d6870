"""Leaderboards: who earned most this week, month, quarter, ever, or during a campaign.

Each board and period is a Redis sorted set under the program's hash tag,
`rw:{p:<program>}:lbs:<board>:<period key>` (`2026-W48`, `2026-11`, `2026-Q4`, `all`,
`custom`), with a hash beside it (`...:ix`) from member to its sorted-set member. Periods are calendar periods in the program's time zone: ISO weeks from Monday,
months, quarters. A grant (single or a batch's item) or an award moves the points boards in
its own wallet call: `grant_boards` (or `PointsBoards.scoring`, one program's boards at hand)
works out the keys and arguments it carries (wallet/store.py `Boards`). A spin's or a
sweepstakes' points prize moves, the same way, only the boards created with `count_prizes`
(`prize_scoring`, `grant_boards(..., prizes=True)`). Deductions, spends and redemptions move
none. `record_points` and
`record_activity` (the weighted "success tracking" score) add an event to every active
board it belongs to in a call of their own. Both count through `leaderboard_score.lua`, in
the programs' part of the function library, once per board even when the event is recorded
again or twice at the same moment (a marker hash per event, kept `MARKER_TTL`).

The score is the entry's points, exactly; the tie-break is in the sorted-set member,
"<2^21 - 1 - ticks, 7 digits>:<member id>", where ticks count from the period's start to the
entry's latest event, so of two equal point totals the one reached first ranks higher
(equal scores sort by member). A tick is a minute for weeks, months, quarters and custom
periods up to 2^21 minutes (3.99 years), an hour for all time (counted from the program's
creation: 239 years) and for longer custom periods; ticks past the range count as the last
one. A double holds integers exactly up to 2^53, so an entry holds at most
`MAX_POINTS` = 2^53 - 1 points, the most any balance may hold (kernel/money.py): the
script caps a total there (a team's sum could pass it) and never goes below 0.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from importlib import resources
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import msgspec
from msgspec import Meta

from programs.programs import get_program
from programs.tables import Leaderboard, Participant, Team
from programs import keys as program_keys
from kernel.bounded_map import BoundedMap
from kernel.money import MAX_BALANCE
from kernel.errors import Invalid, NotFound
from kernel.ids import new_id
from kernel.clock import utc
from kernel.pages import newest_first
from wallet.store import NO_BOARDS, Boards

_UPGRADE = resources.files("programs").joinpath("leaderboard_upgrade.lua").read_text()
UPGRADE_SCRIPT = _UPGRADE + "\nreturn upgrade(KEYS[1], KEYS[2], KEYS[3])\n"
UNIT = 2**21  # the tie-break's range, in ticks
MAX_POINTS = MAX_BALANCE  # the score is the points themselves: exact up to 2^53 - 1
MARKER_TTL = 8 * 86400  # longer than any retry of an event (idempotency keys live 2 days)
REVERSED_MARKER_TTL = 10 * 365 * 86400  # a return's, as long as its record (wallet/store.py reverse)
ANONYMOUS = "Anonymous salesperson"
UNKNOWN_TEAM = "?"  # record_points' and grant_boards' team_id when the caller does not know it: looked up if needed
Period = Literal["week", "month", "quarter", "all_time", "custom"]


class NewLeaderboard(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    entity: Literal["participants", "teams"] = "participants"
    metric: Literal["points", "activity_score"] = "points"
    weights: dict[Annotated[str, Meta(pattern=r"^[a-z0-9_]{1,60}$")], Annotated[int, Meta(ge=1, le=1_000_000)]] = {}
    period: Period = "month"
    starts_at: Annotated[datetime, Meta(tz=True)] | None = None
    ends_at: Annotated[datetime, Meta(tz=True)] | None = None
    count_prizes: Annotated[bool, Meta(description=(
        "points boards only: spin and sweepstakes points prizes count too (never a spin's cost); "
        "without it a board counts grants, batch grants, earning awards and approved claims"))] = False


class LeaderboardView(msgspec.Struct, frozen=True, omit_defaults=True):
    id: str
    name: str
    entity: str
    metric: str
    period: str
    status: str
    count_prizes: bool
    weights: dict[str, int] = {}
    starts_at: datetime | None = None
    ends_at: datetime | None = None


class Entry(msgspec.Struct, frozen=True):
    rank: int | None
    # None on the line of a participant who opted out (shown as ANONYMOUS): an id would
    # name them as surely as their name.
    id: str | None
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
                           period=row["period"], status=row["status"], count_prizes=bool(row.get("count_prizes")),
                           weights=msgspec.json.decode(row["weights"]),
                           starts_at=utc(row["starts_at"]), ends_at=utc(row["ends_at"]))


def period_bounds(period: Period | str, at: datetime, tz: str, starts_at: datetime | None = None,
                  ends_at: datetime | None = None) -> tuple[str, datetime, datetime | None]:
    """(key, start, end) of the period holding `at`, in UTC; `end` is exclusive and None for
    all time. `starts_at` and `ends_at` are a custom period's dates (the answer is those even
    when `at` lies outside them); for all time, `starts_at` is when counting began."""
    at = utc(at)
    if period == "custom":
        if starts_at is None or ends_at is None:
            raise Invalid("a custom period needs starts_at and ends_at", field="starts_at")
        return "custom", utc(starts_at), utc(ends_at)
    if period == "all_time":
        return "all", utc(starts_at) if starts_at else datetime(2020, 1, 1, tzinfo=timezone.utc), None
    local = at.astimezone(ZoneInfo(tz))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0, tzinfo=None)
    if period == "week":
        start = midnight - timedelta(days=local.weekday())
        end = start + timedelta(days=7)
        year, week, _ = local.isocalendar()
        key = f"{year}-W{week:02d}"
    elif period == "month":
        start = midnight.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
        key = local.strftime("%Y-%m")
    elif period == "quarter":
        start = midnight.replace(month=3 * ((local.month - 1) // 3) + 1, day=1)
        end = (start + timedelta(days=95)).replace(day=1)
        key = f"{local.year}-Q{(local.month - 1) // 3 + 1}"
    else:
        raise Invalid(f"unknown period {period!r}", field="period")
    # Wall-clock midnights, placed in the zone only now, so a DST change inside the period
    # does not shift its bounds by an hour.
    zone = ZoneInfo(tz)
    return key, start.replace(tzinfo=zone).astimezone(timezone.utc), end.replace(tzinfo=zone).astimezone(timezone.utc)


def tie_break(at: datetime, start: datetime, end: datetime | None) -> int:
    """2^21 - 1 - ticks from `start` to `at` (see the module notes): larger is earlier."""
    tick = 60 if end is not None and (utc(end) - utc(start)).total_seconds() <= UNIT * 60 else 3600
    ticks = int((utc(at) - utc(start)).total_seconds() // tick)
    return UNIT - 1 - min(max(ticks, 0), UNIT - 1)


def _bounds(board: LeaderboardView, at: datetime, tz: str,
            program_start: datetime) -> tuple[str, datetime, datetime | None]:
    starts_at = board.starts_at if board.period == "custom" else program_start
    return period_bounds(board.period, at, tz, starts_at, board.ends_at)


def _index_key(board_key: str) -> str:
    return f"{board_key}:ix"


def _member_id(encoded: Any) -> str:
    """The member id of a sorted-set member "<tie-break>:<id>"."""
    text = encoded.decode() if isinstance(encoded, bytes) else str(encoded)
    return text.split(":", 1)[1]


async def create_leaderboard(program_id: str, spec: NewLeaderboard) -> LeaderboardView:
    if spec.metric == "activity_score" and not spec.weights:
        raise Invalid("an activity_score board needs weights per activity type", field="weights")
    if spec.metric != "points" and spec.count_prizes:
        raise Invalid("count_prizes is for points boards", field="count_prizes")
    if spec.period == "custom":
        if spec.starts_at is None or spec.ends_at is None or utc(spec.starts_at) >= utc(spec.ends_at):
            raise Invalid("a custom period needs starts_at before ends_at", field="starts_at")
    board_id = new_id("lb")
    custom = spec.period == "custom"
    await Leaderboard.insert(Leaderboard(
        id=board_id, program_id=program_id, name=spec.name, entity=spec.entity, metric=spec.metric,
        weights=msgspec.json.encode(spec.weights if spec.metric == "activity_score" else {}).decode(),
        period=spec.period, starts_at=utc(spec.starts_at) if custom else None, count_prizes=spec.count_prizes,
        ends_at=utc(spec.ends_at) if custom else None, created_at=datetime.now(timezone.utc))).run()
    _cache.pop(program_id)
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


class LeaderboardPage(msgspec.Struct, frozen=True):
    items: list[LeaderboardView]
    next_cursor: str | None


async def leaderboard_page(program_id: str, limit: int = 50, cursor: str | None = None) -> LeaderboardPage:
    """The program's active leaderboards, newest first."""
    where = (Leaderboard.program_id == program_id) & (Leaderboard.status == "active")
    rows, following = await newest_first(Leaderboard, where, limit, cursor)
    return LeaderboardPage(items=[_view(r) for r in rows], next_cursor=following)


async def retire_leaderboard(program_id: str, board_id: str) -> LeaderboardView:
    await get_leaderboard(program_id, board_id)
    await Leaderboard.update({Leaderboard.status: "retired"}).where(
        (Leaderboard.id == board_id) & (Leaderboard.program_id == program_id)).run()
    _cache.pop(program_id)
    return await get_leaderboard(program_id, board_id)


# Active boards per program for a few seconds, since recording runs on every award: another
# API process sees a new or retired board within CACHE_SECONDS.
CACHE_SECONDS = 3.0
_cache: BoundedMap[str, tuple[list[LeaderboardView], str, datetime]] = BoundedMap(4096, max_age=CACHE_SECONDS)


async def _boards(program_id: str) -> tuple[list[LeaderboardView], str, datetime]:
    hit = _cache.get(program_id)
    if hit is not None:
        return hit
    program = await get_program(program_id)
    boards = await list_leaderboards(program_id)
    _cache.put(program_id, (boards, program.timezone, program.created_at))
    return boards, program.timezone, program.created_at


_upgrade_script: Any = None  # redis' AsyncScript: EVALSHA, loading the script where it is missing


def _placed(program_id: str, counts: list[tuple[LeaderboardView, str, int]], at: datetime, tz: str,
            program_start: datetime) -> list[tuple[list[str], str, str, int, int]]:
    """Each (board, member, points) whose period holds `at`: its three keys (sorted set,
    index, old-encoding set), board id, member, points and the event's tie-break."""
    placed = []
    for board, member, points in counts:
        period, start, end = _bounds(board, at, tz, program_start)
        if board.period == "custom" and not (start <= utc(at) < end):  # type: ignore[operator]
            continue
        board_key = program_keys.board(program_id, board.id, period)
        placed.append(([board_key, _index_key(board_key), program_keys.old_board(program_id, board.id, period)], board.id, member,
                       points, tie_break(at, start, end)))
    return placed


async def _count(client: Any, program_id: str, event: str, counts: list[tuple[LeaderboardView, str, int]],
                 at: datetime, tz: str, program_start: datetime, marker_ttl: int = MARKER_TTL) -> None:
    """Adds each (board, member, points) whose period holds `at`, in one atomic call."""
    key_list, args = [program_keys.board_marker(program_id, event)], [marker_ttl, MAX_POINTS]
    for board_keys, board_id, member, points, tie in _placed(program_id, counts, at, tz, program_start):
        key_list += board_keys
        args += [board_id, member, max(min(points, MAX_POINTS), -MAX_POINTS), tie]
    if len(key_list) == 1:
        return
    await client.fcall("rw_board_score", len(key_list), *key_list, *args)


class PointsBoards(msgspec.Struct, frozen=True):
    """A program's active points boards, as grants count on them."""

    program_id: str
    boards: tuple[LeaderboardView, ...]
    timezone: str
    program_start: datetime

    @property
    def by_team(self) -> bool:
        """Whether a grant needs its participant's team (a team board is active)."""
        return any(b.entity == "teams" for b in self.boards)

    def scoring(self, participant_id: str, team_id: str | None, transaction_id: str, at: datetime) -> Boards:
        """The leaderboards a grant of `transaction_id` at `at` moves in its own call: the
        participant's entry, or their team's on a team board (none without a team), on every
        board whose period holds `at`. The wallet function adds the points the grant moved
        (wallet/functions.lua rw_grant), once per board and transaction (the marker of
        record_points' "tx:" events). Pure: no I/O."""
        counts = [(b, member, 0) for b in self.boards
                  if (member := participant_id if b.entity == "participants" else team_id)]
        placed = _placed(self.program_id, counts, at, self.timezone, self.program_start)
        if not placed:
            return NO_BOARDS
        key_list, args = [program_keys.board_marker(self.program_id, f"tx:{transaction_id}")], [MARKER_TTL]
        for board_keys, board_id, member, _, tie in placed:
            key_list += board_keys
            args += [board_id, member, tie]
        return Boards(keys=tuple(key_list), args=tuple(args))

    def counting_at(self, created: dict[str, datetime], moment: datetime) -> PointsBoards:
        """These boards less those created after `moment` (`created`: board id -> creation):
        an event of that moment never counted on them."""
        return msgspec.structs.replace(self, boards=tuple(
            b for b in self.boards if b.id in created and created[b.id] <= utc(moment)))


async def boards_created(program_id: str, board_ids: list[str]) -> dict[str, datetime]:
    """When each of the program's boards was created (it counts what happened since)."""
    rows = await Leaderboard.select(Leaderboard.id, Leaderboard.created_at).where(
        (Leaderboard.program_id == program_id) & Leaderboard.id.is_in(board_ids)).run() if board_ids else []
    return {r["id"]: utc(r["created_at"]) for r in rows}


async def points_boards(program_id: str) -> PointsBoards:
    """The program's active points boards (cached for CACHE_SECONDS, as every recording)."""
    boards, tz, program_start = await _boards(program_id)
    return PointsBoards(program_id=program_id, boards=tuple(b for b in boards if b.metric == "points"),
                        timezone=tz, program_start=program_start)


async def prize_boards(program_id: str) -> PointsBoards:
    """The program's active points boards that count prizes too (`count_prizes`): a spin's
    or a sweepstakes' points prize moves these, and no other board."""
    boards = await points_boards(program_id)
    return PointsBoards(program_id=program_id, boards=tuple(b for b in boards.boards if b.count_prizes),
                        timezone=boards.timezone, program_start=boards.program_start)


async def grant_boards(program_id: str, participant_id: str, team_id: str | None, transaction_id: str,
                       at: datetime, prizes: bool = False) -> Boards:
    """`PointsBoards.scoring` for one grant (with `prizes`, a points prize's: only the boards
    that count prizes). `team_id` may be UNKNOWN_TEAM: it is then read from SQL, only if a
    team board needs it."""
    boards = await (prize_boards(program_id) if prizes else points_boards(program_id))
    if not boards.boards:
        return NO_BOARDS
    if team_id == UNKNOWN_TEAM:
        team_id = await _team_of(program_id, participant_id) if boards.by_team else None
    return boards.scoring(participant_id, team_id, transaction_id, at)


async def prize_scoring(program_id: str, participant_id: str) -> Callable[[str, datetime], Boards] | None:
    """For a spin: what its points prize moves, as (transaction id, moment) -> Boards, or
    None when no board counts prizes. The participant's team is read once, only if a team
    board counts prizes."""
    boards = await prize_boards(program_id)
    if not boards.boards:
        return None
    team_id = await _team_of(program_id, participant_id) if boards.by_team else None
    return lambda transaction_id, at: boards.scoring(participant_id, team_id, transaction_id, at)


async def _upgrade(client: Any, old: str, key: str) -> None:
    """Moves a period written in the old encoding to the current one, if there is one."""
    global _upgrade_script
    if not await client.exists(old):
        return
    if _upgrade_script is None:
        _upgrade_script = client.register_script(UPGRADE_SCRIPT)
    await _upgrade_script(keys=[old, key, _index_key(key)], client=client)


async def _team_of(program_id: str, participant_id: str) -> str | None:
    row = await Participant.select(Participant.team_id).where(
        (Participant.id == participant_id) & (Participant.program_id == program_id)).first().run()
    return row["team_id"] if row else None


async def teams_of(program_id: str, participant_ids: set[str]) -> dict[str, str | None]:
    """Each of the program's participants' team (for a batch's team boards), in one read."""
    if not participant_ids:
        return {}
    rows = await Participant.select(Participant.id, Participant.team_id).where(
        Participant.id.is_in(sorted(participant_ids)) & (Participant.program_id == program_id)).run()
    return {r["id"]: r["team_id"] for r in rows}


async def record_points(client: Any, program_id: str, participant_id: str, team_id: str | None, points: int,
                        transaction_id: str, at: datetime) -> None:
    """Adds points (negative for a deduction) to every active points board whose period
    holds `at`: the participant's entry, or their team's on a team board (none without a
    team). Once per board and transaction, however often it is called. `team_id` may be
    UNKNOWN_TEAM: it is then looked up, only if a team board needs it."""
    if points == 0:
        return
    boards, tz, program_start = await _boards(program_id)
    boards = [b for b in boards if b.metric == "points"]
    if team_id == UNKNOWN_TEAM:
        team_id = await _team_of(program_id, participant_id) if any(b.entity == "teams" for b in boards) else None
    counts = [(b, member, points) for b in boards
              if (member := participant_id if b.entity == "participants" else team_id)]
    await _count(client, program_id, f"tx:{transaction_id}", counts, at, tz, program_start)


async def weighs_any(program_id: str, activity_types: set[str]) -> bool:
    """Whether an active activity-score board weighs any of these activity types (the boards
    cached as every recording reads them): a program without one skips each activity's
    recording, and the reads before it, whole."""
    boards, _, _ = await _boards(program_id)
    return any(b.metric == "activity_score" and b.weights.get(t) for b in boards for t in activity_types)


async def record_activity(client: Any, program_id: str, participant_id: str, team_id: str | None,
                          activity_type: str, activity_id: str, at: datetime) -> None:
    """Adds the activity type's weight to every active activity_score board that weighs it
    and whose period holds `at`, once per board and activity. `team_id` as in record_points."""
    boards, tz, program_start = await _boards(program_id)
    boards = [b for b in boards if b.metric == "activity_score" and b.weights.get(activity_type)]
    if team_id == UNKNOWN_TEAM:
        team_id = await _team_of(program_id, participant_id) if any(b.entity == "teams" for b in boards) else None
    counts = [(b, member, b.weights[activity_type]) for b in boards
              if (member := participant_id if b.entity == "participants" else team_id)]
    await _count(client, program_id, f"act:{activity_id}", counts, at, tz, program_start)


async def unrecord_activity(client: Any, program_id: str, participant_id: str, activity_type: str,
                            activity_id: str, at: datetime, arrived_at: datetime) -> None:
    """A returned sale's activity off the activity-score boards that counted it: those that
    weigh its type (by their weight now) and existed when it arrived, in the period of `at`;
    the participant's entry, or their team's now. Once per board, however often it is called:
    its marker lives as long as the sale's reversal record."""
    boards, tz, program_start = await _boards(program_id)
    boards = [b for b in boards if b.metric == "activity_score" and b.weights.get(activity_type)]
    if not boards:
        return
    created = await boards_created(program_id, [b.id for b in boards])
    boards = [b for b in boards if b.id in created and created[b.id] <= utc(arrived_at)]
    team_id = await _team_of(program_id, participant_id) if any(b.entity == "teams" for b in boards) else None
    counts = [(b, member, -b.weights[activity_type]) for b in boards
              if (member := participant_id if b.entity == "participants" else team_id)]
    await _count(client, program_id, f"act:{activity_id}:reversed", counts, at, tz, program_start,
                 marker_ttl=REVERSED_MARKER_TTL)


async def _names(program_id: str, board: LeaderboardView, ids: list[str],
                 viewer: str | None) -> tuple[dict[str, str], set[str]]:
    """Each member's name, and the members shown anonymously (their lines carry no id)."""
    if not ids:
        return {}, set()
    if board.entity == "teams":
        rows = await Team.select(Team.id, Team.name).where(
            Team.id.is_in(ids) & (Team.program_id == program_id)).run()
        return {r["id"]: r["name"] for r in rows}, set()
    rows = await Participant.select(Participant.id, Participant.display_name, Participant.show_name).where(
        Participant.id.is_in(ids) & (Participant.program_id == program_id)).run()
    hidden = {r["id"] for r in rows if not (r["show_name"] or r["id"] == viewer)}
    return {r["id"]: ANONYMOUS if r["id"] in hidden else r["display_name"] for r in rows}, hidden


def _entries(pairs: list[tuple[Any, float]], first_rank: int) -> list[tuple[str, int, int]]:
    return [(_member_id(member), first_rank + offset, int(score)) for offset, (member, score) in enumerate(pairs)]


async def standings(client: Any, program_id: str, board_id: str, limit: int = 10, around: str | None = None,
                    at: datetime | None = None, viewer: str | None = None) -> Standings:
    """The top `limit` of the period holding `at` (now; a custom board always shows its
    dates), and for `around`, a participant id of the program, their entry (their team's
    on a team board; rank None before it scores) and up to two neighbours above and two
    below. Participants who opted out show as ANONYMOUS, except to `viewer` themselves."""
    board = await get_leaderboard(program_id, board_id)
    program = await get_program(program_id)
    period, start, end = _bounds(board, at or datetime.now(timezone.utc), program.timezone, program.created_at)
    key = program_keys.board(program_id, board.id, period)
    await _upgrade(client, program_keys.old_board(program_id, board.id, period), key)
    member: str | None = None
    if around is not None:
        row = await Participant.select(Participant.team_id).where(
            (Participant.id == around) & (Participant.program_id == program_id)).first().run()
        if row is None:
            raise NotFound("no such participant")
        member = around if board.entity == "participants" else row["team_id"]
    top = _entries(await client.zrevrange(key, 0, limit - 1, withscores=True), 1)
    near: list[tuple[str, int, int]] = []
    if member is not None:
        encoded = await client.hget(_index_key(key), member)
        rank = None if encoded is None else await client.zrevrank(key, encoded)
        if rank is not None:
            low = max(rank - 2, 0)
            near = _entries(await client.zrevrange(key, low, rank + 2, withscores=True), low + 1)
    wanted = {m for m, _, _ in top + near} | ({member} if member else set())
    names, hidden = await _names(program_id, board, sorted(wanted), viewer)

    def entry(m: str, rank: int | None, score: int) -> Entry:
        return Entry(rank=rank, id=None if m in hidden else m, display_name=names.get(m, ""), score=score)

    me: Entry | None = None
    neighbours: list[Entry] | None = None
    if around is not None:
        neighbours = [entry(*e) for e in near if e[0] != member]
        if member is not None:
            mine = [e for e in near if e[0] == member]
            me = entry(*mine[0]) if mine else entry(member, None, 0)
    return Standings(leaderboard=board, period_key=period, period_starts_at=start, period_ends_at=end,
                     top=[entry(*e) for e in top], me=me, neighbours=neighbours)
