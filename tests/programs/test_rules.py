"""What one earning rule awards for one activity, decided by the pure rule functions the live
engine and the simulator share (programs/rules.py). The HTTP tests in test_earning.py keep one
case of each feature end to end; the edges are here, where they take microseconds."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from programs.rules import (ActivityFacts, Condition, ParticipantFacts, RuleSpec, base_points, check_rule,
                            condition_holds, multiplier_window, period_key, plan_award, split, within_deadline)

T0 = datetime(2026, 6, 15, 12, 0, tzinfo=timezone.utc)


def rule(**spec: Any) -> RuleSpec:
    return msgspec.convert({"name": "Spring", "activity_type": "sale", "award": {"type": "fixed", "points": 10},
                            **spec}, RuleSpec)


def sale(at: datetime = T0, kind: str = "sale", **attributes: Any) -> ActivityFacts:
    return ActivityFacts(id="act_1", type=kind, participant_id="par_jill", occurred_at=at, attributes=attributes)


def person(segment: str | None = None, team_id: str | None = None, enrolled: datetime = T0 - timedelta(days=400),
           ) -> ParticipantFacts:
    return ParticipantFacts(id="par_jill", segment=segment, team_id=team_id, enrolled_at=enrolled)


def points(plan: Any) -> list[int]:
    return [share.points for share in plan.shares]


# --- the award ---------------------------------------------------------------------------------

def test_per_unit_counts_whole_units_only_and_stops_at_its_maximum() -> None:
    per_dollar = rule(award={"type": "per_unit", "attribute": "amount", "unit": 100, "points_per_unit": 2})
    assert points(plan_award(per_dollar, sale(amount=12_550), person())) == [250]
    assert points(plan_award(per_dollar, sale(amount=99), person())) == []
    capped = rule(award={"type": "per_unit", "unit": 100, "points_per_unit": 2, "max_points": 100})
    assert base_points(capped.award, {"amount": 1_000_000}) == 100


@pytest.mark.parametrize("amount", [None, -5, 0, True, "125.50", [100]])
def test_a_missing_negative_or_non_numeric_amount_earns_nothing(amount: Any) -> None:
    per_unit = rule(award={"type": "per_unit", "points_per_unit": 1})
    attributes = {} if amount is None else {"amount": amount}
    assert base_points(per_unit.award, attributes) == 0
    assert plan_award(per_unit, sale(**attributes), person()).reason == "nothing to award"


@pytest.mark.parametrize(("factor", "base", "awarded"), [(1.5, 100, 150), (1.15, 100, 115), (1.1, 3, 3),
                                                          (0.5, 7, 3), (100, 10_000_000, 1_000_000_000)])
def test_a_multiplier_is_exact_and_rounds_down(factor: float, base: int, awarded: int) -> None:
    # 1.15 * 100 is 114.99999999999999 in doubles: the factor is read as the decimal it was written as.
    boosted = rule(award={"type": "fixed", "points": base},
                   multiplier={"factor": factor, "when_activity_type": "training_completed", "within_days": 90})
    plan = plan_award(boosted, sale(), person(), earlier_match=True)
    assert points(plan) == [awarded] and plan.multiplied
    plain = plan_award(boosted, sale(), person(), earlier_match=False)
    assert points(plain) == [base] and not plain.multiplied


def test_the_multiplier_window_ends_at_the_activity_and_starts_within_days_before() -> None:
    boosted = rule(multiplier={"factor": 2, "when_activity_type": "training_completed", "within_days": 90})
    assert boosted.multiplier is not None
    assert multiplier_window(boosted.multiplier, T0) == (T0 - timedelta(days=90), T0)


# --- conditions and who qualifies ----------------------------------------------------------------

@pytest.mark.parametrize(("op", "value", "attributes", "holds"), [
    ("eq", "TP-200", {"sku": "TP-200"}, True),
    ("eq", "TP-200", {"sku": "tp-200"}, False),
    ("ne", "TP-200", {"sku": "TP-300"}, True),
    ("ne", "TP-200", {}, False),  # an absent attribute meets no test but `exists`
    ("in", ["TP-200", "TP-300"], {"sku": "TP-300"}, True),
    ("in", "TP-200", {"sku": "TP-200"}, False),  # `in` wants a list
    ("not_in", ["TP-200"], {"sku": "TP-300"}, True),
    ("contains", "thermo", {"sku": "ThermoPro 200"}, True),  # text: any case
    ("contains", "TP", {"sku": ["TP", "AQ"]}, True),  # a list: the element itself
    ("contains", "T", {"sku": ["TP", "AQ"]}, False),
    ("exists", None, {"sku": ""}, True),
    ("exists", False, {}, True),
    ("exists", True, {}, False),
    ("gte", 50_000, {"sku": 50_000}, True),
    ("gte", 50_000, {"sku": 49_999.99}, False),
    ("lt", 10, {"sku": 9.5}, True),
    ("gt", 0, {"sku": True}, False),  # a boolean is not a number
    ("gt", 0, {"sku": "5"}, False),  # nor is a numeric string
    ("lte", "10", {"sku": 5}, False),
])
def test_each_condition_operator(op: str, value: Any, attributes: dict[str, Any], holds: bool) -> None:
    assert condition_holds(Condition(attribute="sku", op=op, value=value), attributes) is holds  # type: ignore[arg-type]


def test_the_first_unmet_condition_is_named() -> None:
    big_tp = rule(conditions=[{"attribute": "amount", "op": "gte", "value": 50_000},
                              {"attribute": "sku", "op": "in", "value": ["TP-200", "TP-300"]}])
    assert points(plan_award(big_tp, sale(amount=50_000, sku="TP-200"), person())) == [10]
    assert plan_award(big_tp, sale(amount=49_999, sku="TP-200"), person()).reason == "condition on amount not met"
    assert plan_award(big_tp, sale(amount=90_000, sku="XX-1"), person()).reason == "condition on sku not met"


def test_segments_teams_and_tenure_decide_who_qualifies() -> None:
    gold_of_north = rule(participants={"segments": ["gold"], "team_ids": ["tem_north"], "min_tenure_days": 30,
                                       "max_tenure_days": 365})
    fits = person(segment="gold", team_id="tem_north", enrolled=T0 - timedelta(days=30))
    assert points(plan_award(gold_of_north, sale(), fits)) == [10]
    for misfit in (person(segment="silver", team_id="tem_north", enrolled=T0 - timedelta(days=30)),
                   person(segment=None, team_id="tem_north", enrolled=T0 - timedelta(days=30)),
                   person(segment="gold", team_id=None, enrolled=T0 - timedelta(days=30)),
                   person(segment="gold", team_id="tem_north", enrolled=T0 - timedelta(days=30) + timedelta(seconds=1)),
                   person(segment="gold", team_id="tem_north", enrolled=T0 - timedelta(days=365, seconds=1))):
        assert plan_award(gold_of_north, sale(), misfit).reason == "participant not eligible"
    assert points(plan_award(gold_of_north, sale(), person(segment="gold", team_id="tem_north",
                                                          enrolled=T0 - timedelta(days=365)))) == [10]


def test_dates_and_types_come_first_and_a_rule_ends_before_its_end() -> None:
    dated = rule(starts_at="2026-06-01T00:00:00Z", ends_at="2026-07-01T00:00:00Z")
    june_first = datetime(2026, 6, 1, tzinfo=timezone.utc)
    assert points(plan_award(dated, sale(at=june_first), person())) == [10]
    assert plan_award(dated, sale(at=june_first - timedelta(seconds=1)), person()).reason == "before the rule starts"
    assert plan_award(dated, sale(at=datetime(2026, 7, 1, tzinfo=timezone.utc)), person()).reason == \
        "after the rule ends"
    assert plan_award(dated, sale(kind="demo_placed"), person()).reason == "another activity type"


# --- deadlines ---------------------------------------------------------------------------------

def test_a_follow_up_earns_within_its_deadline_both_ends_included() -> None:
    follow_up = rule(activity_type="lead_followed_up",
                     deadline={"after_activity_type": "lead_received", "match_attribute": "lead_id",
                               "within_hours": 4})
    assert follow_up.deadline is not None
    at = T0 + timedelta(hours=4)
    assert within_deadline(follow_up.deadline, T0, at)
    assert within_deadline(follow_up.deadline, at, at)
    assert not within_deadline(follow_up.deadline, T0 - timedelta(seconds=1), at)
    assert not within_deadline(follow_up.deadline, at + timedelta(seconds=1), at)  # the lead came after
    assert not within_deadline(follow_up.deadline, None, at)
    late = plan_award(follow_up, sale(at=at, kind="lead_followed_up"), person(),
                      deadline_source_at=T0 - timedelta(seconds=1))
    assert late.reason == "deadline missed"


# --- team awards ---------------------------------------------------------------------------------

def test_a_team_award_gives_the_remainder_to_the_first_members_by_id() -> None:
    assert [(s.participant_id, s.points) for s in split(100, ["par_c", "par_a", "par_b"])] == [
        ("par_a", 34), ("par_b", 33), ("par_c", 33)]
    assert [(s.participant_id, s.points) for s in split(2, ["par_c", "par_a", "par_b"])] == [
        ("par_a", 1), ("par_b", 1)]
    assert split(0, ["par_a"]) == [] and split(5, []) == []
    team = rule(team_award=True)
    assert points(plan_award(team, sale(), person(), team_members=["par_x", "par_y"])) == [5, 5]
    assert [s.participant_id for s in plan_award(team, sale(), person(), team_members=None).shares] == ["par_jill"]


@given(total=st.integers(1, 10**9), size=st.integers(1, 40))
def test_a_team_split_neither_loses_nor_creates_a_point(total: int, size: int) -> None:
    shares = split(total, [f"par_{i:03d}" for i in range(size)])
    assert sum(s.points for s in shares) == total
    assert max(s.points for s in shares) - min(s.points for s in shares) <= 1
    assert all(s.points > 0 for s in shares)


# --- cap periods ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("period", "at", "tz", "key"), [
    # 04:30 UTC on July 1st is still June 30th (23:30 CDT) in Chicago.
    ("month", datetime(2026, 7, 1, 4, 30, tzinfo=timezone.utc), "America/Chicago", "2026-06"),
    ("month", datetime(2026, 7, 1, 5, 0, tzinfo=timezone.utc), "America/Chicago", "2026-07"),
    ("day", datetime(2026, 7, 1, 4, 30, tzinfo=timezone.utc), "America/Chicago", "2026-06-30"),
    ("day", datetime(2026, 6, 30, 22, 0, tzinfo=timezone.utc), "Asia/Tokyo", "2026-07-01"),
    ("week", datetime(2027, 1, 1, 12, 0, tzinfo=timezone.utc), "UTC", "2026-W53"),  # ISO weeks cross years
    ("week", datetime(2026, 12, 28, 0, 0, tzinfo=timezone.utc), "UTC", "2026-W53"),
    ("quarter", datetime(2026, 4, 1, 3, 0, tzinfo=timezone.utc), "America/Chicago", "2026-Q1"),
    ("quarter", datetime(2026, 12, 31, 23, 0, tzinfo=timezone.utc), "UTC", "2026-Q4"),
])
def test_caps_count_in_calendar_periods_of_the_programs_time_zone(period: str, at: datetime, tz: str,
                                                                   key: str) -> None:
    assert period_key(period, at, tz) == key


def test_an_unknown_period_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        period_key("fortnight", T0, "UTC")


# --- what cannot work ----------------------------------------------------------------------------

def test_backwards_dates_and_a_deadline_on_its_own_type_are_refused() -> None:
    assert check_rule(rule()) is None
    assert check_rule(rule(starts_at="2026-07-01T00:00:00Z", ends_at="2026-07-01T00:00:00Z")) == \
        "starts_at must be before ends_at"
    assert check_rule(rule(deadline={"after_activity_type": "sale", "match_attribute": "lead_id",
                                     "within_hours": 4})) == "a deadline must refer to another activity type"
    with pytest.raises(msgspec.ValidationError):
        rule(multiplier={"factor": 0, "when_activity_type": "x", "within_days": 1})
    with pytest.raises(msgspec.ValidationError):
        rule(free_spins=101)
