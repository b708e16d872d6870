"""The earning engine: activities in, awards out through the wallet.

For every activity and every active rule for its type, `programs/rules.py` decides the
award from facts this module looks up (an earlier activity for a multiplier or a deadline,
the team). Awards go to the wallet as one idempotent grant per activity, rule and
participant, with the rule's cap checked in the same atomic step, so a re-sent batch or a
concurrent sender never pays twice. The simulator runs the same decisions without moving
points, so what it answers is what the live rule then awards.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

import msgspec
from msgspec import Meta

from programs.activities import activities_between, mark_evaluated, program_types
from programs.feed import FeedEntry, points_text, publish
from programs.programs import Money, ProgramView
from programs.rulebook import RuleVersion, validate
from programs.rules import (
    ActivityFacts,
    ParticipantFacts,
    Plan,
    RuleSpec,
    multiplier_window,
    period_key,
    plan_award,
)
from programs.tables import Activity, Award, Participant
from programs import keys as program_keys
from kernel import keys as kernel_keys
from wallet.accounts import raise_for
from kernel.errors import Invalid
from kernel.ids import new_id
from kernel.sqlite_pool import inserts, run_statement
from kernel.clock import utc
from wallet.store import NO_BOARDS, Boards, GrantSpec, Outcome, WalletStore
from kernel.idempotency import Idem

log = logging.getLogger("rw.earning")

# The leaderboards an award moves in its own wallet call, from (participant_id, team_id,
# transaction_id, at): programs/standings.py `PointsBoards.scoring`.
BoardsFor = Callable[[str, str | None, str, datetime], Boards]


class AwardView(msgspec.Struct, frozen=True, omit_defaults=True):
    rule_id: str
    rule_version: int
    participant_id: str
    points: int
    # granted | capped | budget_exhausted | activity_reversed (the sale was returned) |
    # validation_error (past a bound) | refused
    outcome: str
    transaction_id: str | None = None
    detail: str | None = None  # why nothing was awarded, for a refusal
    # Paid by an earlier run (a rule applied again, a batch re-sent after a crash): shown, not paid now.
    already_awarded: bool = False
    # A pending award: its lot (released later, programs/pending.py) and when it releases
    # (None with the lot: released by a manager's approval).
    lot_id: str | None = None
    releases_at: datetime | None = None


class SimulatedAward(msgspec.Struct, frozen=True):
    activity_id: str
    participant_id: str
    points: int
    occurred_at: datetime


class Simulation(msgspec.Struct, frozen=True):
    activities_considered: int
    awards: list[SimulatedAward]
    total_points: int
    participants: int
    cost: Money


class Window(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """The stored activities a simulation or a rule application looks at: [starts_at, ends_at)."""

    starts_at: Annotated[datetime, Meta(tz=True)]
    ends_at: Annotated[datetime, Meta(tz=True)]

    def check(self) -> None:
        if self.starts_at >= self.ends_at:
            raise Invalid("starts_at must be before ends_at", field="ends_at")


class SimulationRequest(Window, frozen=True, forbid_unknown_fields=True):
    rule: RuleSpec


class Facts:
    """Look-ups one evaluation needs, cached for the batch."""

    def __init__(self, program_id: str) -> None:
        self.program_id = program_id
        self._people: dict[str, ParticipantFacts] = {}
        self._teams: dict[str, list[str]] = {}

    async def people(self, ids: set[str]) -> None:
        missing = sorted(ids - set(self._people))
        for start in range(0, len(missing), 500):
            rows = await Participant.select(Participant.id, Participant.segment, Participant.team_id,
                                            Participant.enrolled_at, Participant.created_at, Participant.status) \
                .where(Participant.id.is_in(missing[start:start + 500])).run()
            for r in rows:
                enrolled = utc(r["enrolled_at"] or r["created_at"])
                self._people[r["id"]] = ParticipantFacts(id=r["id"], segment=r["segment"], team_id=r["team_id"],
                                                         enrolled_at=enrolled, status=r["status"])

    def person(self, participant_id: str) -> ParticipantFacts | None:
        return self._people.get(participant_id)

    async def team(self, team_id: str | None) -> list[str] | None:
        if team_id is None:
            return None
        if team_id not in self._teams:
            rows = await Participant.select(Participant.id).where(
                (Participant.program_id == self.program_id) & (Participant.team_id == team_id)
                & (Participant.status == "active")).run()
            self._teams[team_id] = [r["id"] for r in rows]
        return self._teams[team_id]

    async def earlier_match(self, spec: RuleSpec, activity: ActivityFacts) -> bool:
        multiplier = spec.multiplier
        if multiplier is None:
            return False
        start, end = multiplier_window(multiplier, activity.occurred_at)
        rows = await Activity.select(Activity.attributes).where(
            (Activity.program_id == self.program_id) & (Activity.participant_id == activity.participant_id)
            & (Activity.type == multiplier.when_activity_type) & (Activity.occurred_at >= start)
            & (Activity.occurred_at <= end) & (Activity.id != activity.id)).run()
        for row in rows:
            earlier = msgspec.json.decode(row["attributes"])
            if all(name in activity.attributes and earlier.get(name) == activity.attributes[name]
                   for name in multiplier.match_attributes):
                return True
        return False

    async def deadline_source(self, spec: RuleSpec, activity: ActivityFacts) -> datetime | None:
        """When the activity the deadline counts from happened: the latest one before this
        activity, of the same participant, with the same value of the matching attribute.
        Only the window itself is searched: an older one has missed the deadline anyway."""
        deadline = spec.deadline
        if deadline is None:
            return None
        wanted = activity.attributes.get(deadline.match_attribute)
        if wanted is None:
            return None
        at = utc(activity.occurred_at)
        rows = await Activity.select(Activity.occurred_at, Activity.attributes).where(
            (Activity.program_id == self.program_id) & (Activity.participant_id == activity.participant_id)
            & (Activity.type == deadline.after_activity_type)
            & (Activity.occurred_at >= at - timedelta(hours=deadline.within_hours)) & (Activity.occurred_at <= at)
        ).order_by(Activity.occurred_at, ascending=False).run()
        for row in rows:
            if msgspec.json.decode(row["attributes"]).get(deadline.match_attribute) == wanted:
                return utc(row["occurred_at"])
        return None

    async def plan(self, spec: RuleSpec, activity: ActivityFacts) -> Plan:
        if spec.activity_type != activity.type:
            return Plan(shares=[], reason="another activity type")
        person = self.person(activity.participant_id)
        if person is None:
            return Plan(shares=[], reason="unknown participant")
        members = await self.team(person.team_id) if spec.team_award else None
        return plan_award(spec, activity, person, earlier_match=await self.earlier_match(spec, activity),
                          deadline_source_at=await self.deadline_source(spec, activity), team_members=members)


MINUTE_MS = 60_000


def pending_release(now_ns: int, days: int | None) -> int | None:
    """When a lot awarded at `now_ns` releases, in milliseconds: `days` later, rounded up to
    the whole minute (the worker releases it at or after that minute); None: by approval."""
    if days is None:
        return None
    at = now_ns // 1_000_000 + days * 86_400_000
    return -(-at // MINUTE_MS) * MINUTE_MS


def release_moment(at_ms: int | None) -> datetime | None:
    """A lot's release instant (the wallet answers it, also on a replay), or None for an approval lot."""
    return None if at_ms is None else datetime.fromtimestamp(at_ms / 1000, tz=timezone.utc)


def pending_text(points: int, point_name: str, releases_at: datetime | None, what: str) -> str:
    when = f"until {releases_at:%Y-%m-%d %H:%M} UTC" if releases_at else "until a manager approves them"
    return f"+{points:,} {point_name} pending {when}: {what}"


_AWARD_COLUMNS = ("award_key", "program_id", "activity_id", "rule_id", "rule_version", "participant_id", "points",
                  "outcome", "transaction_id", "created_at")
_AWARD_REPAID = ("rule_version", "points", "outcome", "transaction_id", "created_at")
# A row that paid nothing (a deactivated participant, a suspended program: refusals the wallet
# does not record) takes the payment of a later run, so every paid award has its row: a return
# reads them, and a rule applied again sees it paid.
_AWARD_UPSERT = (f"ON CONFLICT (award_key) DO UPDATE SET {', '.join(f'{c} = excluded.{c}' for c in _AWARD_REPAID)} "
                 f"WHERE {Award._meta.tablename}.points = 0")


def award_key(activity_id: str, rule_id: str, participant_id: str) -> str:
    return f"{activity_id}:{rule_id}:{participant_id}"


def _outcome_name(outcome: Outcome, planned: int) -> str:
    if outcome.ok:
        return "granted" if (outcome.points or 0) == planned and outcome.code is None else "capped"
    return outcome.code or "refused"


async def evaluate(
    store: WalletStore,
    program: ProgramView,
    activities: list[ActivityFacts],
    rules: list[RuleVersion],
    boards_for: BoardsFor | None = None,
    paid: dict[str, AwardView] | None = None,
) -> dict[str, list[AwardView]]:
    """Awards what the rules give for the activities, once each, each with the leaderboards
    `boards_for` says it moves (counted in the award's own call, only when it applies);
    `paid` (by award key) are awards an earlier run made, answered again and not paid.
    Answers awards per activity. A returned sale (its reversal recorded) earns nothing again,
    whoever evaluates it: a rule applied to past activities, a batch sent again."""
    everything = sorted(activities, key=lambda a: (utc(a.occurred_at), a.id))
    returned = await store.reversed_activities(program.id, [a.id for a in everything])
    ordered = [a for a in everything if a.id not in returned]
    facts = Facts(program.id)
    await facts.people({a.participant_id for a in ordered})
    by_type: dict[str, list[RuleVersion]] = {}
    for rule in rules:
        by_type.setdefault(rule.spec.activity_type, []).append(rule)

    grants: list[GrantSpec] = []
    context: list[tuple[ActivityFacts, RuleVersion, str, int]] = []
    earlier: list[tuple[str, AwardView]] = []
    for activity in ordered:
        for rule in by_type.get(activity.type, []):
            plan = await facts.plan(rule.spec, activity)
            for share in plan.shares:
                if paid and (made := paid.get(award_key(activity.id, rule.rule_id, share.participant_id))):
                    earlier.append((activity.id, made))
                    continue
                spec = rule.spec
                cap_key, cap_limit = "", None
                if spec.cap is not None:
                    cap_key = program_keys.cap(program.id, rule.rule_id, share.participant_id,
                                       period_key(spec.cap.period, activity.occurred_at, program.timezone))
                    cap_limit = spec.cap.points
                metadata = {"reason": spec.name, "rule_id": rule.rule_id, "rule_version": rule.version,
                            "activity_id": activity.id, "activity_type": activity.type,
                            "multiplied": plan.multiplied}
                tx = new_id("tx")
                person = facts.person(share.participant_id)
                scored = boards_for is not None and (not spec.pending or program.pending_counts_on_boards)
                boards = boards_for(share.participant_id, person.team_id if person else None, tx,  # type: ignore[misc]
                                    activity.occurred_at) if scored else NO_BOARDS
                pending = ""
                if spec.pending:
                    releases = pending_release(store.clock(), spec.pending_days)
                    metadata["releases_at"] = releases
                    # Whether the lot counts on boards now (so not at its release): a
                    # returned sale takes back only what it counted (programs/pending.py).
                    metadata["on_boards"] = bool(boards.count)
                    pending = f"{'' if releases is None else releases}|{spec.name}"
                grants.append(GrantSpec(
                    idem=Idem(key=kernel_keys.idempotency(program.id, "award",
                                                   award_key(activity.id, rule.rule_id, share.participant_id)),
                              fingerprint="award"),
                    tx=tx, participant_id=share.participant_id, points=share.points,
                    kind="pending_award" if spec.pending else "award",
                    reference=activity.id, metadata=msgspec.json.encode(metadata).decode(),
                    cap_key=cap_key, cap_limit=cap_limit, pending=pending, boards=boards,
                ))
                context.append((activity, rule, share.participant_id, share.points))

    outcomes: list[Outcome] = []
    for start in range(0, len(grants), 500):
        outcomes += await store.award_batch(program.id, grants[start:start + 500])
    suspended = next((o for o in outcomes if o.code == "program_suspended"), None)

    now = datetime.now(timezone.utc)
    results: dict[str, list[AwardView]] = {a.id: [] for a in everything}
    for activity_id, made in earlier:
        results[activity_id].append(made)
    rows: list[tuple[Any, ...]] = []
    feed: list[FeedEntry] = []
    for (activity, rule, participant_id, planned), outcome in zip(context, outcomes):
        if outcome.code == "program_suspended":
            continue  # evaluated again when the batch is sent again (below)
        name = _outcome_name(outcome, planned)
        points = (outcome.points or 0) if outcome.ok else 0
        lot = outcome.lot if points else None
        award = AwardView(rule_id=rule.rule_id, rule_version=rule.version, participant_id=participant_id,
                          points=points, outcome=name, transaction_id=outcome.tx if points else None,
                          detail=None if outcome.ok else outcome.detail, already_awarded=bool(outcome.replayed),
                          lot_id=lot, releases_at=release_moment(outcome.releases_at) if lot else None)
        results[activity.id].append(award)
        rows.append((award_key(activity.id, rule.rule_id, participant_id), program.id, activity.id, rule.rule_id,
                     rule.version, participant_id, points, name, award.transaction_id, now))
        if points and outcome.tx and rule.spec.free_spins:
            await store.give_free_spins(program.id, participant_id, rule.spec.free_spins, Idem(
                key=kernel_keys.idempotency(program.id, "award-spins", award_key(activity.id, rule.rule_id, participant_id)),
                fingerprint="award"))
        if points and outcome.tx and lot:
            feed.append(FeedEntry(key=f"award:{outcome.tx}", participant_id=participant_id, kind="pending_award",
                                  text=pending_text(points, program.point_name, award.releases_at, rule.spec.name),
                                  points=points, reference=activity.id))
        elif points and outcome.tx:
            feed.append(FeedEntry(key=f"award:{outcome.tx}", participant_id=participant_id, kind="award",
                                  text=points_text(points, program.point_name, rule.spec.name), points=points,
                                  reference=activity.id))

    # Plain SQL, not Piccolo's builder: building a Table object and its insert cost about
    # 0.5 ms of the event loop's time an award, so a CRM batch held every other request up.
    for statement in inserts(Award._meta.tablename, _AWARD_COLUMNS, rows, _AWARD_UPSERT, 250):
        await run_statement(Award._meta.db, statement)
    await publish(program.id, feed)
    if suspended is not None:
        # The program was suspended during the batch (its awards go to Redis 25 to a call):
        # what was paid before has its rows and feed lines above, and nothing is recorded as
        # evaluated, so the activities (stored) earn the rest when re-sent after the program
        # is reactivated; the awards already made replay from their records.
        raise_for(suspended)
    await mark_evaluated([a.id for a in everything])
    return results


async def simulate_draft(store: WalletStore, program: ProgramView, request: SimulationRequest) -> Simulation:
    """What a draft rule would have awarded in the request's window; the rule is checked
    against the program's activity types first."""
    request.check()
    validate(request.rule, await program_types(program.id))
    return await simulate(store, program, request.rule, request.starts_at, request.ends_at)


async def simulate(store: WalletStore, program: ProgramView, spec: RuleSpec, start: datetime,
                   end: datetime) -> Simulation:
    """What `spec` would have awarded on the stored activities in [start, end), with caps
    counted from zero as a new rule's are, and no points moved. Returned sales are left
    out, as applying the rule leaves them (evaluate)."""
    activities = await activities_between(program.id, spec.activity_type, start, end)
    returned = await store.reversed_activities(program.id, [a.id for a in activities])
    activities = [a for a in activities if a.id not in returned]
    activities.sort(key=lambda a: (utc(a.occurred_at), a.id))
    facts = Facts(program.id)
    await facts.people({a.participant_id for a in activities})
    used: dict[tuple[str, str], int] = {}
    awards: list[SimulatedAward] = []
    for activity in activities:
        plan = await facts.plan(spec, activity)
        for share in plan.shares:
            points = share.points
            if spec.cap is not None:
                slot = (share.participant_id, period_key(spec.cap.period, activity.occurred_at, program.timezone))
                points = min(points, spec.cap.points - used.get(slot, 0))
                if points <= 0:
                    continue
                used[slot] = used.get(slot, 0) + points
            awards.append(SimulatedAward(activity_id=activity.id, participant_id=share.participant_id, points=points,
                                         occurred_at=activity.occurred_at))
    total = sum(a.points for a in awards)
    return Simulation(activities_considered=len(activities), awards=awards, total_points=total,
                      participants=len({a.participant_id for a in awards}),
                      cost=Money(amount=total * program.point_value.amount, currency=program.point_value.currency))


async def apply_rule(
    store: WalletStore, program: ProgramView, rule: RuleVersion, start: datetime, end: datetime,
    boards_for: BoardsFor | None = None,
) -> dict[str, list[AwardView]]:
    """Runs one rule over the stored activities in [start, end): a retroactive award, as
    simulated. Activities it already awarded answer their first award again, also once the
    award's idempotency record has expired (its row says it was paid), so a returned sale's
    reversal, which takes back the awards their rows name, always finds every payment."""
    activities = await activities_between(program.id, rule.spec.activity_type, start, end)
    paid = await paid_awards(program.id, rule.rule_id, [a.id for a in activities])
    return await evaluate(store, program, activities, [rule], boards_for, paid)


async def paid_awards(program_id: str, rule_id: str, activity_ids: list[str]) -> dict[str, AwardView]:
    """The rule's awards that paid points for these activities, by award key."""
    found: dict[str, AwardView] = {}
    for start in range(0, len(activity_ids), 500):
        rows = await Award.select(Award.award_key, Award.rule_version, Award.participant_id, Award.points,
                                  Award.outcome, Award.transaction_id).where(
            (Award.program_id == program_id) & (Award.rule_id == rule_id)
            & Award.activity_id.is_in(activity_ids[start:start + 500]) & (Award.points > 0)
            & Award.transaction_id.is_not_null()).run()
        for r in rows:
            found[r["award_key"]] = AwardView(rule_id=rule_id, rule_version=r["rule_version"],
                                              participant_id=r["participant_id"], points=r["points"],
                                              outcome=r["outcome"], transaction_id=r["transaction_id"],
                                              already_awarded=True)
    return found
