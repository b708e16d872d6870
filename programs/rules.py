"""Earning rules: what they say, and what one rule awards for one activity.

Pure functions only: the caller (programs/earning.py) looks up what a rule needs from the
stores (an earlier activity for a multiplier or a deadline, the team's members) and passes
it in, so the live engine and the simulator share every decision.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from fractions import Fraction
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import msgspec
from msgspec import Meta

from kernel.clock import utc

AttributeName = Annotated[str, Meta(min_length=1, max_length=60, pattern=r"^[A-Za-z0-9_.-]+$")]
TypeName = Annotated[str, Meta(min_length=1, max_length=60, pattern=r"^[a-z0-9_]+$")]
RulePoints = Annotated[int, Meta(ge=1, le=10_000_000)]
SpinCount = Annotated[int, Meta(ge=1, le=100)]  # free spins in one award, prize or gift


class Condition(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A test on one attribute of the activity, e.g. {"attribute": "amount", "op": "gte", "value": 50000}."""

    attribute: AttributeName
    op: Literal["eq", "ne", "gt", "gte", "lt", "lte", "in", "not_in", "contains", "exists"]
    value: Any = None


class Audience(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Who something is open to: a participant in one of the segments and one of the teams
    (a list left out opens it to everyone on that count). Rules, wheels and their screens ask
    this one question the same way."""

    segments: Annotated[list[str], Meta(max_length=100)] | None = None
    team_ids: Annotated[list[str], Meta(max_length=1000)] | None = None

    def refusal(self, segment: str | None, team_id: str | None) -> str | None:
        """None when the participant is in; otherwise what keeps them out ("segment" or "team")."""
        if self.segments is not None and segment not in self.segments:
            return "segment"
        if self.team_ids is not None and team_id not in self.team_ids:
            return "team"
        return None


class ParticipantFilter(Audience, frozen=True, forbid_unknown_fields=True):
    min_tenure_days: Annotated[int, Meta(ge=0)] | None = None
    max_tenure_days: Annotated[int, Meta(ge=0)] | None = None


class FixedAward(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="fixed", tag_field="type"):
    points: RulePoints


class PerUnitAward(msgspec.Struct, frozen=True, forbid_unknown_fields=True, tag="per_unit", tag_field="type"):
    """`points_per_unit` for every whole `unit` of a numeric attribute (e.g. 1 point per 100
    cents of `amount`), rounded down, at most `max_points`."""

    points_per_unit: RulePoints
    attribute: AttributeName = "amount"
    unit: Annotated[int, Meta(ge=1)] = 1
    max_points: RulePoints | None = None


AwardSpec = FixedAward | PerUnitAward


class Multiplier(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Multiply the award when the participant had a `when_activity_type` activity in the
    `within_days` before this one (both ends included) with equal `match_attributes`."""

    factor: Annotated[float, Meta(gt=0, le=100)]
    when_activity_type: TypeName
    within_days: Annotated[int, Meta(ge=1, le=3660)]
    match_attributes: Annotated[list[AttributeName], Meta(max_length=10)] = []


class Deadline(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Earn only within `within_hours` (inclusive) after the `after_activity_type` activity
    with the same `match_attribute` value (e.g. a follow-up within 4 hours of its lead)."""

    after_activity_type: TypeName
    match_attribute: AttributeName
    within_hours: Annotated[int, Meta(ge=1, le=8760)]


class Cap(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    points: RulePoints
    period: Literal["day", "week", "month", "quarter"]


class RuleSpec(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    name: Annotated[str, Meta(min_length=1, max_length=200)]
    activity_type: TypeName
    award: AwardSpec
    conditions: Annotated[list[Condition], Meta(max_length=20)] = []
    participants: ParticipantFilter | None = None
    multiplier: Multiplier | None = None
    deadline: Deadline | None = None
    cap: Cap | None = None
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    team_award: bool = False
    description: Annotated[str, Meta(max_length=2000)] = ""
    # Free-spin tokens given with each award (spent on spin-to-win wheels before points).
    free_spins: SpinCount | None = None
    # The points wait in a pending lot: released `pending_days` after the award, or by a
    # manager when `pending_until` is "approval" (wallet/pending.lua). Not both.
    pending_days: Annotated[int, Meta(ge=1, le=3650)] | None = None
    pending_until: Literal["approval"] | None = None

    @property
    def pending(self) -> bool:
        return self.pending_days is not None or self.pending_until is not None


class ActivityFacts(msgspec.Struct, frozen=True):
    id: str
    type: str
    participant_id: str
    occurred_at: datetime
    attributes: dict[str, Any]


class ParticipantFacts(msgspec.Struct, frozen=True):
    id: str
    segment: str | None
    team_id: str | None
    enrolled_at: datetime
    status: str = "active"


class Share(msgspec.Struct, frozen=True):
    participant_id: str
    points: int


class Plan(msgspec.Struct, frozen=True):
    """What a rule awards for an activity; no shares means nothing, and `reason` says why."""

    shares: list[Share]
    reason: str = ""
    multiplied: bool = False


def check_rule(spec: RuleSpec) -> str | None:
    """A reason the spec cannot work, or None."""
    if spec.starts_at and spec.ends_at and utc(spec.starts_at) >= utc(spec.ends_at):
        return "starts_at must be before ends_at"
    if spec.deadline and spec.deadline.after_activity_type == spec.activity_type:
        return "a deadline must refer to another activity type"
    if spec.pending_days is not None and spec.pending_until is not None:
        return "a rule's points wait either pending_days or until approval, not both"
    return None


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    return None


def condition_holds(condition: Condition, attributes: dict[str, Any]) -> bool:
    present = condition.attribute in attributes
    value = attributes.get(condition.attribute)
    op, expected = condition.op, condition.value
    if op == "exists":
        return present if expected is None else present == bool(expected)
    if not present:
        return False
    if op == "eq":
        return value == expected
    if op == "ne":
        return value != expected
    if op in ("in", "not_in"):
        inside = isinstance(expected, list) and value in expected
        return inside if op == "in" else not inside
    if op == "contains":
        if isinstance(value, str) and isinstance(expected, str):
            return expected.lower() in value.lower()
        return isinstance(value, list) and expected in value
    left, right = _number(value), _number(expected)
    if left is None or right is None:
        return False
    return {"gt": left > right, "gte": left >= right, "lt": left < right, "lte": left <= right}[op]


def participant_qualifies(spec: RuleSpec, person: ParticipantFacts, at: datetime) -> bool:
    flt = spec.participants
    if flt is None:
        return True
    if flt.refusal(person.segment, person.team_id) is not None:
        return False
    tenure = utc(at) - utc(person.enrolled_at)
    if flt.min_tenure_days is not None and tenure < timedelta(days=flt.min_tenure_days):
        return False
    if flt.max_tenure_days is not None and tenure > timedelta(days=flt.max_tenure_days):
        return False
    return True


def base_points(award: AwardSpec, attributes: dict[str, Any]) -> int:
    if isinstance(award, FixedAward):
        return award.points
    amount = attributes.get(award.attribute)
    if isinstance(amount, bool) or not isinstance(amount, (int, float)) or amount <= 0:
        return 0
    points = int(amount // award.unit) * award.points_per_unit
    return min(points, award.max_points) if award.max_points is not None else points


def multiplier_window(spec: Multiplier, at: datetime) -> tuple[datetime, datetime]:
    """Earlier activities between these instants (both included) trigger the multiplier."""
    return utc(at) - timedelta(days=spec.within_days), utc(at)


def within_deadline(spec: Deadline, source_at: datetime | None, at: datetime) -> bool:
    if source_at is None:
        return False
    elapsed = utc(at) - utc(source_at)
    return timedelta(0) <= elapsed <= timedelta(hours=spec.within_hours)


def split(points: int, members: list[str]) -> list[Share]:
    """Team award: equal shares, the remainder one point each to the first members by id,
    so no point is lost or created."""
    ordered = sorted(members)
    if not ordered or points <= 0:
        return []
    base, rest = divmod(points, len(ordered))
    shares = [Share(participant_id=m, points=base + (1 if i < rest else 0)) for i, m in enumerate(ordered)]
    return [s for s in shares if s.points > 0]


def plan_award(
    spec: RuleSpec,
    activity: ActivityFacts,
    person: ParticipantFacts,
    *,
    earlier_match: bool = False,
    deadline_source_at: datetime | None = None,
    team_members: list[str] | None = None,
) -> Plan:
    """What `spec` awards for `activity`. `earlier_match`: an activity that triggers the
    multiplier exists in its window; `deadline_source_at`: when the activity the deadline
    counts from happened (None if there is none); `team_members`: for team awards."""
    at = utc(activity.occurred_at)
    if activity.type != spec.activity_type:
        return Plan(shares=[], reason="another activity type")
    if spec.starts_at is not None and at < utc(spec.starts_at):
        return Plan(shares=[], reason="before the rule starts")
    if spec.ends_at is not None and at >= utc(spec.ends_at):
        return Plan(shares=[], reason="after the rule ends")
    if not participant_qualifies(spec, person, at):
        return Plan(shares=[], reason="participant not eligible")
    for condition in spec.conditions:
        if not condition_holds(condition, activity.attributes):
            return Plan(shares=[], reason=f"condition on {condition.attribute} not met")
    if spec.deadline is not None and not within_deadline(spec.deadline, deadline_source_at, at):
        return Plan(shares=[], reason="deadline missed")
    points = base_points(spec.award, activity.attributes)
    multiplied = False
    if spec.multiplier is not None and earlier_match:
        points = int(Fraction(str(spec.multiplier.factor)) * points)  # exact, rounded down
        multiplied = True
    if points <= 0:
        return Plan(shares=[], reason="nothing to award")
    if spec.team_award:
        members = team_members or [person.id]
        return Plan(shares=split(points, members), multiplied=multiplied)
    return Plan(shares=[Share(participant_id=person.id, points=points)], multiplied=multiplied)


def period_key(period: str, at: datetime, tz: str) -> str:
    """The calendar period (in the program's time zone) an instant falls in, for caps."""
    local = utc(at).astimezone(ZoneInfo(tz))
    if period == "day":
        return local.strftime("%Y-%m-%d")
    if period == "week":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    if period == "month":
        return local.strftime("%Y-%m")
    if period == "quarter":
        return f"{local.year}-Q{(local.month - 1) // 3 + 1}"
    raise ValueError(f"unknown period {period!r}")
